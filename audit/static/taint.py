"""Taint of values by *kinds* across one file's functions: which values are validation data, targets,
sizes, random draws, blobs, model/count-table lookups at the target (see audit.static.flow for the
whole analysis and its kinds).

Kinds flow through assignments, tuple unpacking, slicing and subscripts, attribute loads, in-place
container writes, calls (library calls: the union of their arguments and receiver; calls of this
file's functions: the callee's summary with p:i replaced by the arguments' kinds) and returns.
Shape queries (numel, len, size, shape, zeros_like...) turn V into N. A record (a dataclass or
NamedTuple of this file) is not tainted as a whole by its constructor's arguments: each field keeps
the kinds passed for it, so `layout.train_pattern` is not val data because `layout.val_pattern` is.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterable

from audit.static.analysis import FileAnalysis, callee_name
from audit.static.config import UNKNOWN
from audit.static.nodes import (forget_names, is_lut, names, names_in_target, operands, record_fields, requires_grad,
                                root_name, shifted_by_one)
from audit.static.offsets import gather_index, index_offsets, position_frame

V, T, N, R, B, S = "V", "T", "N", "R", "B", "S"
VAL_NAME = re.compile(r"^(val|valid|validation)(_data)?(_tokens?|_ids|_token_ids)?$|^val_tokens\w*$|^all_val\w*$")
VAL_STRING = re.compile(r"^(val|valid|validation)$|fineweb_val|_val_\*|val_\*|_val\.bin")
SHAPE_CALLS = {"numel", "size", "len", "dim", "nelement", "zeros_like", "ones_like", "empty_like", "full_like",
               "ceil", "floor", "nonzero", "argwhere", "searchsorted", "flatnonzero"}  # sizes and positions
SHAPE_ATTRS = {"shape", "ndim", "dtype", "device", "is_cuda", "itemsize"}
CHOICE_CALLS = {"argmax", "argmin", "multinomial", "argsort"}
RANDOM_CALLS = {"randint", "randperm", "choice", "permutation", "shuffle", "sample", "rand", "randn",
                "integers", "random"}
BLOB_CALLS = {"decompress", "frombuffer", "read_bytes", "b85decode", "b64decode"}
CONSTRUCTORS = {"zeros", "ones", "empty", "full", "arange", "tensor", "zeros_like", "ones_like", "empty_like",
                "full_like", "list", "dict", "set", "defaultdict", "Counter", "array", "linspace"}
CACHE_WRITE_CALLS = {"index_add_", "scatter_add_", "index_put_", "put_", "scatter_", "index_copy_",
                     "masked_scatter_"}
INPLACE_CONTAINER = {"append", "extend", "add", "update", "copy_", "add_", "insert", "setdefault", "__setitem__"}
HOOK_CALLS = {"register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook",
              "register_backward_hook"}
MIN_CALLS = {"min", "minimum", "fmin", "amin", "nanmin"}
BLEND_CALLS = {"logaddexp", "logsumexp", "log1p", "max", "maximum", "lerp"}

@dataclass
class FuncFacts:
    node: ast.AST  # FunctionDef or Module
    name: str
    params: list[str]
    cls: str = ""  # the class of a method
    kinds: dict[str, list] = field(default_factory=dict)  # name -> [[binding line, kinds], ...]
    loop_spans: list = field(default_factory=list)  # (first, last line) of every loop in the function
    deps: dict[str, set] = field(default_factory=dict)  # name -> names it was computed from
    defs: dict[str, list] = field(default_factory=dict)  # name -> the expressions assigned to it
    local_objects: set = field(default_factory=set)  # names bound to fresh containers/tensors here
    grad_locals: set = field(default_factory=set)  # fresh tensors with requires_grad (SLOT deltas)
    returns: set = field(default_factory=set)
    events: list = field(default_factory=list)
    param_in: dict[int, set] = field(default_factory=dict)  # param index -> kinds at call sites
    # param index -> kinds written into that parameter (`out[pos] = nll`, `out.copy_(x)`): an output
    # parameter, whose kinds the caller's argument takes after the call
    outputs: dict[int, set] = field(default_factory=dict)
    stmts: list = field(default_factory=list)  # own statements (nested defs excluded), reachable

    def lookup(self, name: str, line: int) -> set | None:
        """Kinds of `name` used at `line`: bindings above it, or anywhere in a loop around both
        (reaching definitions without kills; None when the function never binds the name)."""
        bindings = self.kinds.get(name)
        if bindings is None:
            return None
        out = set()
        for bline, kinds in bindings:
            if bline <= line or any(a <= line and bline <= b for a, b in self.loop_spans):
                out |= kinds
        return out

    def summary_size(self) -> int:
        """Grows whenever what callers see of this function (returns, outputs) grows."""
        return len(self.returns) + sum(len(v) for v in self.outputs.values())

    def bind(self, name: str, line: int, kinds: set) -> bool:
        bindings = self.kinds.setdefault(name, [])
        for entry in bindings:
            if entry[0] == line:
                if kinds <= entry[1]:
                    return False
                entry[1] |= kinds
                return True
        bindings.append([line, set(kinds)])
        return True



class TaintAnalysis:
    """The kinds of every value of one file, propagated to a fixed point over its call graph."""

    def __init__(self, fa: FileAnalysis):
        self.fa = fa
        # (class, attribute) -> kinds stored by `self.attr = ...` in that class's methods; ("*", attr)
        # for stores on other objects. Parameter-relative kinds are not stored: a loader class used
        # for both train and val shards must not make every loader a val loader.
        self.attr_kinds: dict[tuple[str, str], set] = {}
        # record classes (dataclass / NamedTuple) of this file: name -> field names in order. A record
        # built from a val pattern and a train pattern is not val data as a whole: each field keeps the
        # kinds of what was passed for it, in attr_kinds[("*", field)] (field-sensitive taint)
        self.records: dict[str, list[str]] = record_fields(fa)
        self._grown_attrs: set[str] = set()  # attributes whose stored kinds grew in this pass
        self.funcs: dict[ast.AST, FuncFacts] = {}
        self.by_name: dict[str, list[FuncFacts]] = {}
        self._calls: dict[ast.AST, list] = {}
        self._callees: dict[ast.Call, list] = {}  # call -> callees(call); by_name is fixed after _collect
        self._has_outputs = False  # some function writes into a parameter (see _write_into)
        self._memo: dict = {}  # (what, key) -> result of the per-function / per-loop helpers below
        forget_names()
        self._collect()
        # propagate every function once, then again only those whose callees' returns or whose
        # callers' arguments changed
        callers: dict[ast.AST, set] = {}
        for facts in self.funcs.values():
            for s in facts.stmts:
                for call in self.calls(s):
                    for callee in self.callees(call):
                        callers.setdefault(callee.node, set()).add(facts.node)
        dirty = set(self.funcs)
        for _ in range(4):
            returns_before = {node: self.funcs[node].summary_size() for node in dirty}
            for node in dirty:
                self._propagate(self.funcs[node])
            grown = {node for node in dirty if self.funcs[node].summary_size() != returns_before[node]}
            dirty = {c for node in grown for c in callers.get(node, ())}
            dirty |= self._params_from_call_sites()
            dirty |= {node for name in self._grown_attrs for node in self._attr_readers.get(name, ())}
            self._grown_attrs.clear()
            if not dirty:
                break

    # -- structure -------------------------------------------------------------------------
    def _collect(self) -> None:
        module = FuncFacts(node=self.fa.tree, name="<module>", params=[])
        self.funcs[self.fa.tree] = module
        for name, defs in self.fa.functions.items():
            for fn in defs:
                args = fn.args
                params = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
                if args.vararg:
                    params.append(args.vararg.arg)
                parent = self.fa.parents.get(fn)
                facts = FuncFacts(node=fn, name=name, params=params,
                                  cls=parent.name if isinstance(parent, ast.ClassDef) else "")
                self.funcs[fn] = facts
                self.by_name.setdefault(name, []).append(facts)
        for facts in self.funcs.values():
            facts.stmts = [s for s in self.fa.index.stmts.get(facts.node, ()) if self.fa.reachable(s)]
            for i, p in enumerate(facts.params):
                facts.bind(p, 0, {f"p:{i}"} | ({V} if VAL_NAME.match(p) else set()))
            facts.loop_spans = [(s.lineno, s.end_lineno) for s in facts.stmts
                                if isinstance(s, (ast.For, ast.AsyncFor, ast.While))]

    @cached_property
    def _attr_readers(self) -> dict[str, set]:
        """attribute name -> the functions that load it (re-propagated when its stored kinds grow)."""
        out: dict[str, set] = {}
        for facts in self.funcs.values():
            for s in facts.stmts:
                for node in self.exprs(s):
                    if isinstance(node, ast.Attribute):
                        out.setdefault(node.attr, set()).add(facts.node)
        return out

    def exprs(self, s: ast.stmt) -> list:
        """The expression nodes of one statement, not of the statements nested in it (from the index)."""
        return self.fa.index.exprs.get(s, [])

    def calls(self, s: ast.stmt) -> list:
        out = self._calls.get(s)
        if out is None:
            out = self._calls[s] = [n for n in self.exprs(s) if isinstance(n, ast.Call)]
        return out

    def facts_of(self, node: ast.AST) -> FuncFacts:
        fn = self.fa.enclosing_function(node)
        return self.funcs[fn if fn is not None else self.fa.tree]

    def callees(self, call: ast.Call) -> list[FuncFacts]:
        """This file's functions a call may run: by name; for a plain `f(...)` with several
        module-level `def f`, the one bound when the call runs (the last def above a module-level
        call; the last def of the file for a call inside a function)."""
        found = self._callees.get(call)
        if found is None:
            found = self._callees[call] = self._resolve_callees(call)
        return found

    def _resolve_callees(self, call: ast.Call) -> list[FuncFacts]:
        name = callee_name(call)
        found = self.by_name.get(name, []) if name else []
        if isinstance(call.func, ast.Attribute):
            # `obj.f(...)` runs a method: `model.train(False)` is torch's, not this file's `def train`
            # (a call through a module alias reaches another file, which this analysis does not see)
            found = [c for c in found if c.cls]
        if len(found) > 1 and isinstance(call.func, ast.Name):
            top = [c for c in found if isinstance(self.fa.parents.get(c.node), ast.Module)]
            if len(top) == len(found):
                if self.fa.enclosing_function(call) is None:
                    top = [c for c in top if c.node.lineno < call.lineno] or top
                return [max(top, key=lambda c: c.node.lineno)]
        return found

    # -- kinds of expressions --------------------------------------------------------------
    def kinds(self, expr: ast.AST | None, facts: FuncFacts, bound: dict | None = None) -> set:
        if expr is None:
            return set()
        k = self._kinds(expr, facts, bound or {})
        return k

    def _kinds(self, e: ast.AST, f: FuncFacts, bound: dict) -> set:
        if isinstance(e, ast.Name):
            if e.id in bound:
                return set(bound[e.id])
            found = f.lookup(e.id, e.lineno)
            if found is None:
                found = self.module_facts.lookup(e.id, 10**9) or set()
            out = set(found)
            if VAL_NAME.match(e.id):
                out.add(V)
            return out
        if isinstance(e, ast.Constant):
            return {V} if isinstance(e.value, str) and VAL_STRING.search(e.value) else set()
        if isinstance(e, ast.Attribute):
            if e.attr in SHAPE_ATTRS:
                return self._shape(self._kinds(e.value, f, bound))
            owner = f.cls if isinstance(e.value, ast.Name) and e.value.id == "self" else "*"
            out = self._kinds(e.value, f, bound) | self.attr_kinds.get((owner, e.attr), set())
            if VAL_NAME.match(e.attr) or e.attr in ("val_files", "val_pattern", "val_path"):
                out.add(V)
            return out
        if isinstance(e, ast.Subscript):
            base = self._kinds(e.value, f, bound)
            index = self._kinds(e.slice, f, bound)
            role = self.position_role(e.slice, f)
            if role == "prefix":
                # `y[t - 2]` when `y[t]` is scored: the prefix, not the target
                base = {k for k in base if k != T and not k.startswith("pt:")}
            out = base | {k for k in index if k != N}
            if shifted_by_one(e.slice) or role == "target":
                if V in base:
                    out.add(T)
                out |= {"pt:" + k[2:] for k in base if k.startswith("p:")}
            if R in index and V in self.effective(base, f):
                out.add(S)  # val data at randomly drawn positions (a random minibatch of val)
            if T in self.effective(index, f) and not is_lut(e.value):
                # a stored table (self.counts[...], a global, a row read from one: `cs = counts.get(ctx)`
                # then `cs[b]`) or a distribution computed here
                table = root_name(e.value) == "self" or (f.name != "<module>" and root_name(e.value) not in f.kinds) \
                    or any(k.startswith("c:") for k in base)
                out.add(f"{'c' if table else 'o'}:{e.lineno}")
            return out
        if isinstance(e, ast.Call):
            return self._call_kinds(e, f, bound)
        if isinstance(e, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            inner = dict(bound)
            out = set()
            for gen in e.generators:
                it = self._kinds(gen.iter, f, inner)
                out |= it
                for name in names_in_target(gen.target):
                    inner[name] = it
            elts = [e.key, e.value] if isinstance(e, ast.DictComp) else [e.elt]
            for elt in elts:
                out |= self._kinds(elt, f, inner)
            return out
        if isinstance(e, ast.Lambda):
            return set()
        if isinstance(e, ast.Compare):
            # a comparison (a gate, a mask) is a boolean: it may depend on the target, but it is not a
            # probability looked up at it
            out = set()
            for child in (e.left, *e.comparators):
                out |= self._kinds(child, f, bound)
            return {k for k in out if not k.startswith(("o:", "c:"))}
        if isinstance(e, ast.IfExp):
            chosen = self._folded_branch(e)
            if chosen is not None:
                return self._kinds(chosen, f, bound)
        out = set()
        for child in operands(e):
            out |= self._kinds(child, f, bound)
        return out

    def _folded_branch(self, e: ast.IfExp) -> ast.AST | None:
        """The branch of `a if cond else b` the configuration selects (`args.val_files if
        args.gptq_calib_source == "val" else args.train_files`), None when the test does not fold."""
        key = ("ifexp", e)
        if key not in self._memo:
            value, used = self.fa.config.guard(e.test, self.fa._bound_once(e))
            self._memo[key] = None if value is UNKNOWN or not used else (e.body if value else e.orelse)
        return self._memo[key]

    @staticmethod
    def _shape(kinds: set) -> set:
        if V in kinds or T in kinds or N in kinds or any(k.startswith("p:") for k in kinds):
            return {N}
        return set()

    def _call_kinds(self, call: ast.Call, f: FuncFacts, bound: dict) -> set:
        name = callee_name(call)
        args = [self._kinds(a, f, bound) for a in call.args]
        kw = {k.arg: self._kinds(k.value, f, bound) for k in call.keywords}
        receiver = self._kinds(call.func.value, f, bound) if isinstance(call.func, ast.Attribute) else set()
        if name in SHAPE_CALLS:
            return self._shape(set().union(receiver, *args))
        if name in RANDOM_CALLS:
            return {R}
        if name in CHOICE_CALLS:
            # the index a score picks (argmax of a distribution) is not the realised token
            return {k for k in set(receiver).union(*args) if k != T and not k.startswith(("o:", "c:", "pt:"))}
        if name in ("item", "tolist", "cpu", "to", "float", "double", "long", "int", "contiguous", "view",
                    "reshape", "clone", "detach", "numpy", "astype", "squeeze", "unsqueeze", "flatten", "sum",
                    "mean", "exp", "log"):
            out = set(receiver)
            for a in args:
                out |= a
            return out
        out = set()
        callees = self.callees(call)
        fields = self.records.get(name) if not callees else None
        if fields is not None:
            return self._construct_record(fields, args, kw, f)
        if callees:
            for callee in callees:
                out |= self._instantiate(callee.returns, callee, call, args, kw, receiver)
        else:
            out = set(receiver).union(*args, *kw.values()) if (args or kw or receiver) else set()
        if name in BLOB_CALLS:
            out.add(B)
        data, index = gather_index(call)
        if data is not None and self.position_role(index, f) == "target":
            # `torch.gather(v, 0, idx)`, `v.index_select(0, idx)` with idx = positions + 1
            data_kinds = self._kinds(data, f, bound)
            if V in data_kinds:
                out.add(T)
            out |= {"pt:" + k[2:] for k in data_kinds if k.startswith("p:")}
        targets = [T in self.effective(a, f) for a in args]
        if name in ("gather", "take_along_dim", "cross_entropy", "nll_loss") and any(targets):
            if not (isinstance(call.func, ast.Attribute) and is_lut(call.func.value)):
                out.add(f"o:{call.lineno}")
        if name == "get" and any(targets):
            out.add(f"c:{call.lineno}")  # a count table keyed by the target
        if callees and any(targets):
            for prefix in ("o:", "c:"):
                if any(k.startswith(prefix) for c in callees for k in c.returns):
                    out.add(f"{prefix}{call.lineno}")
        return out

    def _construct_record(self, fields: list[str], args: list, kw: dict, f: FuncFacts) -> set:
        """`Layout(train_pattern, val_pattern, ...)`: each field's kinds go to attr_kinds[("*", field)]
        (what the callers pass for a parameter included); the record itself carries only sizes."""
        passed = list(zip(fields, args)) + [(name, k) for name, k in kw.items() if name in fields]
        for name, kinds in passed:
            plain = {k for k in self.effective(kinds, f) if not k.startswith(("p:", "pt:"))}
            cur = self.attr_kinds.setdefault(("*", name), set())
            if not plain <= cur:
                cur |= plain
                self._grown_attrs.add(name)
        return {N} & set().union(*args, *kw.values())

    def _instantiate(self, kinds: Iterable[str], callee: FuncFacts, call: ast.Call, args: list, kw: dict,
                     receiver: set | None = None) -> set:
        """The callee's symbolic kinds with p:i / pt:i replaced by what this call passes for
        parameter i (for a method called as obj.m(...), parameter 0 is obj)."""
        method = callee.params[:1] in (["self"], ["cls"]) and isinstance(call.func, ast.Attribute)
        offset = 1 if method else 0

        def actual(i: int) -> set:
            if method and i == 0:
                return receiver or set()
            if 0 <= i - offset < len(args):
                return args[i - offset]
            name = callee.params[i] if 0 <= i < len(callee.params) else None
            return kw.get(name, set())

        out = set()
        for k in kinds:
            if k.startswith("pt:"):  # a target if parameter i is val data
                a = actual(int(k[3:]))
                if V in a or T in a:
                    out.add(T)
                out |= {"pt:" + x[2:] for x in a if x.startswith("p:")}
            elif k.startswith("p:"):
                out |= actual(int(k[2:]))
            else:
                out.add(k)
        return out

    def position_role(self, index: ast.AST | None, f: FuncFacts) -> str | None:
        """Whether an index reads the target of the scored position, its prefix, or neither
        (audit.static.offsets)."""
        if index is None:
            return None
        key = ("role", index)  # syntax only: the same for every propagation round
        if key in self._memo:
            return self._memo[key]
        frame = self._memo.get(("frame", f.node))
        if frame is None:
            frame = self._memo[("frame", f.node)] = position_frame(f.stmts, self.exprs, self._single_bindings(f))
        role = self._memo[key] = frame.role(index_offsets(index, self._single_bindings(f)))
        return role

    def _single_bindings(self, f: FuncFacts) -> dict:
        if f.node is self.fa.tree:
            key = ("module_bindings", None)
            if key not in self._memo:
                self._memo[key] = self.fa.index.single_bindings(self.fa.tree)
            return self._memo[key]
        return self.fa._single_bindings(f.node)

    @cached_property
    def module_facts(self) -> FuncFacts:
        return self.funcs[self.fa.tree]

    # -- propagation -----------------------------------------------------------------------
    def _bind(self, f: FuncFacts, target: ast.AST, kinds: set, deps: set, line: int | None = None) -> bool:
        line = line if line is not None else target.lineno
        changed = False
        if isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                changed |= self._bind(f, elt, kinds, deps, line)
            return changed
        if isinstance(target, ast.Starred):
            return self._bind(f, target.value, kinds, deps, line)
        if isinstance(target, ast.Name):
            f.deps.setdefault(target.id, set()).update(deps)
            return f.bind(target.id, line, kinds)
        if isinstance(target, ast.Attribute):
            owner = f.cls if isinstance(target.value, ast.Name) and target.value.id == "self" else "*"
            cur = self.attr_kinds.setdefault((owner, target.attr), set())
            plain = {k for k in kinds if not k.startswith(("p:", "pt:"))}
            if not plain <= cur:
                cur |= plain
                self._grown_attrs.add(target.attr)
                changed = True
            return changed
        if isinstance(target, ast.Subscript):
            root = root_name(target)
            if root:
                idx = self.kinds(target.slice, f)
                return self._write_into(f, root, kinds | {k for k in idx if k != N}, deps, line)
        return False

    def _write_into(self, f: FuncFacts, root: str, kinds: set, deps: set, line: int) -> bool:
        """An in-place write into the object `root` names (a subscript store, `.copy_`, `.append`);
        a write into a parameter is also an output of the function."""
        changed = self._bind(f, ast.Name(id=root, ctx=ast.Store()), kinds, deps, line)
        if root in f.params and root not in ("self", "cls"):
            i = f.params.index(root)
            written = {k for k in kinds if k != f"p:{i}"}
            cur = f.outputs.setdefault(i, set())
            if not written <= cur:
                cur |= written
                self._has_outputs = changed = True
        return changed

    def _outputs_of_calls(self, f: FuncFacts, s: ast.stmt) -> bool:
        """After `fill(model, x, y, buf)`, buf holds what fill wrote into that parameter (with the
        callee's p:j replaced by this call's arguments)."""
        changed = False
        for call in self.calls(s):
            for callee in self.callees(call):
                if not callee.outputs or callee is f:
                    continue
                args = [self.kinds(a, f) for a in call.args]
                kw = {k.arg: self.kinds(k.value, f) for k in call.keywords}
                receiver = self.kinds(call.func.value, f) if isinstance(call.func, ast.Attribute) else set()
                for i, written in list(callee.outputs.items()):
                    root = root_name(argument_of(callee, call, i) or ast.Constant(None))
                    if root and root != "self":
                        kinds = self._instantiate(written, callee, call, args, kw, receiver)
                        changed |= self._bind(f, ast.Name(id=root, ctx=ast.Store()), kinds, set(), call.lineno)
        return changed

    def _propagate(self, f: FuncFacts) -> bool:
        changed = False
        for _ in range(4):
            round_changed = False
            for s in f.stmts:
                if isinstance(s, (ast.Assign, ast.AnnAssign)) and s.value is not None:
                    k = self.kinds(s.value, f)
                    d = names(s.value)
                    targets = s.targets if isinstance(s, ast.Assign) else [s.target]
                    for t in targets:
                        round_changed |= self._bind(f, t, k, d)
                        for name in names_in_target(t):
                            exprs = f.defs.setdefault(name, [])
                            if s.value not in exprs:
                                exprs.append(s.value)
                        if isinstance(t, ast.Name) and isinstance(s.value, ast.Call):
                            cname = callee_name(s.value)
                            if cname in CONSTRUCTORS or cname in ("Parameter", "BatchedTTTLoRA"):
                                f.local_objects.add(t.id)
                            if requires_grad(s.value):
                                f.grad_locals.add(t.id)
                elif isinstance(s, ast.AugAssign):
                    round_changed |= self._bind(f, s.target, self.kinds(s.value, f), names(s.value))
                elif isinstance(s, (ast.For, ast.AsyncFor)):
                    k = self.kinds(s.iter, f)
                    if (isinstance(s.iter, ast.Call) and callee_name(s.iter) == "enumerate"
                            and isinstance(s.target, ast.Tuple) and len(s.target.elts) == 2):
                        # `for i, tok in enumerate(tokens)`: i is a position, tok the data
                        round_changed |= self._bind(f, s.target.elts[0], self._shape(k), set())
                        round_changed |= self._bind(f, s.target.elts[1], k, names(s.iter))
                    else:
                        round_changed |= self._bind(f, s.target, k, names(s.iter))
                elif isinstance(s, (ast.With, ast.AsyncWith)):
                    for item in s.items:
                        if item.optional_vars is not None:
                            round_changed |= self._bind(f, item.optional_vars, self.kinds(item.context_expr, f),
                                                        names(item.context_expr))
                elif isinstance(s, ast.Return) and s.value is not None:
                    k = self.kinds(s.value, f)
                    if not k <= f.returns:
                        f.returns |= k
                        round_changed = True
                elif isinstance(s, ast.Expr) and isinstance(s.value, ast.Call):
                    call = s.value
                    if callee_name(call) in INPLACE_CONTAINER and isinstance(call.func, ast.Attribute):
                        k = set().union(*(self.kinds(a, f) for a in call.args)) if call.args else set()
                        root = root_name(call.func.value)
                        if root and k:
                            round_changed |= self._write_into(f, root, k, names(call), call.lineno)
                if self._has_outputs:
                    round_changed |= self._outputs_of_calls(f, s)
            changed |= round_changed
            if not round_changed:
                break
        return changed

    def _params_from_call_sites(self) -> set:
        """Merge the arguments' kinds into each callee's param_in; the callees that changed."""
        changed = set()
        for f in self.funcs.values():
            for s in f.stmts:
                for call in self.calls(s):
                    for callee in self.callees(call):
                        offset = 1 if callee.params[:1] in (["self"], ["cls"]) and isinstance(call.func, ast.Attribute) else 0
                        bindings = [(i + offset, a) for i, a in enumerate(call.args)]
                        bindings += [(callee.params.index(k.arg), k.value) for k in call.keywords
                                     if k.arg in callee.params]
                        for idx, arg in bindings:
                            if idx >= len(callee.params):
                                continue
                            k = self.effective(self.kinds(arg, f), f)
                            k = {x for x in k if not x.startswith("p:")}
                            cur = callee.param_in.setdefault(idx, set())
                            if not k <= cur:
                                cur |= k
                                changed.add(callee.node)
        return changed

    def effective(self, kinds: Iterable[str], f: FuncFacts) -> set:
        """Kinds with each p:i replaced by what the callers pass for parameter i."""
        out = set()
        for k in kinds:
            if k.startswith("p:"):
                out |= f.param_in.get(int(k[2:]), set())
            elif k.startswith("pt:") and {V, T} & f.param_in.get(int(k[3:]), set()):
                out.add(T)
            out.add(k)
        return out

    def eff(self, expr: ast.AST, f: FuncFacts | None = None) -> set:
        f = f or self.facts_of(expr)
        return self.effective(self.kinds(expr, f), f)

    def is_val(self, kinds: Iterable[str], f: FuncFacts) -> bool:
        eff = self.effective(kinds, f)
        return V in eff or T in eff


def argument_of(callee: FuncFacts, call: ast.Call, i: int) -> ast.AST | None:
    """The expression a call passes for the callee's i-th parameter (obj of `obj.m(...)` for self)."""
    method = callee.params[:1] in (["self"], ["cls"]) and isinstance(call.func, ast.Attribute)
    if method and i == 0:
        return call.func.value
    pos = i - (1 if method else 0)
    if 0 <= pos < len(call.args) and not isinstance(call.args[pos], ast.Starred):
        return call.args[pos]
    name = callee.params[i] if 0 <= i < len(callee.params) else None
    return next((k.value for k in call.keywords if k.arg == name), None)
