"""Small ast helpers shared by the data-flow layers (taint, events, ordering, flow): names an
expression reads, the root of a subscript/attribute chain, slice shapes, closures over dependency
maps. Pure functions of the tree; no taint facts."""

from __future__ import annotations

import ast
from typing import Iterable

from audit.static.analysis import FileAnalysis, callee_name

def short(node: ast.AST, limit: int = 160) -> str:
    text = " ".join(ast.unparse(node).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


_NAMES: dict = {}  # node -> frozenset of names (cleared per file by forget_names)


def names(node: ast.AST) -> set:
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


names_in_target = names  # the names a binding target binds (subscript / attribute bases included)


def root_name(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call, ast.Starred)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def closure_back(seeds: set, deps: dict) -> set:
    out, stack = set(seeds), list(seeds)
    while stack:
        for d in deps.get(stack.pop(), ()):
            if d not in out:
                out.add(d)
                stack.append(d)
    return out


def closure_forward(seeds: set, deps: dict) -> set:
    out = set(seeds)
    changed = True
    while changed:
        changed = False
        for name, ds in deps.items():
            if name not in out and ds & out:
                out.add(name)
                changed = True
    return out


def shifted_by_one(sl: ast.AST) -> bool:
    """`a + 1 : b + 1`, `1:`, `[:, 1:]`: a slice that starts one token later than its input."""
    if isinstance(sl, ast.Tuple):
        return any(shifted_by_one(e) for e in sl.elts)
    if isinstance(sl, ast.Slice) and sl.lower is not None:
        lo = sl.lower
        if isinstance(lo, ast.Constant) and lo.value == 1:
            return True
        if isinstance(lo, ast.BinOp) and isinstance(lo.op, ast.Add):
            return any(isinstance(x, ast.Constant) and x.value == 1 for x in (lo.left, lo.right))
    return False


def is_lut(node: ast.AST) -> bool:
    """A byte/boundary lookup table of the tokenizer (base_bytes_lut[tgt] is the canonical use)."""
    text = ast.unparse(node).lower()
    return "lut" in text or "byte" in text or "boundary" in text or "leading_space" in text


def on_a_copy(call: ast.AST) -> bool:
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


def operands(e: ast.AST) -> list:
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


def constant_index(index: ast.AST) -> bool:
    """`[0]`, `[0, 1]`: a fixed slot, not a position or key computed from data."""
    elts = index.elts if isinstance(index, ast.Tuple) else [index]
    return all(isinstance(e, ast.Constant) for e in elts)


def has(kinds: Iterable[str], prefix: str) -> bool:
    return any(k.startswith(prefix) for k in kinds)


def is_zero(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value == 0


def inside(node: ast.AST, container: ast.AST) -> bool:
    start, end = container.lineno, getattr(container, "end_lineno", container.lineno)
    return start <= getattr(node, "lineno", -1) <= end


def assigned_roots(s: ast.stmt) -> set:
    out = set()
    for node in ast.walk(s):
        if isinstance(node, ast.Assign):
            for t in node.targets:
                r = root_name(t)
                if r:
                    out.add(r)
        elif isinstance(node, ast.AugAssign):
            r = root_name(node.target)
            if r:
                out.add(r)
    return out




def loop_vars(fa: FileAnalysis, node: ast.AST) -> set:
    out = set()
    for anc in fa.ancestors(node):
        if isinstance(anc, (ast.For, ast.AsyncFor)):
            out |= names_in_target(anc.target)
    return out


def record_fields(fa: FileAnalysis) -> dict[str, list[str]]:
    """{class name: annotated field names} of the dataclasses and NamedTuples defined outside functions."""
    out = {}
    for s in fa.index.stmts.get(fa.tree, ()):
        if not isinstance(s, ast.ClassDef):
            continue
        marks = [root_name(d) if not isinstance(d, ast.Attribute) else d.attr for d in s.decorator_list]
        marks += [b.attr if isinstance(b, ast.Attribute) else root_name(b) for b in s.bases]
        marks += [d.func.attr for d in s.decorator_list if isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute)]
        if not {"dataclass", "NamedTuple"} & set(marks):
            continue
        out[s.name] = [st.target.id for st in s.body if isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name)
                       and "ClassVar" not in ast.unparse(st.annotation)]
    return out




def requires_grad(call: ast.Call) -> bool:
    if callee_name(call) == "Parameter":
        return True
    return any(k.arg == "requires_grad" and isinstance(k.value, ast.Constant) and k.value.value for k in call.keywords)


def forget_names() -> None:
    """Drop the memo of names(): the previous file's entries would keep its whole tree alive."""
    _NAMES.clear()
