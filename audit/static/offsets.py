"""Positions read by index arithmetic: which reads of a token array are the target of the position
being scored, and which are its prefix.

An index expression is resolved syntactically to (base, k) pairs, "position `base` + k": a name is
its own base at offset 0 unless the function binds it once to an expression (`idx = np.arange(s +
1, e + 1)` -> (s, +1)); `p + c` / `p - c` shift by the constant, `p - n` by an unknown distance is
counted one before p; any other sum, a product or an attribute is a base of its own (`ws + s + 1`
-> (`ws + s`, +1)); `arange(a, b)` / `range(a, b)` start at a; a selection of such a range
(`positions[mask]`) keeps its offsets; a slice `[lo:hi]` reads from lo on; `int(...)`, `.long()`,
`.to(...)` keep the offset. An index computed by anything else (an argmax, a table lookup) has no
position.

Every function gets a frame: for each base, the offsets at which it is read. The largest offset is
the token being predicted when it lies after some other read of the same base (`v[t-3:t]` then
`v[t]`) or at base + 1 or later (`v[s:e]` then `v[s+1:e+1]`, `int(v[pos+1])`): that read is the
*target*. A read below the largest offset of its base is the *prefix* (`y[t-2]` when `y[t]` is
scored), even when the array as a whole holds targets.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from audit.static.analysis import callee_name

RANGE_CALLS = {"arange", "range"}
KEEP_OFFSET_CALLS = {"int", "long", "to", "cuda", "cpu", "tensor", "as_tensor", "from_numpy", "astype", "clone",
                     "contiguous", "item"}
GATHER_CALLS = {"gather", "index_select", "take", "take_along_dim", "take_along_axis"}
_MAX_DEPTH = 8  # nested expressions and single bindings followed (idx = base + 1; pos = idx - 1; ...)


def index_offsets(expr: ast.AST | None, bindings: dict, depth: int = 0) -> frozenset:
    """The (base, k) positions an index expression reads (empty when it is not a position)."""
    if expr is None or depth > _MAX_DEPTH:
        return frozenset()
    if isinstance(expr, ast.Name):
        bound = bindings.get(expr.id)
        if bound is not None and not isinstance(bound, ast.Constant):
            found = index_offsets(bound, bindings, depth + 1)
            if found:
                return found
        return frozenset({(expr.id, 0)})
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, (ast.Add, ast.Sub)):
        for pos, const, sign in ((expr.left, expr.right, 1), (expr.right, expr.left, 0)):
            if isinstance(const, ast.Constant) and type(const.value) is int and (sign or isinstance(expr.op, ast.Add)):
                shift = const.value if isinstance(expr.op, ast.Add) else -const.value
                return frozenset((b, k + shift) for b, k in index_offsets(pos, bindings, depth + 1))
        if isinstance(expr.op, ast.Sub) and not isinstance(expr.left, ast.Constant):
            # `j - (order - k)`: some distance before j; counted as one before it, a prefix read
            return frozenset((b, k - 1) for b, k in index_offsets(expr.left, bindings, depth + 1))
        return frozenset({(ast.unparse(expr), 0)})  # `ws + s`: a position of its own
    if isinstance(expr, ast.Attribute) or (isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Mult)):
        return frozenset({(ast.unparse(expr), 0)})  # `self.pos`, `i * seq_len`
    if isinstance(expr, ast.Subscript) and not isinstance(expr.slice, ast.Slice):
        # `positions[mask]`: a selection of a positions array keeps its offsets
        return index_offsets(expr.value, bindings, depth + 1) if _is_positions(expr.value, bindings) else frozenset()
    if isinstance(expr, ast.Slice):
        return index_offsets(expr.lower, bindings, depth + 1) if expr.lower is not None else frozenset()
    if isinstance(expr, ast.Tuple):
        return frozenset().union(*(index_offsets(e, bindings, depth + 1) for e in expr.elts)) if expr.elts else frozenset()
    if isinstance(expr, ast.Call):
        name = callee_name(expr)
        if name in RANGE_CALLS and len(expr.args) >= 2:
            return index_offsets(expr.args[0], bindings, depth + 1)
        if name in KEEP_OFFSET_CALLS:
            if expr.args and not isinstance(expr.func, ast.Attribute):
                return index_offsets(expr.args[0], bindings, depth + 1)
            if isinstance(expr.func, ast.Attribute):
                return index_offsets(expr.func.value, bindings, depth + 1)
    return frozenset()


def _is_positions(expr: ast.AST, bindings: dict) -> bool:
    """A name bound once to a range of positions (`global_j = np.arange(ws + 1, ws + n + 1)`)."""
    bound = bindings.get(expr.id) if isinstance(expr, ast.Name) else None
    return isinstance(bound, ast.Call) and callee_name(bound) in RANGE_CALLS and len(bound.args) >= 2


def gather_index(call: ast.Call) -> tuple[ast.AST | None, ast.AST | None]:
    """(data, index) of a gather-like call: `torch.gather(v, 0, idx)`, `v.index_select(0, idx)`,
    `v.take(idx)`, `np.take(v, idx)`; (None, None) for any other call."""
    if callee_name(call) not in GATHER_CALLS:
        return None, None
    index = next((k.value for k in call.keywords if k.arg in ("index", "indices")), None)
    module_call = isinstance(call.func, ast.Attribute) and isinstance(call.func.value, ast.Name) \
        and call.func.value.id in ("torch", "np", "numpy")
    if module_call or isinstance(call.func, ast.Name):
        data = call.args[0] if call.args else None
        rest = call.args[1:]
    else:
        data = call.func.value
        rest = call.args
    if index is None and rest:
        index = rest[-1]
    return data, index


@dataclass
class PositionFrame:
    """The offsets at which one function reads each base position (see the module docstring)."""

    reads: dict = field(default_factory=dict)  # base -> set of offsets

    def add(self, offsets: frozenset) -> None:
        for base, k in offsets:
            self.reads.setdefault(base, set()).add(k)

    def role(self, offsets: frozenset) -> str | None:
        """"target", "prefix", or None (no position, or nothing to tell them apart)."""
        if not offsets:
            return None
        prefix = True
        for base, k in offsets:
            seen = self.reads.get(base, {k})
            top = max(seen)
            if k == top and (k >= 1 or min(seen) < k):
                return "target"
            if k >= top:
                prefix = False
        return "prefix" if prefix else None


def position_frame(stmts: list, exprs_of, bindings: dict) -> PositionFrame:
    """The frame of a function from the loads of its statements (subscripts and gathers)."""
    frame = PositionFrame()
    for s in stmts:
        for node in exprs_of(s):
            if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
                frame.add(index_offsets(node.slice, bindings))
            elif isinstance(node, ast.Call):
                _, index = gather_index(node)
                if index is not None:
                    frame.add(index_offsets(index, bindings))
    return frame
