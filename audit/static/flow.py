"""Data flow of validation tokens and targets through one file: taint, summaries, score/update order.

Every value carries a set of *kinds*:

    V   derived from the validation tokens (val_tokens, load_validation_tokens(...), fineweb_val_*
        globs, a loader called with "val", parameters that receive such values)
    T   a target: a val slice shifted by one (`val[w + 1 : ...]`, `toks[1:]`) or anything made from it
    N   a size of val data (numel/len/shape): not data, but tells a full-length slice from a subset
    R   drawn at random (torch.randint, np.random...)
    S   val data sliced at random positions (a random minibatch of the validation set)
    B   read from a file blob (lzma/zlib decompress, np.frombuffer, read_bytes...)
    o:L a model probability looked up *at the target* (gather / cross_entropy / subscript) at line L
    c:L a count-table entry looked up at the target (`counts.get(tgt)`, `self.table[key(tgt)]`)
    p:i depends on the function's i-th parameter (symbolic; substituted at each call site)
    pt:i a target if the i-th parameter is val data (a shifted slice of it)

Kinds flow through assignments, tuple unpacking, slicing and subscripts, attribute loads, in-place
container writes, calls (library calls: the union of their arguments and receiver; calls of this
file's functions: the callee's summary with p:i replaced by the arguments' kinds) and returns.
Shape queries (numel, len, size, shape, zeros_like...) turn V into N. A record (a dataclass or
NamedTuple of this file) is not tainted as a whole by its constructor's arguments: each field keeps
the kinds passed for it, so `layout.train_pattern` is not val data because `layout.val_pattern` is.

Events recorded per function, in source order: *updates* (`.backward()` / autograd.grad on a V loss;
writes into tables/caches indexed by V values), *scores* (accumulation of V/T values into a reported
accumulator: a variable that reaches the function's return, or an accumulator passed in by the
caller, or a fixed slot of one such as `self.sums[0]` in an accumulator's method), *hooks* (forward-hook registration). Calls of this file's functions carry the callee's
events to the call line. `FlowAnalysis.violations` then decides the order along the control flow:
an update must come after the scoring of the same data (TTT-3 shape: scoring earlier in the same
loop iteration); a val update not scored inside its function is a "pure" update that must not be
followed by scoring in its caller; a score after a model was mutated by val updates is s_1; and the
local target-taint checks (C1/C2/ORACLE-1/PREFIX-1/DATA-3/CALIB-*) run on the same kinds.
Only code reachable under the resolved configuration produces events.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterable

from audit.static.analysis import FileAnalysis, callee_name
from audit.static.config import UNKNOWN

V, T, N, R, B, S = "V", "T", "N", "R", "B", "S"
VAL_NAME = re.compile(r"^(val|valid|validation)(_data)?(_tokens?|_ids|_token_ids)?$|^val_tokens\w*$|^all_val\w*$")
VAL_STRING = re.compile(r"^(val|valid|validation)$|fineweb_val|_val_\*|val_\*|_val\.bin")
SHAPE_CALLS = {"numel", "size", "len", "dim", "nelement", "zeros_like", "ones_like", "empty_like", "full_like",
               "ceil", "floor", "nonzero", "argwhere", "searchsorted", "flatnonzero"}  # sizes and positions
SHAPE_ATTRS = {"shape", "ndim", "dtype", "device", "is_cuda", "itemsize"}
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
class Event:
    kind: str  # update | score | cache | hook | knob
    line: int
    node: ast.AST
    kinds: frozenset  # symbolic kinds of the data behind it (p:i for parameters)
    via: str = ""  # "f -> g" when carried from a callee
    status: str = ""  # for updates: unscored | scored (decided inside the callee)
    warmup: bool = False  # inside a warm-up / compile context
    local_params: bool = False  # the update trains tensors created in this function (SLOT)
    origin_line: int = 0  # the line of the innermost event (in the callee)


@dataclass
class Violation:
    rule: str  # rule id of shared/spec/rules.md
    line: int
    message: str
    evidence: str
    severity: str | None = None
    confidence: str | None = None


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


class FlowAnalysis:
    """Taint facts and order violations of one file (see the module docstring)."""

    def __init__(self, fa: FileAnalysis):
        self.fa = fa
        # (class, attribute) -> kinds stored by `self.attr = ...` in that class's methods; ("*", attr)
        # for stores on other objects. Parameter-relative kinds are not stored: a loader class used
        # for both train and val shards must not make every loader a val loader.
        self.attr_kinds: dict[tuple[str, str], set] = {}
        # record classes (dataclass / NamedTuple) of this file: name -> field names in order. A record
        # built from a val pattern and a train pattern is not val data as a whole: each field keeps the
        # kinds of what was passed for it, in attr_kinds[("*", field)] (field-sensitive taint)
        self.records: dict[str, list[str]] = _record_fields(fa)
        self._grown_attrs: set[str] = set()  # attributes whose stored kinds grew in this pass
        self.funcs: dict[ast.AST, FuncFacts] = {}
        self.by_name: dict[str, list[FuncFacts]] = {}
        self._calls: dict[ast.AST, list] = {}
        self._callees: dict[ast.Call, list] = {}  # call -> callees(call); by_name is fixed after _collect
        self._memo: dict = {}  # (what, key) -> result of the per-function / per-loop helpers below
        _NAMES.clear()  # the memo of the previous file would keep its whole tree alive
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
            returns_before = {node: len(self.funcs[node].returns) for node in dirty}
            for node in dirty:
                self._propagate(self.funcs[node])
            grown = {node for node in dirty if len(self.funcs[node].returns) != returns_before[node]}
            dirty = {c for node in grown for c in callers.get(node, ())}
            dirty |= self._params_from_call_sites()
            dirty |= {node for name in self._grown_attrs for node in self._attr_readers.get(name, ())}
            self._grown_attrs.clear()
            if not dirty:
                break
        for facts in self.funcs.values():
            self._events(facts)
        for _ in range(2):  # callee events reach callers through the call graph
            for facts in self.funcs.values():
                self._carry_callee_events(facts)

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
            out = base | {k for k in index if k != N}
            if _shifted_by_one(e.slice):
                if V in base:
                    out.add(T)
                out |= {"pt:" + k[2:] for k in base if k.startswith("p:")}
            if R in index and V in self.effective(base, f):
                out.add(S)  # val data at randomly drawn positions (a random minibatch of val)
            if T in self.effective(index, f) and not _is_lut(e.value):
                # a stored table (self.counts[...], a global) or a distribution computed here
                table = _root_name(e.value) == "self" or (f.name != "<module>" and _root_name(e.value) not in f.kinds)
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
                for name in _names_in_target(gen.target):
                    inner[name] = it
            elts = [e.key, e.value] if isinstance(e, ast.DictComp) else [e.elt]
            for elt in elts:
                out |= self._kinds(elt, f, inner)
            return out
        if isinstance(e, ast.Lambda):
            return set()
        if isinstance(e, ast.IfExp):
            chosen = self._folded_branch(e)
            if chosen is not None:
                return self._kinds(chosen, f, bound)
        out = set()
        for child in _operands(e):
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
        targets = [T in self.effective(a, f) for a in args]
        if name in ("gather", "take_along_dim", "cross_entropy", "nll_loss") and any(targets):
            if not (isinstance(call.func, ast.Attribute) and _is_lut(call.func.value)):
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
            root = _root_name(target)
            if root:
                idx = self.kinds(target.slice, f)
                return self._bind(f, ast.Name(id=root, ctx=ast.Store()), kinds | {k for k in idx if k != N}, deps,
                                  line)
        return False

    def _propagate(self, f: FuncFacts) -> bool:
        changed = False
        for _ in range(4):
            round_changed = False
            for s in f.stmts:
                if isinstance(s, (ast.Assign, ast.AnnAssign)) and s.value is not None:
                    k = self.kinds(s.value, f)
                    d = _names(s.value)
                    targets = s.targets if isinstance(s, ast.Assign) else [s.target]
                    for t in targets:
                        round_changed |= self._bind(f, t, k, d)
                        for name in _names_in_target(t):
                            exprs = f.defs.setdefault(name, [])
                            if s.value not in exprs:
                                exprs.append(s.value)
                        if isinstance(t, ast.Name) and isinstance(s.value, ast.Call):
                            cname = callee_name(s.value)
                            if cname in CONSTRUCTORS or cname in ("Parameter", "BatchedTTTLoRA"):
                                f.local_objects.add(t.id)
                            if _requires_grad(s.value):
                                f.grad_locals.add(t.id)
                elif isinstance(s, ast.AugAssign):
                    round_changed |= self._bind(f, s.target, self.kinds(s.value, f), _names(s.value))
                elif isinstance(s, (ast.For, ast.AsyncFor)):
                    k = self.kinds(s.iter, f)
                    if (isinstance(s.iter, ast.Call) and callee_name(s.iter) == "enumerate"
                            and isinstance(s.target, ast.Tuple) and len(s.target.elts) == 2):
                        # `for i, tok in enumerate(tokens)`: i is a position, tok the data
                        round_changed |= self._bind(f, s.target.elts[0], self._shape(k), set())
                        round_changed |= self._bind(f, s.target.elts[1], k, _names(s.iter))
                    else:
                        round_changed |= self._bind(f, s.target, k, _names(s.iter))
                elif isinstance(s, (ast.With, ast.AsyncWith)):
                    for item in s.items:
                        if item.optional_vars is not None:
                            round_changed |= self._bind(f, item.optional_vars, self.kinds(item.context_expr, f),
                                                        _names(item.context_expr))
                elif isinstance(s, ast.Return) and s.value is not None:
                    k = self.kinds(s.value, f)
                    if not k <= f.returns:
                        f.returns |= k
                        round_changed = True
                elif isinstance(s, ast.Expr) and isinstance(s.value, ast.Call):
                    call = s.value
                    if callee_name(call) in INPLACE_CONTAINER and isinstance(call.func, ast.Attribute):
                        k = set().union(*(self.kinds(a, f) for a in call.args)) if call.args else set()
                        root = _root_name(call.func.value)
                        if root and k:
                            round_changed |= self._bind(f, ast.Name(id=root, ctx=ast.Store()), k, _names(call),
                                                        call.lineno)
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

    # -- events ----------------------------------------------------------------------------
    def _reported(self, f: FuncFacts) -> set:
        """Names that reach the function's return (the reported accumulators), by dependency."""
        key = ("reported", f.node)
        if key not in self._memo:
            self._memo[key] = self._reported_uncached(f)
        return self._memo[key]

    def _reported_uncached(self, f: FuncFacts) -> set:
        seeds = set()
        for s in f.stmts:
            if isinstance(s, ast.Return) and s.value is not None:
                seeds |= _names(s.value)
            for call in self.calls(s):
                if re.fullmatch(r"print|log\w*|info|write", callee_name(call)):
                    seeds |= set().union(*(_names(a) for a in call.args)) if call.args else set()
        return _closure_back(seeds, f.deps)

    def _events(self, f: FuncFacts) -> None:
        reported = self._reported(f)
        params = set(f.params)
        for s in f.stmts:
            if isinstance(s, ast.AugAssign) and isinstance(s.op, (ast.Add, ast.Sub)):
                self._aug_event(f, s, reported, params)
            elif isinstance(s, (ast.Assign, ast.AugAssign)):
                targets = s.targets if isinstance(s, ast.Assign) else [s.target]
                for t in targets:
                    if isinstance(t, ast.Subscript):
                        self._table_write(f, s, t)
                    elif (isinstance(t, ast.Attribute) and isinstance(s, ast.Assign)
                          and isinstance(s.value, ast.Constant) and type(s.value.value) is float):
                        # `model.temperature = 0.98`: a float knob set on a model object
                        f.events.append(Event("knob", s.lineno, s, frozenset(), origin_line=s.lineno))
            for call in self.calls(s):
                self._call_event(f, s, call, reported, params)

    def _aug_event(self, f: FuncFacts, s: ast.AugAssign, reported: set, params: set) -> None:
        k = frozenset(self.kinds(s.value, f))
        if isinstance(s.target, ast.Subscript):
            if _constant_index(s.target.slice):
                # `self.sums[0] += nll.sum()`: a fixed slot of an accumulator (BpbAccumulator.add), not
                # a table keyed by the data; scoring when the accumulator is reported or passed in
                self._accumulation(f, s, k, _root_name(s.target), reported, params)
                return
            self._table_write(f, s, s.target)
            return
        self._accumulation(f, s, k, _root_name(s.target), reported, params)

    def _accumulation(self, f: FuncFacts, s: ast.AugAssign, k: frozenset, root: str | None, reported: set,
                      params: set) -> None:
        """`acc += value` of data into an accumulator the function reports or was handed: a score."""
        data = {x for x in k if x in (V, T) or x.startswith("p:")}
        if not data or root is None:
            return
        is_acc = root in reported or root in params or (root in self.module_facts.kinds and f.name != "<module>")
        if is_acc:
            f.events.append(Event("score", s.lineno, s, k, origin_line=s.lineno))

    def _table_write(self, f: FuncFacts, s: ast.stmt, t: ast.Subscript) -> None:
        idx = self.kinds(t.slice, f)
        root = _root_name(t)
        if (isinstance(s, ast.Assign) and isinstance(t.slice, ast.Name) and not ({V, T} & idx)
                and self._loops(s, f) and root not in (None, "self")
                and (root in f.local_objects or root in f.params)):
            # `top_token[i] = ...` in a loop over positions: the prediction committed for position i
            f.events.append(Event("predict", s.lineno, s, frozenset(self.kinds(s.value, f)), origin_line=s.lineno))
            return
        if root is None or root in f.local_objects:
            return
        if V in idx or T in idx or any(x.startswith("p:") for x in idx):
            if root in f.kinds and root not in f.params and root != "self":
                return  # a local scratch buffer
            f.events.append(Event("cache", s.lineno, s, frozenset(idx), origin_line=s.lineno))

    def _call_event(self, f: FuncFacts, s: ast.stmt, call: ast.Call, reported: set, params: set) -> None:
        name = callee_name(call)
        if name == "backward" and isinstance(call.func, ast.Attribute):
            k = frozenset(self.kinds(call.func.value, f))
            f.events.append(self._update(f, call, k))
        elif name == "grad" and isinstance(call.func, ast.Attribute) and _root_name(call.func) in ("torch", "autograd"):
            k = frozenset(self.kinds(call.args[0], f)) if call.args else frozenset()
            f.events.append(self._update(f, call, k))
        elif name in CACHE_WRITE_CALLS or (name == "at" and _root_name(call.func) in ("np", "numpy")):
            k = frozenset().union(*(self.kinds(a, f) for a in call.args)) if call.args else frozenset()
            target = call.args[0] if name == "at" and call.args else getattr(call.func, "value", None)
            root = _root_name(target) if target is not None else None
            if root and (root not in f.local_objects or root in f.params):
                f.events.append(Event("cache", call.lineno, call, k, origin_line=call.lineno))
        elif name in HOOK_CALLS and self._accumulates_gram(f):
            # hooks that build X^T X (GPTQ Hessians), not diagnostics probes
            f.events.append(Event("hook", call.lineno, call, frozenset(), origin_line=call.lineno))
        elif (name == "fill_" and isinstance(call.func, ast.Attribute) and isinstance(call.func.value, ast.Attribute)
              and call.func.value.attr != "data" and len(call.args) == 1
              and isinstance(call.args[0], (ast.Constant, ast.Name, ast.UnaryOp))):
            f.events.append(Event("knob", call.lineno, call, frozenset(self.kinds(call, f)), origin_line=call.lineno))
        elif name in ("append", "extend") and isinstance(call.func, ast.Attribute):
            root = _root_name(call.func.value)
            k = frozenset().union(*(self.kinds(a, f) for a in call.args)) if call.args else frozenset()
            if root and root in self._reduced_lists(f) and ({V, T} & k or any(x.startswith("p:") for x in k)):
                f.events.append(Event("score", call.lineno, call, k, origin_line=call.lineno))

    def _accumulates_gram(self, f: FuncFacts) -> bool:
        """f (its nested hook functions included) computes a matrix product: `H += x.T @ x`."""
        key = ("gram", f.node)
        if key not in self._memo:
            self._memo[key] = any(
                (isinstance(n, ast.BinOp) and isinstance(n.op, ast.MatMult))
                or (isinstance(n, ast.Call) and callee_name(n) in ("matmul", "mm", "addmm_", "addmm", "einsum"))
                for n in ast.walk(f.node))
        return self._memo[key]

    def _reduced_lists(self, f: FuncFacts) -> set:
        """Lists that are averaged or summed in f: `losses.append(l)` ... `np.mean(losses)`."""
        out = set()
        for s in f.stmts:
            for call in self.calls(s):
                if callee_name(call) in ("mean", "sum", "fsum", "average", "nanmean"):
                    for a in call.args:
                        if isinstance(a, ast.Name):
                            out.add(a.id)
        return out

    def _update(self, f: FuncFacts, call: ast.Call, k: frozenset) -> Event:
        deps = _closure_back(_names(call.func.value if isinstance(call.func, ast.Attribute) else call), f.deps)
        ev = Event("update", call.lineno, call, k, origin_line=call.lineno)
        ev.local_params = bool(deps & f.grad_locals)
        ev.warmup = self._in_warmup(call, f)
        return ev

    def _in_warmup(self, node: ast.AST, f: FuncFacts) -> bool:
        if re.search(r"warm|compile", f.name, re.I):
            return True
        for anc in self.fa.ancestors(node):
            if anc is f.node:
                break
            header = None
            if isinstance(anc, (ast.If, ast.While)):
                header = anc.test
            elif isinstance(anc, ast.For):
                header = ast.Tuple(elts=[anc.target, anc.iter])
            if header is not None and re.search(r"warm|compile", ast.unparse(header), re.I):
                return True
        return False

    def _carry_callee_events(self, f: FuncFacts) -> None:
        """A call of a local function carries its (pure-update, score, hook, cache) events here."""
        seen = {self._carry_key(e.kind, e.line, e.status, e.kinds) for e in f.events}
        for s in f.stmts:
            for call in self.calls(s):
                callees = self.callees(call)
                if not callees:
                    continue
                args = [self.kinds(a, f) for a in call.args]
                kw = {k.arg: self.kinds(k.value, f) for k in call.keywords}
                receiver = self.kinds(call.func.value, f) if isinstance(call.func, ast.Attribute) else set()
                for callee in callees:
                    if callee is f:
                        continue
                    statuses = self.update_status(callee)
                    for ev in callee.events:
                        kinds = frozenset(self._instantiate(ev.kinds, callee, call, args, kw, receiver))
                        status = statuses.get(id(ev), ev.status)
                        if ev.kind in ("update", "cache") and status != "unscored":
                            status = "scored"
                        via = f"{callee.name}" + (f" -> {ev.via}" if ev.via else "")
                        key = self._carry_key(ev.kind, call.lineno, status, kinds)
                        if key in seen:
                            continue
                        seen.add(key)
                        f.events.append(Event(ev.kind, call.lineno, call, kinds, via=via, status=status,
                                              warmup=ev.warmup or self._in_warmup(call, f),
                                              local_params=ev.local_params, origin_line=ev.origin_line))
        f.events.sort(key=lambda e: (e.line, e.origin_line))

    @staticmethod
    def _carry_key(kind: str, line: int, status: str, kinds: Iterable[str]) -> tuple:
        """One carried event per call, kind, status and data (the first is the evidence)."""
        return kind, line, status, frozenset(k for k in kinds if k in (V, T, R) or k.startswith("p:"))

    # -- the order of updates and scores ---------------------------------------------------
    def is_val(self, kinds: Iterable[str], f: FuncFacts) -> bool:
        eff = self.effective(kinds, f)
        return V in eff or T in eff

    def update_status(self, f: FuncFacts) -> dict[int, str]:
        """For every val update of `f`: scored (a score of the same loop iteration precedes it, or it
        comes after every score), or unscored (no scoring in f at all: the caller decides)."""
        out = {}
        scores = [e for e in f.events if e.kind == "score" and self.is_val(e.kinds, f)]
        for ev in f.events:
            if ev.kind not in ("update", "cache") or not self.is_val(ev.kinds, f):
                continue
            if ev.status == "scored" or (ev.kind == "cache" and self._online(f, ev)):
                out[id(ev)] = "scored"
            elif not scores:
                out[id(ev)] = "unscored"
            else:
                out[id(ev)] = "scored"
        return out

    def _online(self, f: FuncFacts, ev: Event) -> bool:
        """A table write that follows, in the same iteration of a loop over val positions, the
        prediction committed for that position (`hint[i] = table[ctx]` then `table[ctx, tok] += 1`):
        an online, prefix-only cache."""
        loops = [l for l in self._loops(ev.node, f) if self._is_data_loop(l, f)]
        if not loops:
            return False
        return any(p.kind == "predict" and p.line < ev.line and _inside(p.node, loops[0]) for p in f.events)

    @cached_property
    def violations(self) -> list[Violation]:
        out: list[Violation] = []
        for f in self.funcs.values():
            out.extend(self._order_violations(f))
            out.extend(self._local_violations(f))
        unique = {}
        for v in out:
            unique.setdefault((v.rule, v.line), v)
        return sorted(unique.values(), key=lambda v: (v.line, v.rule))

    def _loops(self, node: ast.AST, f: FuncFacts) -> list[ast.AST]:
        """Enclosing loops of `node` inside f, innermost first."""
        loops = []
        for anc in self.fa.ancestors(node):
            if anc is f.node:
                break
            if isinstance(anc, (ast.For, ast.AsyncFor, ast.While)):
                loops.append(anc)
        return loops

    def _is_data_loop(self, loop: ast.AST, f: FuncFacts) -> bool:
        """A loop whose iterations visit different val data (chunks, windows, docs), unlike an epoch
        loop that re-visits the same data."""
        key = ("data_loop", loop)
        if key not in self._memo:
            self._memo[key] = self._is_data_loop_uncached(loop, f)
        return self._memo[key]

    def _is_data_loop_uncached(self, loop: ast.AST, f: FuncFacts) -> bool:
        if isinstance(loop, ast.While):
            return True
        if self.is_val(self.kinds(loop.iter, f), f) and not isinstance(loop.iter, ast.Call):
            return True
        if isinstance(loop.iter, ast.Call) and callee_name(loop.iter) != "range" and self.is_val(self.kinds(loop.iter, f), f):
            return True
        seeds = _names_in_target(loop.target)
        influenced = _closure_forward(seeds, f.deps)
        for node in ast.walk(loop):
            if isinstance(node, ast.Subscript) and (_names(node.slice) & influenced):
                if self.is_val(self.kinds(node.value, f), f):
                    return True
            elif isinstance(node, ast.Call) and self.callees(node):
                arg_names = set().union(*(_names(a) for a in node.args)) if node.args else set()
                if arg_names & influenced and any(self.is_val(self.kinds(a, f), f) for a in node.args):
                    return True
        return False

    def _first_iteration_only(self, node: ast.AST, loop: ast.AST, f: FuncFacts) -> bool:
        names = _names_in_target(loop.target) if isinstance(loop, (ast.For, ast.AsyncFor)) else set()
        for anc in self.fa.ancestors(node):
            if anc is loop:
                break
            if isinstance(anc, ast.If) and isinstance(anc.test, ast.Compare) and len(anc.test.ops) == 1:
                test = anc.test
                if isinstance(test.ops[0], ast.Eq) and _names(test.left) & names:
                    if isinstance(test.comparators[0], ast.Constant) and test.comparators[0].value == 0:
                        return True
        return False

    def _order_violations(self, f: FuncFacts) -> list[Violation]:
        out = []
        scores = [e for e in f.events if e.kind == "score" and self.is_val(e.kinds, f)]
        for ev in f.events:
            if ev.kind not in ("update", "cache") or not self.is_val(ev.kinds, f) or ev.status == "scored":
                continue
            if ev.kind == "cache" and self._online(f, ev):
                continue
            where = self._describe(ev)
            loops = self._loops(ev.node, f)
            data_loops = [l for l in loops if self._is_data_loop(l, f)]
            inner = data_loops[0] if data_loops else None
            same_iter = [s for s in scores if inner is not None and _inside(s.node, inner)]
            before = [s for s in same_iter if s.line < ev.line or (s.line == ev.line and s.origin_line < ev.origin_line)]
            later = [s for s in scores if s.line > ev.line and not (inner is not None and _inside(s.node, inner) and before)]
            if before:
                out.extend(self._epoch_rescoring(f, ev, before))
                continue
            if same_iter and inner is not None and self._trains_previous_iteration(f, ev, inner):
                continue  # trains on chunk ci-1, which the previous iteration scored
            if same_iter and self._prefix_only(f, ev, same_iter):
                continue  # adapts on the context positions [:s] only, scores [s:]: already-scored tokens
            if ev.kind == "cache" and not any(self._cache_feeds_score(f, ev, sc) for sc in scores if sc.line >= ev.line):
                continue  # the scored values were computed before the table write and never read it
            if not scores:
                if not _is_entry_like(f) and f.name != "<module>":
                    continue  # a pure update: judged where it is called
                out.extend(self._pure_update_violation(ev, where, scored_later=False))
                continue
            if same_iter or later:
                out.extend(self._pure_update_violation(ev, where, scored_later=True, same_loop=bool(same_iter)))
                if not same_iter and any(s.line < ev.line for s in scores):
                    after = [s for s in scores if s.line > ev.line]
                    if after:
                        out.append(Violation(
                            "TTT-2", after[0].line,
                            f"the validation set is scored again at line {after[0].line} after the model was "
                            f"updated on it ({where}); the reported score must be s_0, the first pass",
                            self._evidence(after[0]),
                        ))
        out.extend(self._rescore_after_scored_ttt(f, scores))
        return out

    def _pure_update_violation(self, ev: Event, where: str, scored_later: bool, same_loop: bool = False) -> list:
        if ev.local_params:
            return [Violation(
                "SLOT-1", ev.line,
                f"per-batch parameters created with requires_grad are optimised on validation positions "
                f"({where}) and the same positions are then scored with them (scored-region SLOT)",
                self._evidence(ev),
            )]
        if ev.warmup:
            return [Violation(
                "TTT-4", ev.line,
                f"backward on validation tokens that have not been scored yet, in a warm-up/compile path "
                f"({where}); disputed: #1530/#1610 were merged with a val-token warm-up on throw-away weights",
                self._evidence(ev), severity="warning", confidence="medium",
            )]
        if not scored_later:
            return [Violation(
                "TTT-4", ev.line,
                f"backward / table update on validation tokens that this code never scores ({where})",
                self._evidence(ev), severity="warning", confidence="low",
            )]
        kind = "state is updated" if ev.kind == "update" else "a table/cache is written"
        out = [Violation(
            "TTT-1", ev.line,
            f"{kind} from validation tokens ({where}) before those tokens are scored"
            + (" in the same loop iteration" if same_loop else " by a later evaluation"),
            self._evidence(ev),
        )]
        if not same_loop and ev.kind == "update":
            out.append(Violation(
                "DATA-1", ev.line,
                f"the model trains on validation tokens ({where}) before the evaluation that scores them: "
                "training on the validation set",
                self._evidence(ev),
            ))
        return out

    def _trains_previous_iteration(self, f: FuncFacts, ev: Event, loop: ast.AST) -> bool:
        """The update's data is indexed with `ci - k` (k >= 1) of the loop variable `ci`: it trains on
        what an earlier iteration scored (`if ci > 0: train(chunks[ci - 1])` before scoring chunk ci)."""
        if not isinstance(loop, (ast.For, ast.AsyncFor)):
            return False
        loop_vars = _names_in_target(loop.target)
        node = ev.node.func.value if isinstance(ev.node, ast.Call) and isinstance(ev.node.func, ast.Attribute) else ev.node
        exprs = [node] + [e for name in _closure_back(_names(node), f.deps) for e in f.defs.get(name, ())]
        for expr in exprs:
            for sub in ast.walk(expr):
                if (isinstance(sub, ast.BinOp) and isinstance(sub.op, ast.Sub) and isinstance(sub.left, ast.Name)
                        and sub.left.id in loop_vars and isinstance(sub.right, ast.Constant)
                        and isinstance(sub.right.value, int) and sub.right.value >= 1):
                    return True
        return False

    def _cache_feeds_score(self, f: FuncFacts, ev: Event, score: Event) -> bool:
        """Whether the table written by `ev` is read by what `score` accumulates: by the score itself
        or by an assignment between the write and the score that the accumulated value depends on."""
        node = ev.node
        if isinstance(node, (ast.Assign, ast.AugAssign)):
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
            root = _root_name(target)
        elif isinstance(node, ast.Call) and callee_name(node) == "at" and node.args:
            root = _root_name(node.args[0])
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            root = _root_name(node.func.value)
        else:
            root = None
        if root is None:
            return True
        value = score.node.value if isinstance(score.node, ast.AugAssign) else score.node
        if root in _names(value):
            return True
        for name in _closure_back(_names(value), f.deps):
            for expr in f.defs.get(name, ()):
                if ev.line < getattr(expr, "lineno", 0) <= score.line and root in _names(expr):
                    return True
        return False

    def _slice_bounds(self, f: FuncFacts, node: ast.AST) -> tuple[set, set]:
        """(names used as `[:u]` upper bounds, names used as `[l:]` lower bounds) in the expressions
        that `node` is computed from (its own text and the assignments of the names it reads)."""
        exprs = [node]
        for name in _closure_back(_names(node), f.deps):
            exprs.extend(f.defs.get(name, ()))
        uppers, lowers = set(), set()
        for expr in exprs:
            for sub in ast.walk(expr):
                if isinstance(sub, ast.Slice):
                    if (sub.lower is None or _is_zero(sub.lower)) and isinstance(sub.upper, ast.Name):
                        uppers.add(sub.upper.id)
                    if isinstance(sub.lower, ast.Name):
                        lowers.add(sub.lower.id)
        return uppers, lowers

    def _prefix_only(self, f: FuncFacts, ev: Event, scores: list) -> bool:
        """The update reads positions `[:s]` of the window and the scoring `[s:]`: context-only
        adaptation on tokens earlier windows scored (#1350 shape; never ruled illegal)."""
        target = ev.node.func.value if isinstance(ev.node, ast.Call) and isinstance(ev.node.func, ast.Attribute) else ev.node
        up_uppers, up_lowers = self._slice_bounds(f, target)
        for s in scores:
            value = s.node.value if isinstance(s.node, ast.AugAssign) else s.node
            _, score_lowers = self._slice_bounds(f, value)
            split = (up_uppers & score_lowers) - up_lowers
            if not split:
                return False
        return bool(scores)

    def _epoch_rescoring(self, f: FuncFacts, ev: Event, before: list[Event]) -> list[Violation]:
        """Score and update inside one loop that re-visits the same data (an epoch loop): every epoch
        after the first scores tokens the model already trained on (C4: s_1, 'keep last epoch')."""
        out = []
        for s in before:
            for loop in self._loops(s.node, f):
                if not _inside(ev.node, loop) or self._is_data_loop(loop, f):
                    continue
                if self._first_iteration_only(s.node, loop, f):
                    continue
                out.append(Violation(
                    "TTT-2", s.line,
                    f"tokens are scored inside a loop over epochs (line {loop.lineno}) that also trains on "
                    f"them ({self._describe(ev)}); every epoch after the first scores adapted weights",
                    self._evidence(s),
                ))
                return out
        return out

    def _rescore_after_scored_ttt(self, f: FuncFacts, scores: list[Event]) -> list[Violation]:
        """A score call after a call that trained on val (score-first TTT mutated the model): s_1."""
        out = []
        mutators = [e for e in f.events if e.kind == "update" and e.status == "scored" and e.via
                    and self.is_val(e.kinds, f) and not _on_a_copy(e.node)]
        # a knob written directly in the straight-line evaluation sequence, not a schedule inside the
        # training loop (which also runs periodic evaluations)
        knobs = [e for e in f.events if e.kind == "knob" and not e.via and not self._loops(e.node, f)]
        for s in scores:
            if not s.via:
                continue
            prior = [m for m in mutators if m.line < s.line and m.node is not s.node]
            if prior and not any(_inside(s.node, l) for l in self._loops(prior[-1].node, f)):
                m = prior[-1]
                out.append(Violation(
                    "TTT-2", s.line,
                    f"`{s.via.split(' -> ')[0]}` scores the validation set again after `{m.via.split(' -> ')[0]}` "
                    f"(line {m.line}) trained the model on it; report s_0 from the first pass, not s_1",
                    self._evidence(s),
                ))
                knob = [k for k in knobs if m.line < k.line < s.line]
                if knob:
                    out.append(Violation(
                        "CALIB-2", knob[0].line,
                        f"an evaluation knob is set (`{_short(knob[0].node)}`) after the validation set was "
                        f"scored, then the set is scored again (line {s.line}) with it",
                        self._evidence(knob[0]),
                    ))
                break
        # a knob set between two score calls, with no training in between
        calls = [s for s in scores if s.via]
        for k in knobs:
            prev = [s for s in calls if s.line < k.line]
            nxt = [s for s in calls if s.line > k.line]
            if prev and nxt and not any(v.rule == "CALIB-2" for v in out):
                out.append(Violation(
                    "CALIB-2", k.line,
                    f"an evaluation knob is set (`{_short(k.node)}`) after the validation set was scored "
                    f"(line {prev[-1].line}), then the set is scored again (line {nxt[0].line})",
                    self._evidence(k),
                ))
        return out

    # -- local target-taint checks ---------------------------------------------------------
    def _local_violations(self, f: FuncFacts) -> list[Violation]:
        out = []
        has_scores = any(e.kind == "score" and not e.via and self.is_val(e.kinds, f) for e in f.events)
        for s in f.stmts:
            for node in self.exprs(s):
                if isinstance(node, ast.BinOp):
                    # the first blend / key of a function is the evidence; the rest repeat it
                    seen = {v.rule for v in out}
                    out.extend(v for v in self._binop_checks(f, node) if v.rule not in seen)
                elif isinstance(node, ast.Compare):
                    out.extend(self._compare_checks(f, node, s))
                elif isinstance(node, ast.Call):
                    out.extend(self._call_checks(f, node, has_scores))
            if isinstance(s, ast.If):
                out.extend(self._oracle_if(f, s))
                if not any(v.rule == "C1" for v in out):  # the outermost gate is the evidence
                    out.extend(self._target_gate(f, s))
            if isinstance(s, ast.Assign) and has_scores:
                out.extend(self._subset(f, s))
        # calibration hooks registered here and fed val data here
        hooks = [e for e in f.events if e.kind == "hook" and not e.via]
        if hooks:
            for call in (c for st in f.stmts for c in self.calls(st)):
                if call.lineno > hooks[0].line and not self.callees(call) and any(
                        V in self.eff(a, f) for a in call.args) and callee_name(call) not in HOOK_CALLS:
                    out.append(Violation(
                        "CALIB-1", call.lineno,
                        "calibration hooks registered here are fed validation tokens",
                        _short(call),
                    ))
                    break
        for ev in f.events:
            if ev.kind == "hook" and ev.via and V in self.effective(ev.kinds, f) | self._call_val(ev.node, f):
                out.append(Violation(
                    "CALIB-1", ev.line,
                    f"`{ev.via.split(' -> ')[0]}` registers calibration (Hessian) hooks and is called with "
                    f"validation tokens; calibrate on training data or self-generated data",
                    _short(ev.node),
                ))
        # DATA-3: the scored values come from randomly drawn val batches
        for ev in f.events:
            if ev.kind == "score" and S in ev.kinds:
                out.append(Violation(
                    "DATA-3", ev.line,
                    "the reported validation loss is accumulated over randomly drawn validation batches, not "
                    "the full validation set",
                    self._evidence(ev),
                ))
        return out

    def _call_val(self, call: ast.AST, f: FuncFacts) -> set:
        if not isinstance(call, ast.Call):
            return set()
        return set().union(*(self.eff(a, f) for a in call.args)) if call.args else set()

    def _binop_checks(self, f: FuncFacts, node: ast.BinOp) -> list[Violation]:
        out = []
        if isinstance(node.op, ast.BitXor):
            left, right = self.eff(node.left, f), self.eff(node.right, f)
            if T in left or T in right:
                out.append(Violation(
                    "C1", node.lineno,
                    "the target token is hashed into a lookup key (`^`): the probability of x_t then "
                    "depends on x_t itself (C1: target in the n-gram key)",
                    _short(node),
                ))
        if isinstance(node.op, (ast.Add, ast.Sub)):
            left, right = self.eff(node.left, f), self.eff(node.right, f)
            if (_has(left, "o:") and _has(right, "c:")) or (_has(left, "c:") and _has(right, "o:")):
                out.append(Violation(
                    "C2", node.lineno,
                    "two probabilities looked up only at the target token are blended; the mixture is "
                    "never formed over the whole vocabulary, so it is not a normalised distribution (C2)",
                    _short(node),
                ))
        return out

    def _compare_checks(self, f: FuncFacts, node: ast.Compare, stmt: ast.stmt) -> list[Violation]:
        if not isinstance(node.ops[0], (ast.Eq, ast.NotEq)):
            return []
        left, right = self.eff(node.left, f), self.eff(node.comparators[0], f)
        for a, b in ((left, right), (right, left)):
            if T in a and B in b and T not in b:
                return [Violation(
                    "PREFIX-1", node.lineno,
                    "validation targets are compared with tokens read from a stored blob: the artifact "
                    "carries validation tokens (paid prefix)",
                    _short(node),
                )]
        return []

    def _call_checks(self, f: FuncFacts, call: ast.Call, has_scores: bool) -> list[Violation]:
        name = callee_name(call)
        if name in MIN_CALLS and has_scores:
            args = [self.eff(a, f) for a in call.args]
            if len(args) >= 2 and sum(T in a for a in args) >= 2:
                return [Violation(
                    "ORACLE-1", call.lineno,
                    "the per-token loss is the minimum over several scorers/passes computed with the "
                    "target: the ground truth selects the score",
                    _short(call),
                )]
        return []

    def _target_gate(self, f: FuncFacts, s: ast.If) -> list[Violation]:
        """A prediction written only when a test on the realised target holds (a word-start gate
        reading the target's token class): p(x_t) then depends on x_t (C1)."""
        if T not in self.eff(s.test, f):
            return []
        end = getattr(s, "end_lineno", s.lineno)
        preds = [e for e in f.events if e.kind == "predict" and not e.via and s.lineno < e.line <= end]
        if not preds:
            return []
        return [Violation(
            "C1", s.lineno,
            f"the prediction at line {preds[0].line} is made only when `{_short(s.test, 80)}` holds, a test "
            "that reads the target token: the realised token decides how it is predicted (C1); the "
            "channel is inert only if the run's configuration zeroes its weight (check the logged values)",
            _short(s.test), confidence="medium",
        )]

    def _oracle_if(self, f: FuncFacts, s: ast.If) -> list[Violation]:
        test = s.test
        if not (isinstance(test, ast.Compare) and len(test.ops) == 1
                and isinstance(test.ops[0], (ast.Lt, ast.Gt, ast.LtE, ast.GtE))):
            return []
        left, right = self.eff(test.left, f), self.eff(test.comparators[0], f)
        if not (T in left and T in right) or not self._loops(s, f):
            return []
        if not any(e.kind == "score" and not e.via and self.is_val(e.kinds, f) for e in f.events):
            return []  # comparing two evaluations' results (model selection) is not per-token
        written = {n for st in s.body for n in _assigned_roots(st)}
        if written and written <= self._stabilisers(f):
            return []  # `if e > mx: mx = e` before `exp(e - mx)`: a log-sum-exp maximum, not a choice
        reported_like = written & (self._reported(f) | _score_roots(f))
        if not written or not (reported_like or any(isinstance(st, (ast.Assign, ast.AugAssign)) for st in s.body)):
            return []
        return [Violation(
            "ORACLE-1", s.lineno,
            f"`{_short(test)}` compares per-token losses computed with the target and keeps the lower one: "
            "oracle selection by the ground truth",
            _short(test),
        )]

    def _stabilisers(self, f: FuncFacts) -> set:
        """Names subtracted inside exp(...): the running maximum of a log-sum-exp."""
        key = ("stabilisers", f.node)
        if key in self._memo:
            return self._memo[key]
        out = self._memo[key] = set()
        for s in f.stmts:
            for call in self.calls(s):
                if callee_name(call) == "exp":
                    for node in ast.walk(call):
                        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub) and isinstance(node.right, ast.Name):
                            out.add(node.right.id)
        return out

    def _subset(self, f: FuncFacts, s: ast.Assign) -> list[Violation]:
        value = s.value
        while isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute):
            value = value.func.value
        if not (isinstance(value, ast.Subscript) and isinstance(value.slice, ast.Slice)):
            return []
        sl = value.slice
        if sl.upper is None or sl.step is not None or (sl.lower is not None and not _is_zero(sl.lower)):
            return []
        if not ({V, T} & self.eff(value.value, f)):
            return []
        if _names(sl.upper) & _loop_vars(self.fa, s) or not self._partial_bound(f, sl.upper):
            return []
        targets = {n for t in s.targets for n in _names_in_target(t)}
        users = _closure_forward(targets, f.deps)
        reported = self._reported(f)
        if not (users & reported or any(e.kind == "score" and (_names(e.node) & users) for e in f.events)):
            return []
        return [Violation(
            "DATA-3", s.lineno,
            f"only the first `{_short(sl.upper)}` validation tokens are scored (a subset, not the full "
            "validation set)",
            _short(s),
        )]

    def _partial_bound(self, f: FuncFacts, upper: ast.AST, depth: int = 0) -> bool:
        """True when a prefix bound `[:upper]` can stop short of the data: not derived from its length
        (`numel()`/`len`), or capped by something else (`min(h.ppm_subset_tokens, total_tokens)`)."""
        if isinstance(upper, ast.UnaryOp) or _is_zero(upper):
            return False  # `[:-1]`, `[:0]`
        if isinstance(upper, ast.Name) and len(f.defs.get(upper.id, ())) == 1 and depth < 3:
            return self._partial_bound(f, f.defs[upper.id][0], depth + 1)
        if isinstance(upper, ast.Call) and callee_name(upper) == "min" and len(upper.args) >= 2:
            return any(N not in self.eff(a, f) and not isinstance(a, ast.Constant) for a in upper.args) \
                or any(isinstance(a, ast.Constant) for a in upper.args)
        return N not in self.eff(upper, f)

    # -- evidence --------------------------------------------------------------------------
    def _describe(self, ev: Event) -> str:
        what = {"update": "backward/step", "cache": "table write", "score": "loss accumulation"}.get(ev.kind, ev.kind)
        if ev.via:
            return f"{what} in `{ev.via}` (line {ev.origin_line}) called at line {ev.line}"
        return f"{what} at line {ev.line}"

    def _evidence(self, ev: Event) -> str:
        return _short(ev.node)


# -- small ast helpers -----------------------------------------------------------------------
def _short(node: ast.AST, limit: int = 160) -> str:
    text = " ".join(ast.unparse(node).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


_NAMES: dict = {}


def _names(node: ast.AST) -> set:
    """The names an expression (or statement) reads or binds, nested ones included (memoised)."""
    out = _NAMES.get(node)
    if out is None:
        found = []
        stack = [node]
        while stack:  # ast.walk without its generator and iter_fields overhead (a hot path)
            n = stack.pop()
            if n.__class__ is ast.Name:
                found.append(n.id)
                continue
            for fname in n._fields:
                value = getattr(n, fname, None)
                if value.__class__ is list:
                    stack.extend(v for v in value if isinstance(v, ast.AST))
                elif isinstance(value, ast.AST):
                    stack.append(value)
        out = frozenset(found)
        if len(_NAMES) > 200_000:
            _NAMES.clear()
        _NAMES[node] = out
    return set(out)


_names_in_target = _names  # the names a binding target binds (subscript / attribute bases included)


def _root_name(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call, ast.Starred)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _closure_back(seeds: set, deps: dict) -> set:
    out, stack = set(seeds), list(seeds)
    while stack:
        for d in deps.get(stack.pop(), ()):
            if d not in out:
                out.add(d)
                stack.append(d)
    return out


def _closure_forward(seeds: set, deps: dict) -> set:
    out = set(seeds)
    changed = True
    while changed:
        changed = False
        for name, ds in deps.items():
            if name not in out and ds & out:
                out.add(name)
                changed = True
    return out


def _shifted_by_one(sl: ast.AST) -> bool:
    """`a + 1 : b + 1`, `1:`, `[:, 1:]`: a slice that starts one token later than its input."""
    if isinstance(sl, ast.Tuple):
        return any(_shifted_by_one(e) for e in sl.elts)
    if isinstance(sl, ast.Slice) and sl.lower is not None:
        lo = sl.lower
        if isinstance(lo, ast.Constant) and lo.value == 1:
            return True
        if isinstance(lo, ast.BinOp) and isinstance(lo.op, ast.Add):
            return any(isinstance(x, ast.Constant) and x.value == 1 for x in (lo.left, lo.right))
    return False


def _is_lut(node: ast.AST) -> bool:
    """A byte/boundary lookup table of the tokenizer (base_bytes_lut[tgt] is the canonical use)."""
    text = ast.unparse(node).lower()
    return "lut" in text or "byte" in text or "boundary" in text or "leading_space" in text


def _on_a_copy(call: ast.AST) -> bool:
    """`eval_ttt(copy.deepcopy(model), ...)`: the training happens on a throw-away copy."""
    return isinstance(call, ast.Call) and any(
        isinstance(a, ast.Call) and callee_name(a) in ("deepcopy", "copy") for a in call.args)


_OPERAND_FIELDS = {
    ast.BinOp: ("left", "right"), ast.UnaryOp: ("operand",), ast.Starred: ("value",),
    ast.FormattedValue: ("value",), ast.Slice: ("lower", "upper", "step"), ast.Await: ("value",),
    ast.NamedExpr: ("value",), ast.IfExp: ("test", "body", "orelse"),
}
_OPERAND_LISTS = {
    ast.BoolOp: ("values",), ast.Tuple: ("elts",), ast.List: ("elts",), ast.Set: ("elts",),
    ast.JoinedStr: ("values",), ast.Dict: ("keys", "values"),
}


def _operands(e: ast.AST) -> list:
    """The sub-expressions whose kinds an expression's kinds are made of (fast paths for the
    common node types; any other node: its expression children)."""
    fields = _OPERAND_FIELDS.get(type(e))
    if fields is not None:
        return [v for v in (getattr(e, name) for name in fields) if v is not None]
    lists = _OPERAND_LISTS.get(type(e))
    if lists is not None:
        return [v for name in lists for v in getattr(e, name) if v is not None]
    if isinstance(e, ast.Compare):
        return [e.left, *e.comparators]
    return [c for c in ast.iter_child_nodes(e)
            if not isinstance(c, (ast.expr_context, ast.operator, ast.cmpop, ast.boolop, ast.unaryop))]


def _constant_index(index: ast.AST) -> bool:
    """`[0]`, `[0, 1]`: a fixed slot, not a position or key computed from data."""
    elts = index.elts if isinstance(index, ast.Tuple) else [index]
    return all(isinstance(e, ast.Constant) for e in elts)


def _has(kinds: Iterable[str], prefix: str) -> bool:
    return any(k.startswith(prefix) for k in kinds)


def _is_zero(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value == 0


def _inside(node: ast.AST, container: ast.AST) -> bool:
    start, end = container.lineno, getattr(container, "end_lineno", container.lineno)
    return start <= getattr(node, "lineno", -1) <= end


def _assigned_roots(s: ast.stmt) -> set:
    out = set()
    for node in ast.walk(s):
        if isinstance(node, ast.Assign):
            for t in node.targets:
                r = _root_name(t)
                if r:
                    out.add(r)
        elif isinstance(node, ast.AugAssign):
            r = _root_name(node.target)
            if r:
                out.add(r)
    return out


def _score_roots(f: FuncFacts) -> set:
    """Names read by the accumulations of f (`loss_sum += scored_nll.sum()` -> scored_nll)."""
    roots = set()
    for e in f.events:
        if e.kind == "score" and isinstance(e.node, ast.AugAssign):
            roots |= _names(e.node.value)
    return roots


def _loop_vars(fa: FileAnalysis, node: ast.AST) -> set:
    out = set()
    for anc in fa.ancestors(node):
        if isinstance(anc, (ast.For, ast.AsyncFor)):
            out |= _names_in_target(anc.target)
    return out


def _record_fields(fa: FileAnalysis) -> dict[str, list[str]]:
    """{class name: annotated field names} of the dataclasses and NamedTuples defined outside functions."""
    out = {}
    for s in fa.index.stmts.get(fa.tree, ()):
        if not isinstance(s, ast.ClassDef):
            continue
        marks = [_root_name(d) if not isinstance(d, ast.Attribute) else d.attr for d in s.decorator_list]
        marks += [b.attr if isinstance(b, ast.Attribute) else _root_name(b) for b in s.bases]
        marks += [d.func.attr for d in s.decorator_list if isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute)]
        if not {"dataclass", "NamedTuple"} & set(marks):
            continue
        out[s.name] = [st.target.id for st in s.body if isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name)
                       and "ClassVar" not in ast.unparse(st.annotation)]
    return out


def _is_entry_like(f: FuncFacts) -> bool:
    return f.name in ("main", "<module>") or f.name.startswith(("run", "train_and_eval", "evaluate"))


def _requires_grad(call: ast.Call) -> bool:
    if callee_name(call) == "Parameter":
        return True
    return any(k.arg == "requires_grad" and isinstance(k.value, ast.Constant) and k.value.value for k in call.keywords)
