"""Data flow of validation tokens and targets through one file: taint, summaries, score/update order,
and the local target-taint checks; the layers live in taint.py -> events.py -> ordering.py -> here.

Every value carries a set of *kinds*:

    V   derived from the validation tokens (val_tokens, load_validation_tokens(...), fineweb_val_*
        globs, a loader called with "val", parameters that receive such values)
    T   a target: a val slice shifted by one (`val[w + 1 : ...]`, `toks[1:]`), a read at the largest
        position offset of its function (`int(v[pos + 1])`, `toks[np.arange(s + 1, e + 1)]`, `v[t]` after
        `v[t - 3 : t]`: audit.static.offsets) or anything made from it; a read below that offset is the
        prefix and drops T (`y[t - 2]`), and so does an argmax/multinomial choice
    N   a size of val data (numel/len/shape): not data, but tells a full-length slice from a subset
    R   drawn at random (torch.randint, np.random...)
    S   val data sliced at random positions (a random minibatch of the validation set)
    B   read from a file blob (lzma/zlib decompress, np.frombuffer, read_bytes...)
    o:L a model probability looked up *at the target* (gather / cross_entropy / subscript) at line L
    c:L a count-table entry looked up at the target (`counts.get(tgt)`, `self.table[key(tgt)]`)
    p:i depends on the function's i-th parameter (symbolic; substituted at each call site)
    pt:i a target if the i-th parameter is val data (a shifted slice of it)

How kinds flow: audit.static.taint; positions and targets: audit.static.offsets.

Events (audit.static.events) per function: *updates* (`.backward()` / autograd.grad on a V loss),
*caches* (writes into tables keyed by V values, in-place adds into a tensor read as a table),
*scores* (accumulation of V/T values into a reported accumulator), *hooks*, *knobs*; calls of this
file's functions carry the callee's events to the call line. The order (audit.static.ordering) is
decided on each function's control-flow graph (audit.static.cfg): an update must come after the
scoring of the same data in the same iteration, or train on data a back edge carries from an
iteration that scored it; a val update not scored inside its function is a "pure" update that must
not be followed by scoring in its caller; a table completed over the validation set before a pass
that scores with it is update-before-score, and a re-score when an earlier pass scored; a score after
a model was mutated by val updates is s_1. The local target-taint checks
(C1/C2/ORACLE-1/PREFIX-1/DATA-3/CALIB-*) run here on the same kinds.
Only code reachable under the resolved configuration produces events.
"""

from __future__ import annotations

import ast
from functools import cached_property

from audit.static.analysis import LAYERS, FileAnalysis, callee_name
from audit.static.events import Event, Violation, score_roots
from audit.static.nodes import assigned_roots, closure_forward, has, is_zero, loop_vars, names, names_in_target, short
from audit.static.ordering import OrderAnalysis
from audit.static.taint import B, HOOK_CALLS, MIN_CALLS, N, S, T, V, FuncFacts

__all__ = ["FlowAnalysis", "Event", "Violation", "FuncFacts", "V", "T", "N", "S", "B", "flow_of"]


class FlowAnalysis(OrderAnalysis):
    """Taint facts and order violations of one file (see the module docstring)."""

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
                        short(call),
                    ))
                    break
        for ev in f.events:
            if ev.kind == "hook" and ev.via and V in self.effective(ev.kinds, f) | self._call_val(ev.node, f):
                out.append(Violation(
                    "CALIB-1", ev.line,
                    f"`{ev.via.split(' -> ')[0]}` registers calibration (Hessian) hooks and is called with "
                    f"validation tokens; calibrate on training data or self-generated data",
                    short(ev.node),
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
                    short(node),
                ))
        if isinstance(node.op, (ast.Add, ast.Sub)):
            left, right = self.eff(node.left, f), self.eff(node.right, f)
            if (has(left, "o:") and has(right, "c:")) or (has(left, "c:") and has(right, "o:")):
                out.append(Violation(
                    "C2", node.lineno,
                    "two probabilities looked up only at the target token are blended; the mixture is "
                    "never formed over the whole vocabulary, so it is not a normalised distribution (C2)",
                    short(node),
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
                    short(node),
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
                    short(call),
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
            f"the prediction at line {preds[0].line} is made only when `{short(s.test, 80)}` holds, a test "
            "that reads the target token: the realised token decides how it is predicted (C1); the "
            "channel is inert only if the run's configuration zeroes its weight (check the logged values)",
            short(s.test), confidence="medium",
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
        written = {n for st in s.body for n in assigned_roots(st)}
        if written and written <= self._stabilisers(f):
            return []  # `if e > mx: mx = e` before `exp(e - mx)`: a log-sum-exp maximum, not a choice
        reported_like = written & (self._reported(f) | score_roots(f))
        if not written or not (reported_like or any(isinstance(st, (ast.Assign, ast.AugAssign)) for st in s.body)):
            return []
        return [Violation(
            "ORACLE-1", s.lineno,
            f"`{short(test)}` compares per-token losses computed with the target and keeps the lower one: "
            "oracle selection by the ground truth",
            short(test),
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
        if sl.upper is None or sl.step is not None or (sl.lower is not None and not is_zero(sl.lower)):
            return []
        if not ({V, T} & self.eff(value.value, f)):
            return []
        if names(sl.upper) & loop_vars(self.fa, s) or not self._partial_bound(f, sl.upper):
            return []
        targets = {n for t in s.targets for n in names_in_target(t)}
        users = closure_forward(targets, f.deps)
        reported = self._reported(f)
        if not (users & reported or any(e.kind == "score" and (names(e.node) & users) for e in f.events)):
            return []
        return [Violation(
            "DATA-3", s.lineno,
            f"only the first `{short(sl.upper)}` validation tokens are scored (a subset, not the full "
            "validation set)",
            short(s),
        )]

    def _partial_bound(self, f: FuncFacts, upper: ast.AST, depth: int = 0) -> bool:
        """True when a prefix bound `[:upper]` can stop short of the data: not derived from its length
        (`numel()`/`len`), or capped by something else (`min(h.ppm_subset_tokens, total_tokens)`)."""
        if isinstance(upper, ast.UnaryOp) or is_zero(upper):
            return False  # `[:-1]`, `[:0]`
        if isinstance(upper, ast.Name) and len(f.defs.get(upper.id, ())) == 1 and depth < 3:
            return self._partial_bound(f, f.defs[upper.id][0], depth + 1)
        if isinstance(upper, ast.Call) and callee_name(upper) == "min" and len(upper.args) >= 2:
            return any(N not in self.eff(a, f) and not isinstance(a, ast.Constant) for a in upper.args) \
                or any(isinstance(a, ast.Constant) for a in upper.args)
        return N not in self.eff(upper, f)


def flow_of(fa: FileAnalysis) -> FlowAnalysis:
    """The flow facts of one file, built once (FileAnalysis.flow)."""
    return fa.flow


LAYERS["flow"] = FlowAnalysis
