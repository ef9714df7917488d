"""A control-flow graph per function, built from its ast: one node per statement (a compound
statement's node stands for its header: the test of an `if`/`while`, the iteration of a `for`),
edges in execution order, branches of `if`/`match`, loops with their back edges and exits,
`break`/`continue`/`return`/`raise`, `try` bodies that may jump to their handlers and always reach
`finally`, and `with` bodies.

The order questions of the flow rules are asked on it: does statement a run before b on some path
(`reaches`), is a strictly before b (a reaches b and b never reaches a: no loop holds both), and
does b follow a within one iteration of the loops around both (`follows`: a path that does not go
back through their headers, so a score in the `if` branch does not precede an update in `else`).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

ENTRY, EXIT = "entry", "exit"
LOOPS = (ast.For, ast.AsyncFor, ast.While)


@dataclass
class _LoopExits:
    header: ast.stmt
    breaks: set = field(default_factory=set)
    continues: set = field(default_factory=set)


class CFG:
    """The control-flow graph of one function body (see the module docstring)."""

    def __init__(self, body: list[ast.stmt]):
        self.succ: dict = {}
        self.back_edges: set = set()  # (last statement of an iteration, loop header)
        self.loops_around: dict = {}  # statement -> the loop headers enclosing it, outermost first
        self._reach: dict = {}
        self._open_loops: list = []
        ends = self._block(body, {ENTRY}, None)
        for end in ends:
            self._edge(end, EXIT)

    # -- construction ----------------------------------------------------------------------
    def _edge(self, a, b) -> None:
        self.succ.setdefault(a, set()).add(b)

    def _block(self, stmts: list, preds: set, loop: _LoopExits | None) -> set:
        for s in stmts:
            for p in preds:
                self._edge(p, s)
            self.loops_around[s] = tuple(self._open_loops)
            preds = self._stmt(s, loop)
        return preds

    def _stmt(self, s: ast.stmt, loop: _LoopExits | None) -> set:
        if isinstance(s, ast.If):
            return self._block(s.body, {s}, loop) | (self._block(s.orelse, {s}, loop) if s.orelse else {s})
        if isinstance(s, LOOPS):
            inner = _LoopExits(s)
            self._open_loops.append(s)
            ends = self._block(s.body, {s}, inner) | inner.continues
            self._open_loops.pop()
            for end in ends:
                self._edge(end, s)
                self.back_edges.add((end, s))
            after = self._block(s.orelse, {s}, loop) if s.orelse else {s}
            return after | inner.breaks
        if isinstance(s, (ast.With, ast.AsyncWith)):
            return self._block(s.body, {s}, loop)
        if isinstance(s, ast.Try) or type(s).__name__ == "TryStar":
            body_ends = self._block(s.body, {s}, loop)
            # any statement of the body may raise: the handlers follow the try header and its body
            raisers = {s} | {n for n in _statements(s.body)}
            handler_ends = set()
            for handler in s.handlers:
                handler_ends |= self._block(handler.body, raisers, loop)
            else_ends = self._block(s.orelse, body_ends, loop) if s.orelse else body_ends
            ends = else_ends | handler_ends
            return self._block(s.finalbody, ends, loop) if s.finalbody else ends
        if isinstance(s, ast.Match):
            ends = {s}
            for case in s.cases:
                ends |= self._block(case.body, {s}, loop)
            return ends
        if isinstance(s, (ast.Return, ast.Raise)):
            self._edge(s, EXIT)
            return set()
        if isinstance(s, ast.Break) and loop is not None:
            loop.breaks.add(s)
            return set()
        if isinstance(s, ast.Continue) and loop is not None:
            loop.continues.add(s)
            return set()
        return {s}

    # -- queries ---------------------------------------------------------------------------
    def reachable(self, a) -> set:
        """Every node some path from a (after it) reaches."""
        found = self._reach.get(a)
        if found is None:
            found = self._reach[a] = self._walk(a, frozenset())
        return found

    def _walk(self, a, skip: frozenset) -> set:
        seen, stack = set(), [a]
        while stack:
            for b in self.succ.get(stack.pop(), ()):
                if b not in seen and b not in skip:
                    seen.add(b)
                    stack.append(b)
        return seen

    def reaches(self, a, b) -> bool:
        return b in self.reachable(a)

    def strictly_before(self, a, b) -> bool:
        """a runs before b and b never runs before a (no loop holds both)."""
        return self.reaches(a, b) and not self.reaches(b, a)

    def follows(self, a, b) -> bool:
        """b runs after a within one iteration of every loop that holds both: a path from a to b
        that does not go back through the header of such a loop (a loop around a alone may be left)."""
        if a is b:
            return False
        common = frozenset(self.loops_around.get(a, ())) & frozenset(self.loops_around.get(b, ()))
        return b in self._walk(a, common)


def _statements(stmts: list) -> list:
    """The statements of a block, nested ones included, not those of functions/classes defined in it."""
    out, stack = [], list(stmts)
    while stack:
        s = stack.pop()
        out.append(s)
        if not isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            stack.extend(c for c in ast.iter_child_nodes(s) if isinstance(c, ast.stmt))
    return out
