"""The order of updates and scores: an update must come after the scoring of the same data (TTT-3
shape: scoring earlier in the same loop iteration); a val update not scored inside its function is a
"pure" update that must not be followed by scoring in its caller (TTT-1, DATA-1, TTT-4, SLOT-1); a
score after a model was mutated by val updates is s_1 (TTT-2), and a knob set between two scorings
of the same model is calibration on val (CALIB-2)."""

from __future__ import annotations

import ast

from audit.static.analysis import callee_name
from audit.static.events import Event, EventAnalysis, Violation, is_entry_like
from audit.static.nodes import closure_back, inside, is_zero, names, names_in_target, on_a_copy, root_name, short
from audit.static.taint import FuncFacts


class OrderAnalysis(EventAnalysis):
    """EventAnalysis plus the order violations of each function."""

    def _first_iteration_only(self, node: ast.AST, loop: ast.AST, f: FuncFacts) -> bool:
        loop_names = names_in_target(loop.target) if isinstance(loop, (ast.For, ast.AsyncFor)) else set()
        for anc in self.fa.ancestors(node):
            if anc is loop:
                break
            if isinstance(anc, ast.If) and isinstance(anc.test, ast.Compare) and len(anc.test.ops) == 1:
                test = anc.test
                if isinstance(test.ops[0], ast.Eq) and names(test.left) & loop_names:
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
            same_iter = [s for s in scores if inner is not None and inside(s.node, inner)]
            before = [s for s in same_iter if self._precedes(f, s, ev)]
            later = [s for s in scores if self._precedes(f, ev, s) and not (inner is not None and inside(s.node, inner) and before)]
            if before:
                out.extend(self._epoch_rescoring(f, ev, before))
                if ev.kind == "cache":
                    out.extend(self._second_pass(f, ev, data_loops, scores))
                continue
            if same_iter and inner is not None and self._trains_previous_iteration(f, ev, inner):
                continue  # trains on chunk ci-1, which the previous iteration scored
            if same_iter and inner is not None and self._trains_carried_data(f, ev, inner, same_iter):
                continue  # trains on data the previous iteration scored and kept (a back edge carries it)
            if same_iter and self._prefix_only(f, ev, same_iter):
                continue  # adapts on the context positions [:s] only, scores [s:]: already-scored tokens
            if ev.kind == "cache" and not any(self._cache_feeds_score(f, ev, sc) for sc in scores
                                              if sc.node is ev.node or self._precedes(f, ev, sc)):
                continue  # the scored values were computed before the table write and never read it
            if not scores:
                if not is_entry_like(f) and f.name != "<module>":
                    continue  # a pure update: judged where it is called
                out.extend(self._pure_update_violation(ev, where, scored_later=False))
                continue
            if same_iter or later:
                out.extend(self._pure_update_violation(ev, where, scored_later=True, same_loop=bool(same_iter)))
                if not same_iter and any(self._precedes(f, s, ev) for s in scores):
                    after = [s for s in scores if self._precedes(f, ev, s)]
                    if after:
                        out.append(Violation(
                            "TTT-2", after[0].line,
                            f"the validation set is scored again at line {after[0].line} after the model was "
                            f"updated on it ({where}); the reported score must be s_0, the first pass",
                            self._evidence(after[0]),
                        ))
        out.extend(self._rescore_after_scored_ttt(f, scores))
        return out

    def _precedes(self, f: FuncFacts, a: Event, b: Event) -> bool:
        """Event a happens before event b in one iteration of the loops around both (the control-flow
        graph); two events of one statement (a call carrying several) keep their origin order."""
        sa, sb = self.stmt_of(a.node), self.stmt_of(b.node)
        if sa is sb:
            return a.origin_line < b.origin_line
        return self.cfg(f).follows(sa, sb)

    def _second_pass(self, f: FuncFacts, ev: Event, data_loops: list, scores: list[Event]) -> list[Violation]:
        """A table written score-first in one pass over the validation data, then read by a later
        pass that scores the data again: the second pass sees a table holding every token it scores
        (a complete cache: update before score) and reports a re-score."""
        loop = data_loops[-1] if data_loops else None
        if loop is None:
            return []
        for s in scores:
            if inside(s.node, loop) or not self.cfg(f).strictly_before(self.stmt_of(ev.node), self.stmt_of(s.node)):
                continue
            if not self._cache_feeds_score(f, ev, s):
                continue
            return [
                Violation("TTT-1", ev.line,
                          f"the table written at line {ev.line} is complete over the validation set when the "
                          f"pass at line {s.line} scores those tokens with it (a complete cache)",
                          self._evidence(ev)),
                Violation("TTT-2", s.line,
                          f"the validation set is scored a second time at line {s.line} with the table that the "
                          f"first pass (line {loop.lineno}) filled from it: a two-pass re-score",
                          self._evidence(s)),
            ]
        return []

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
        loop_vars = names_in_target(loop.target)
        node = ev.node.func.value if isinstance(ev.node, ast.Call) and isinstance(ev.node.func, ast.Attribute) else ev.node
        exprs = [node] + [e for name in closure_back(names(node), f.deps) for e in f.defs.get(name, ())]
        for expr in exprs:
            for sub in ast.walk(expr):
                if (isinstance(sub, ast.BinOp) and isinstance(sub.op, ast.Sub) and isinstance(sub.left, ast.Name)
                        and sub.left.id in loop_vars and isinstance(sub.right, ast.Constant)
                        and isinstance(sub.right.value, int) and sub.right.value >= 1):
                    return True
        return False

    def _trains_carried_data(self, f: FuncFacts, ev: Event, loop: ast.AST, scores: list[Event]) -> bool:
        """The update reads validation data only through names that the loop binds after it, from
        tensors the same iteration scored (`scored = chunk` at the end of the body, then `if scored
        is not None: train(scored)` at the top): the back edge carries the previous iteration's
        scored data into the update, which therefore trains on tokens already scored."""
        cfg = self.cfg(f)
        update = self.stmt_of(ev.node)
        node = ev.node.func.value if isinstance(ev.node, ast.Call) and isinstance(ev.node.func, ast.Attribute) \
            and callee_name(ev.node) == "backward" else ev.node
        bindings = self.fa.index.bindings.get(f.node, {})
        score_stmts = [self.stmt_of(s.node) for s in scores]
        scored_names = set()
        for s in scores:
            value = s.node.value if isinstance(s.node, ast.AugAssign) else s.node
            scored_names |= closure_back(names(value), f.deps)
        loop_vars = names_in_target(loop.target) if isinstance(loop, (ast.For, ast.AsyncFor)) else set()
        carried, seen, todo = False, set(), list(names(node))
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            if name in loop_vars:
                return False  # reads this iteration's position
            inside_loop = [b for b in bindings.get(name, ()) if b is not loop and inside(b, loop)]
            if not inside_loop:
                continue  # bound before the loop: the model, the optimizer, the whole token tensor
            current = [b for b in inside_loop if cfg.follows(b, update)]
            if current:
                for b in current:
                    value = getattr(b, "value", None) or getattr(b, "iter", None)
                    todo.extend(names(value) if value is not None else ())
                continue
            for b in inside_loop:
                value = getattr(b, "value", None)
                data = {n for n in (names(value) if value is not None else ())
                        if self.is_val(f.lookup(n, b.lineno) or set(), f)}
                if not data or not data <= scored_names or not any(cfg.follows(s, b) for s in score_stmts):
                    return False
                if any(not [x for x in bindings.get(n, ()) if inside(x, loop)] for n in data):
                    return False  # the whole validation tensor, not a piece this iteration scored
            carried = True
        return carried

    def _cache_feeds_score(self, f: FuncFacts, ev: Event, score: Event) -> bool:
        """Whether the table written by `ev` is read by what `score` accumulates: by the score itself
        or by an assignment that runs between the write and the score (in one iteration of the loops
        around them) and that the accumulated value depends on."""
        node = ev.node
        if isinstance(node, (ast.Assign, ast.AugAssign)):
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
            root = root_name(target)
        elif isinstance(node, ast.Call) and callee_name(node) == "at" and node.args:
            root = root_name(node.args[0])
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            root = root_name(node.func.value)
        else:
            root = None
        if root is None:
            return True
        value = score.node.value if isinstance(score.node, ast.AugAssign) else score.node
        if root in names(value):
            return True
        cfg, write, scored = self.cfg(f), self.stmt_of(ev.node), self.stmt_of(score.node)
        for name in closure_back(names(value), f.deps):
            for expr in f.defs.get(name, ()):
                if root not in names(expr):
                    continue
                define = self.stmt_of(expr)
                if cfg.follows(write, define) and (define is scored or cfg.follows(define, scored)):
                    return True
        return False

    def _slice_bounds(self, f: FuncFacts, node: ast.AST) -> tuple[set, set]:
        """(names used as `[:u]` upper bounds, names used as `[l:]` lower bounds) in the expressions
        that `node` is computed from (its own text and the assignments of the names it reads)."""
        exprs = [node]
        for name in closure_back(names(node), f.deps):
            exprs.extend(f.defs.get(name, ()))
        uppers, lowers = set(), set()
        for expr in exprs:
            for sub in ast.walk(expr):
                if isinstance(sub, ast.Slice):
                    if (sub.lower is None or is_zero(sub.lower)) and isinstance(sub.upper, ast.Name):
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
                if not inside(ev.node, loop) or self._is_data_loop(loop, f):
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
                    and self.is_val(e.kinds, f) and not on_a_copy(e.node)]
        # a knob written directly in the straight-line evaluation sequence, not a schedule inside the
        # training loop (which also runs periodic evaluations)
        knobs = [e for e in f.events if e.kind == "knob" and not e.via and not self._loops(e.node, f)]
        for s in scores:
            if not s.via:
                continue
            prior = [m for m in mutators if m.node is not s.node and self._precedes(f, m, s)]
            if prior and not any(inside(s.node, l) for l in self._loops(prior[-1].node, f)):
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
                        f"an evaluation knob is set (`{short(knob[0].node)}`) after the validation set was "
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
                    f"an evaluation knob is set (`{short(k.node)}`) after the validation set was scored "
                    f"(line {prev[-1].line}), then the set is scored again (line {nxt[0].line})",
                    self._evidence(k),
                ))
        return out
    # -- evidence --------------------------------------------------------------------------
    def _describe(self, ev: Event) -> str:
        what = {"update": "backward/step", "cache": "table write", "score": "loss accumulation"}.get(ev.kind, ev.kind)
        if ev.via:
            return f"{what} in `{ev.via}` (line {ev.origin_line}) called at line {ev.line}"
        return f"{what} at line {ev.line}"

    def _evidence(self, ev: Event) -> str:
        return short(ev.node)


