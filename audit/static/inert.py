"""Channels that ran but could not change the score under the logged configuration.

A finding inside code that runs is still moot when the channel it reports is inert:
* its weight is 0: the statement multiplies by a configuration value that resolves to 0
  (`p = (1 - w) * p_model + w * p_cache` with `NGRAM_WEIGHT=0` in the logs), directly or through a
  name bound once from the config, or a keyword parameter bound from it at every call; and so is
  every statement of the same function whose results are read only by inert statements (the
  cache key that only feeds the zero-weighted lookup);
* its logged activity counter is 0: the code prints a counter (`f"ngram_hits:{hits}"`), every
  reported run logs `ngram_hits: 0`, and the counter is incremented in an `if` block: that block
  never ran, so nothing inside it reached a score.

`inert_lines(ctx)` maps (original path, original line) to the reason; the engine turns findings at
those lines into notes, as it does for lines behind a false config guard.
"""

from __future__ import annotations

import ast
import re

from audit.static.config import UNKNOWN, Config
from audit.static.rule import AuditContext

_OPERAND = (ast.Name, ast.Attribute)  # a weight is a config name, not an expression
_COUNTER_LABEL = re.compile(r"([a-z_][a-z0-9_]*)\s*[:=]\s*$")


def inert_lines(ctx: AuditContext) -> dict[tuple[str, int], str]:
    config = getattr(ctx, "hyper", None)
    if not isinstance(config, Config):
        return {}
    zero_counters = _zero_counters(config)
    out: dict[tuple[str, int], str] = {}
    for src in ctx.files:
        analysis = src.analysis
        tree = getattr(analysis, "tree", None)
        if tree is None:
            continue
        for (start, end), reason in _inert_regions(analysis, config, zero_counters):
            for line in range(start, end + 1):
                out.setdefault(src.line_map(line), reason)
    return out


def _zero_counters(config: Config) -> set[str]:
    """Keys every reported run logs as 0 (and at least one run logs)."""
    values: dict[str, set] = {}
    for name in config.reported_logs:
        for key, value in config.log_pairs.get(name, {}).items():
            values.setdefault(key, set()).add(value)
    return {key for key, vals in values.items() if vals == {0}}


def _inert_regions(analysis, config: Config, zero_counters: set[str]):
    """((start, end), reason) of the zero-weight statements (and what only they read) and the
    never-run counter blocks."""
    index = analysis.index
    module_names = index.single_bindings(analysis.tree)
    bindings: dict = {}  # function -> its names bound once (with the module's), built on first use
    counters = _printed_counters(index, zero_counters) if zero_counters else {}
    for owner, stmts in index.stmts.items():
        weighted: dict[ast.stmt, str] = {}
        for stmt in stmts:
            if isinstance(stmt, ast.AugAssign) and isinstance(stmt.op, ast.Add) and counters:
                label = counters.get(_target_key(stmt.target))
                block = _enclosing_if(analysis, stmt) if label else None
                if block is not None:
                    yield (block.lineno, block.end_lineno or block.lineno), (
                        f"inert: its activity counter `{label}` is 0 in every reported run's log")
            elif isinstance(stmt, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Return, ast.Expr)):
                reason = _zero_weight(stmt, analysis, config, module_names, bindings)
                if reason:
                    weighted[stmt] = reason
        if weighted:
            for stmt, reason in _feeding_only(index, stmts, weighted).items():
                yield (stmt.lineno, stmt.end_lineno or stmt.lineno), reason


def _feeding_only(index, stmts: list[ast.stmt], inert: dict[ast.stmt, str]) -> dict[ast.stmt, str]:
    """`inert` grown by the plain assignments of the function whose names only inert statements read."""
    readers: dict[str, set[ast.stmt]] = {}
    for stmt in stmts:
        for node in index.exprs.get(stmt, ()):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                readers.setdefault(node.id, set()).add(stmt)
    out = dict(inert)
    changed = True
    while changed:
        changed = False
        for stmt in stmts:
            if stmt in out or not isinstance(stmt, ast.Assign):
                continue
            names = [t.id for t in stmt.targets if isinstance(t, ast.Name)]
            if len(names) != len(stmt.targets) or not names:
                continue
            read_by = set().union(*(readers.get(n, set()) for n in names))
            if read_by and read_by <= set(out):
                out[stmt] = next(out[r] for r in read_by)
                changed = True
    return out


def _zero_weight(stmt: ast.stmt, analysis, config: Config, module_names: dict, bindings: dict) -> str:
    mults = [n for n in analysis.index.exprs.get(stmt, ()) if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Mult)
             and (isinstance(n.left, _OPERAND) or isinstance(n.right, _OPERAND))]
    if not mults:
        return ""
    fn = analysis.enclosing_function(stmt)
    names = bindings.get(fn)
    if names is None:
        names = bindings[fn] = {**module_names, **(analysis.index.single_bindings(fn) if fn is not None else {})}
    for mult in mults:
        for side in (mult.left, mult.right):
            if not isinstance(side, _OPERAND):
                continue
            value, used = config.guard(side, names)
            if used and value is not UNKNOWN and not isinstance(value, bool) and isinstance(value, (int, float)) \
                    and value == 0:
                return f"inert: weight {ast.unparse(side)} is 0 ({'; '.join(used)})"
    return ""


def _target_key(node: ast.AST) -> str:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""


def _printed_counters(index, zero_counters: set[str]) -> dict[str, str]:
    """{variable or attribute name: logged label} for f-string fields printed as `label:{var}`."""
    out = {}
    for exprs in index.exprs.values():
        for node in exprs:
            if not isinstance(node, ast.JoinedStr):
                continue
            for before, field in zip(node.values, node.values[1:]):
                if isinstance(before, ast.Constant) and isinstance(before.value, str) and isinstance(
                        field, ast.FormattedValue):
                    m = _COUNTER_LABEL.search(before.value)
                    key = _target_key(field.value)
                    if m and key and m.group(1) in zero_counters:
                        out[key] = m.group(1)
    return out


def _enclosing_if(analysis, stmt: ast.stmt) -> ast.If | None:
    """The innermost `if` whose body holds `stmt` (within its function)."""
    child, node = stmt, analysis.parents.get(stmt)
    while node is not None and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Module)):
        if isinstance(node, ast.If) and child in node.body:
            return node
        child, node = node, analysis.parents.get(node)
    return None
