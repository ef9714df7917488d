"""Events of each function along the taint facts: *updates* (`.backward()` / autograd.grad on a V
loss), *caches* (writes into tables indexed by V values), *scores* (accumulation of V/T values into a
reported accumulator: a variable that reaches the function's return, an accumulator passed in by the
caller, or a fixed slot of one such as `self.sums[0]`), *predictions* committed per position, *hooks*
(Hessian forward hooks), *knobs* (float settings on a model). Calls of this file's functions carry
the callee's events to the call line, with the callee's summary of each update: scored inside the
callee, or unscored (the caller decides). Only code reachable under the resolved configuration
produces events."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Iterable

from audit.static.analysis import FileAnalysis, callee_name
from audit.static.cfg import CFG
from audit.static.nodes import closure_back, closure_forward, constant_index, inside, names, names_in_target, root_name
from audit.static.taint import CACHE_WRITE_CALLS, HOOK_CALLS, R, T, V, FuncFacts, TaintAnalysis


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
    local_table: bool = False  # a cache write into a table created in this function (not carried)


@dataclass
class Violation:
    rule: str  # rule id of shared/spec/rules.md
    line: int
    message: str
    evidence: str
    severity: str | None = None
    confidence: str | None = None



class EventAnalysis(TaintAnalysis):
    """TaintAnalysis plus the events of every function, callee events carried to their call sites."""

    def __init__(self, fa: FileAnalysis):
        super().__init__(fa)
        for facts in self.funcs.values():
            self._events(facts)
        for _ in range(2):  # callee events reach callers through the call graph
            for facts in self.funcs.values():
                self._carry_callee_events(facts)


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
                seeds |= names(s.value)
            for call in self.calls(s):
                if re.fullmatch(r"print|log\w*|info|write", callee_name(call)):
                    seeds |= set().union(*(names(a) for a in call.args)) if call.args else set()
        return closure_back(seeds, f.deps)

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
        self._tables_among_accumulators(f)

    def _tables_among_accumulators(self, f: FuncFacts) -> None:
        """`counts += torch.bincount(y)` where what another accumulation scores reads counts as a
        table (`counts[ctx]`, `counts / counts.sum()`): an in-place add into a tensor used as a table
        is a table update, not a score. An accumulator added into another (`loss_sum += doc_loss`)
        stays a score."""
        scores = [e for e in f.events if e.kind == "score" and isinstance(e.node, ast.AugAssign)]
        if len(scores) < 2:
            return
        for ev in scores:
            root = root_name(ev.node.target)
            if root is None:
                continue
            for other in scores:
                if other is ev or root_name(other.node.target) == root:
                    continue
                sources = closure_back(names(other.node.value), f.deps)
                exprs = [other.node.value] + [e for name in sources for e in f.defs.get(name, ())]
                if root in sources and any(_reads_as_table(root, e) for e in exprs):
                    ev.kind = "cache"
                    ev.local_table = root in f.local_objects
                    break

    def _aug_event(self, f: FuncFacts, s: ast.AugAssign, reported: set, params: set) -> None:
        k = frozenset(self.kinds(s.value, f))
        if isinstance(s.target, ast.Subscript):
            if constant_index(s.target.slice):
                # `self.sums[0] += nll.sum()`: a fixed slot of an accumulator (BpbAccumulator.add), not
                # a table keyed by the data; scoring when the accumulator is reported or passed in
                self._accumulation(f, s, k, root_name(s.target), reported, params)
                return
            self._table_write(f, s, s.target)
            return
        self._accumulation(f, s, k, root_name(s.target), reported, params)

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
        root = root_name(t)
        if isinstance(s, ast.Assign) and _fresh_row(s.value, f):
            return  # `counts[ctx] = {}`: a new empty row holds no token yet; the counts written into it do
        if (isinstance(s, ast.Assign) and isinstance(t.slice, ast.Name) and not ({V, T} & self.effective(idx, f))
                and self._loops(s, f) and root not in (None, "self")
                and (root in f.local_objects or root in f.params)):
            # `top_token[i] = ...` in a loop over positions: the prediction committed for position i
            f.events.append(Event("predict", s.lineno, s, frozenset(self.kinds(s.value, f)), origin_line=s.lineno))
            return
        if root is None:
            return
        local = root in f.local_objects or (root in f.kinds and root not in f.params and root != "self")
        if local:
            # a table made here before the loop that fills it, keyed by token values and holding a
            # target (`counts[tok, nxt] += 1`); a buffer indexed by positions (`y_batch[b, :n] = ...`)
            # or made inside the loop (per-window scratch) is not
            value = self.kinds(s.value, f) if s.value is not None else set()
            if self._lasting_table(f, root, s) and {V, T} & self.effective(idx, f) \
                    and T in self.effective(idx | value, f):
                f.events.append(Event("cache", s.lineno, s, frozenset(idx | value), origin_line=s.lineno,
                                      local_table=True))
            return
        if V in idx or T in idx or any(x.startswith("p:") for x in idx):
            f.events.append(Event("cache", s.lineno, s, frozenset(idx), origin_line=s.lineno))

    def _lasting_table(self, f: FuncFacts, root: str, write: ast.AST) -> bool:
        """`root` is a container or tensor made in f by a constructor outside every loop around the
        write, so it outlives the iterations (a table, not per-window scratch)."""
        if root not in f.local_objects:
            return False
        loops = self._loops(write, f)
        made = [b for b in self.fa.index.bindings.get(f.node, {}).get(root, ())
                if isinstance(b, ast.Assign) and any(isinstance(t, ast.Name) and t.id == root for t in b.targets)]
        return bool(made) and not any(inside(b, loop) for loop in loops for b in made)

    def _call_event(self, f: FuncFacts, s: ast.stmt, call: ast.Call, reported: set, params: set) -> None:
        name = callee_name(call)
        if name == "backward" and isinstance(call.func, ast.Attribute):
            k = frozenset(self.kinds(call.func.value, f))
            f.events.append(self._update(f, call, k))
        elif name == "grad" and isinstance(call.func, ast.Attribute) and root_name(call.func) in ("torch", "autograd"):
            k = frozenset(self.kinds(call.args[0], f)) if call.args else frozenset()
            f.events.append(self._update(f, call, k))
        elif name in CACHE_WRITE_CALLS or (name == "at" and root_name(call.func) in ("np", "numpy")):
            k = frozenset().union(*(self.kinds(a, f) for a in call.args)) if call.args else frozenset()
            target = call.args[0] if name == "at" and call.args else getattr(call.func, "value", None)
            root = root_name(target) if target is not None else None
            if root and (root not in f.local_objects or root in f.params):
                f.events.append(Event("cache", call.lineno, call, k, origin_line=call.lineno))
            elif root and T in self.effective(k, f) and self._lasting_table(f, root, call):
                f.events.append(Event("cache", call.lineno, call, k, origin_line=call.lineno, local_table=True))
        elif name in HOOK_CALLS and self._accumulates_gram(f):
            # hooks that build X^T X (GPTQ Hessians), not diagnostics probes
            f.events.append(Event("hook", call.lineno, call, frozenset(), origin_line=call.lineno))
        elif (name == "fill_" and isinstance(call.func, ast.Attribute) and isinstance(call.func.value, ast.Attribute)
              and call.func.value.attr != "data" and len(call.args) == 1
              and isinstance(call.args[0], (ast.Constant, ast.Name, ast.UnaryOp))):
            f.events.append(Event("knob", call.lineno, call, frozenset(self.kinds(call, f)), origin_line=call.lineno))
        elif name in ("append", "extend") and isinstance(call.func, ast.Attribute):
            root = root_name(call.func.value)
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
        deps = closure_back(names(call.func.value if isinstance(call.func, ast.Attribute) else call), f.deps)
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
                        if ev.local_table:
                            continue  # the callee's own table ends with the call
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
        return any(p.kind == "predict" and inside(p.node, loops[0]) and self.follows(f, p.node, ev.node)
                   for p in f.events)


    def cfg(self, f: FuncFacts) -> CFG:
        key = ("cfg", f.node)
        if key not in self._memo:
            self._memo[key] = CFG(f.node.body)
        return self._memo[key]

    def stmt_of(self, node: ast.AST) -> ast.AST | None:
        while node is not None and not isinstance(node, ast.stmt):
            node = self.fa.parents.get(node)
        return node

    def follows(self, f: FuncFacts, a: ast.AST, b: ast.AST) -> bool:
        """The statement of b runs after that of a within one iteration of the loops around both
        (audit.static.cfg); two events of one statement keep the order of their origin."""
        return self.cfg(f).follows(self.stmt_of(a), self.stmt_of(b))

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
        seeds = names_in_target(loop.target)
        influenced = closure_forward(seeds, f.deps)
        for node in ast.walk(loop):
            if isinstance(node, ast.Subscript) and (names(node.slice) & influenced):
                if self.is_val(self.kinds(node.value, f), f):
                    return True
            elif isinstance(node, ast.Call) and self.callees(node):
                arg_names = set().union(*(names(a) for a in node.args)) if node.args else set()
                if arg_names & influenced and any(self.is_val(self.kinds(a, f), f) for a in node.args):
                    return True
        return False



def score_roots(f: FuncFacts) -> set:
    """Names read by the accumulations of f (`loss_sum += scored_nll.sum()` -> scored_nll)."""
    roots = set()
    for e in f.events:
        if e.kind == "score" and isinstance(e.node, ast.AugAssign):
            roots |= names(e.node.value)
    return roots



def is_entry_like(f: FuncFacts) -> bool:
    return f.name in ("main", "<module>") or f.name.startswith(("run", "train_and_eval", "evaluate"))


def _reads_as_table(root: str, expr: ast.AST) -> bool:
    """expr looks `root` up by a computed key (`root[ctx]`) or turns it into a distribution
    (`root / root.sum()`, `softmax(root)`)."""
    for node in ast.walk(expr):
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == root \
                and not constant_index(node.slice):
            return True
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and root in names(node.left) \
                and root in names(node.right):
            return True
        if isinstance(node, ast.Call) and callee_name(node) in ("softmax", "log_softmax", "normalize") \
                and any(root in names(a) for a in node.args):
            return True
    return False


def _fresh_row(value: ast.AST, f: FuncFacts) -> bool:
    """An empty container or a constant-filled array (`{}`, `[]`, `np.zeros(259)`), directly or through
    a name the function binds only to one."""
    if isinstance(value, ast.Name):
        defs = f.defs.get(value.id, ())
        return bool(defs) and all(_fresh_row(d, f) for d in defs if not isinstance(d, ast.Name))
    if isinstance(value, (ast.Dict, ast.List, ast.Set)):
        return not (value.keys if isinstance(value, ast.Dict) else value.elts)
    return isinstance(value, ast.Call) and callee_name(value) in ("zeros", "ones", "empty", "full", "dict", "list",
                                                                   "set", "defaultdict", "Counter") \
        and all(isinstance(a, (ast.Constant, ast.Name, ast.Attribute, ast.Tuple)) for a in value.args)
