"""PG113 DOC-1: a previous-token mix (SmearGate) crosses document boundaries without a BOS mask."""

import ast

from audit.static.analysis import FileAnalysis
from audit.static.rule import Rule
from audit.static.rules import _legal

SMEAR_OFF = _legal.HEADER + '''

class SmearGate(torch.nn.Module):
    def forward(self, x, input_ids):
        g = torch.sigmoid(self.gate(x[:, 1:]))
        bos_mask = (input_ids[:, 1:] == 1).unsqueeze(-1)
        g = g.masked_fill(bos_mask, 0.0)
        return torch.cat([x[:, :1], x[:, 1:] + g * x[:, :-1]], dim=1)
'''


class SmearAcrossDocuments(Rule):
    """Token-mixing ops (the SmearGate previous-token smear `x[:, 1:] + g * x[:, :-1]`) must not
    mix the last token of one document into the first token of the next in a packed stream: mask
    the gate where the current token is BOS (`input_ids[:, 1:] == BOS_ID`), in the eval and the TTT
    forward. The rule flags a function that adds a one-token-shifted copy of a tensor (`[:, :-1]`
    against `[:, 1:]`, or a `torch.cat` / `F.pad` shift) to itself with no comparison against a BOS
    id and no masked_fill / where in the same function. Only reachable code under the logged
    configuration counts (#1667 defaults SMEAR_GATE to 0 but ran with it on).

    Disputed, so a warning: a maintainer's audit ruling (cocohearts on #1797, fixed in merged #1851,
    #1855, #1868), challenged in Issue #1988 (prior-document context is causal) and not applied
    retroactively (#1667 merged without the mask).
    """

    code = "PG113"
    rule = "DOC-1"
    severity = "warning"
    confidence = "medium"
    references = ("#1797", "#1851", "Issue #1988", "#1667")
    summary = "previous-token smear crosses document (BOS) boundaries: no BOS mask"

    VALID = _legal.ALL + [SMEAR_OFF]
    INVALID = [
        SMEAR_OFF.replace("        bos_mask = (input_ids[:, 1:] == 1).unsqueeze(-1)\n", "").replace(
            "        g = g.masked_fill(bos_mask, 0.0)\n", ""),
        _legal.HEADER + '''

class Block(torch.nn.Module):
    def forward(self, x):
        prev = F.pad(x[:, :-1], (0, 0, 1, 0))
        return x + self.smear_lambda * prev
''',
    ]

    def check(self, ctx):
        for src in ctx.files:
            fa = src.analysis
            if not isinstance(fa, FileAnalysis):
                continue
            shifting = _functions_around_drop_last_slices(fa)
            for defs in fa.functions.values():
                for fn in defs:
                    if fn not in shifting:
                        continue  # nothing in it drops the last position: no walk of its body
                    shift = _token_shift(fn)
                    if shift is not None and fa.reachable(shift) and not _has_bos_mask(fn):
                        yield self.finding(
                            src, shift.lineno,
                            f"`{fn.name}` mixes each token with the previous one (`{ast.unparse(shift)}`) "
                            "with no BOS mask: across a document boundary the first token of a document "
                            "sees the previous document",
                            evidence=ast.unparse(shift),
                        )


def _functions_around_drop_last_slices(fa: FileAnalysis) -> set:
    """The functions (outer ones included) that contain an `x[:, :-1]` slice, from the parent map."""
    out = set()
    for node in fa.parents:
        if node.__class__ is ast.Subscript and _slice_drops_last(node):
            out.update(a for a in fa.ancestors(node) if isinstance(a, (ast.FunctionDef, ast.AsyncFunctionDef)))
    return out


def _slice_drops_last(node: ast.AST) -> bool:
    """`x[:, :-1]` (or `x[..., :-1, :]`): the sequence axis shifted by one token."""
    if not isinstance(node, ast.Subscript):
        return False
    parts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
    if len(parts) < 2:
        return False
    seq = parts[1]
    return (isinstance(seq, ast.Slice) and seq.lower is None and isinstance(seq.upper, ast.UnaryOp)
            and isinstance(seq.upper.op, ast.USub) and isinstance(seq.upper.operand, ast.Constant)
            and seq.upper.operand.value == 1)


def _token_shift(fn: ast.FunctionDef) -> ast.AST | None:
    """The first binary op / cat / pad in `fn` that combines a drop-last slice with other values."""
    for node in ast.walk(fn):
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
            if any(_slice_drops_last(n) and not _hashed(fn, n) for n in ast.walk(node)):
                return node
        if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("cat", "pad"):
            if any(_slice_drops_last(a) for a in ast.walk(node)) and _is_added(fn, node):
                return node
    return None


def _hashed(fn: ast.FunctionDef, sl: ast.Subscript) -> bool:
    """`27191 * t[..., :-1]`: the previous token id multiplied by a constant (a bigram hash), not a mix."""
    for node in ast.walk(fn):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult) and sl in (node.left, node.right):
            other = node.right if node.left is sl else node.left
            return isinstance(other, ast.Constant) and isinstance(other.value, int)
    return False


def _is_added(fn: ast.FunctionDef, call: ast.Call) -> bool:
    """A shifted copy made by cat/pad is mixed in when its name is later added to something."""
    for node in ast.walk(fn):
        if isinstance(node, ast.Assign) and node.value is call:
            names = {t.id for t in node.targets if isinstance(t, ast.Name)}
            return any(isinstance(b, ast.BinOp) and {n.id for n in ast.walk(b) if isinstance(n, ast.Name)} & names
                       for b in ast.walk(fn))
    return False


def _has_bos_mask(fn: ast.FunctionDef) -> bool:
    for node in ast.walk(fn):
        if isinstance(node, ast.Compare) and any(isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops):
            text = ast.unparse(node).lower()
            if "bos" in text or any(isinstance(c, ast.Constant) and isinstance(c.value, int)
                                    for c in [node.left, *node.comparators]):
                return True
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("masked_fill", "masked_fill_"):
            return True
        if isinstance(node, ast.Name) and "bos" in node.id.lower():
            return True
    return False
