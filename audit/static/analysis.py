"""The per-file analysis that every static rule shares, built once per file by the engine.

libcst is the parse contract of the rules (SourceFile.module), but its Python-level visitors and
metadata providers cost ~1 s per 1,000 lines, far over the 10 s budget for 50 record folders. The
analysis therefore runs on the stdlib `ast` tree of the same normalised text (positions for free,
C-speed parse and walk). Python 3.11's `ast` rejects PEP 701 f-strings (`f"{", ".join(x)}"`) that
some records use; for those files the tree is rebuilt from libcst with each f-string replaced by a
tuple of its expressions, padded so that every line keeps its number.

FileAnalysis holds: the tree, a parent map, functions by name, call sites by callee name, and the
lines that cannot run under the resolved configuration (`unreachable`).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterator

import libcst as cst

from audit.static.config import UNKNOWN, Config


def parse_python(text: str, path: str = "<file>") -> ast.Module:
    """The ast of `text`; PEP 701 f-strings rewritten through libcst when this Python rejects them."""
    try:
        return ast.parse(text, filename=path)
    except SyntaxError as first_error:
        try:
            module = cst.parse_module(text)
        except cst.ParserSyntaxError:
            raise first_error from None
        rewritten = module.visit(_FStringFlattener()).code
        return ast.parse(rewritten, filename=path)


class _FStringFlattener(cst.CSTTransformer):
    """`f"a{x}b{y!r}"` -> `(x, y,)` keeping the number of newlines the f-string spanned."""

    def leave_FormattedString(self, original_node, updated_node):
        exprs = [part.expression for part in updated_node.parts if isinstance(part, cst.FormattedStringExpression)]
        newlines = cst.Module(body=[]).code_for_node(original_node).count("\n")
        lpar = cst.LeftParen(whitespace_after=cst.ParenthesizedWhitespace(
            empty_lines=[cst.EmptyLine()] * max(newlines - 1, 0), indent=False,
        )) if newlines else cst.LeftParen()
        if not exprs:
            return cst.SimpleString('""', lpar=[lpar], rpar=[cst.RightParen()]) if newlines else cst.SimpleString('""')
        elements = [cst.Element(e, comma=cst.Comma()) for e in exprs]
        return cst.Tuple(elements=elements, lpar=[lpar], rpar=[cst.RightParen()])


@dataclass
class Guard:
    """A region of lines that a configuration guard makes unreachable."""

    start: int
    end: int
    reason: str


@dataclass
class FileAnalysis:
    """Facts about one file shared by all rules (see the module docstring)."""

    path: str
    tree: ast.Module
    config: Config
    parents: dict[ast.AST, ast.AST] = field(default_factory=dict)
    functions: dict[str, list[ast.FunctionDef]] = field(default_factory=dict)  # by simple name
    calls: dict[str, list[ast.Call]] = field(default_factory=dict)  # callee simple name -> call sites
    guards: list[Guard] = field(default_factory=list)
    _bindings_cache: dict = field(default_factory=dict)

    @classmethod
    def build(cls, path: str, tree: ast.Module, config: Config) -> "FileAnalysis":
        fa = cls(path=path, tree=tree, config=config)
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                fa.parents[child] = node
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                fa.functions.setdefault(node.name, []).append(node)
            elif isinstance(node, ast.Call):
                name = callee_name(node)
                if name:
                    fa.calls.setdefault(name, []).append(node)
        fa._find_guards()
        return fa

    # -- reachability ----------------------------------------------------------------------
    def _find_guards(self) -> None:
        for node in ast.walk(self.tree):
            if isinstance(node, (ast.If, ast.While)):
                value, used = self.config.guard(node.test, self._bound_once(node))
                if value is UNKNOWN or not used:
                    continue
                why = f"`{_short(node.test)}` is {bool(value)} under " + ", ".join(used)
                if not value and node.body:
                    self.guards.append(Guard(node.body[0].lineno, _end(node.body), why))
                elif value and isinstance(node, ast.If) and node.orelse:
                    self.guards.append(Guard(node.orelse[0].lineno, _end(node.orelse), why))
        # a top-level function referenced only from unreachable code cannot run either (#1458): by a
        # call or as a value (`timed_eval("etlb", eval_val_sliding_etlb, ...)`)
        changed = True
        while changed:
            changed = False
            for name, defs in self.functions.items():
                if len(defs) != 1 or not isinstance(self.parents.get(defs[0]), ast.Module):
                    continue
                fn = defs[0]
                refs = self._name_refs.get(name, [])
                if not refs or self.unreachable_reason(fn.lineno):
                    continue
                reasons = [self.unreachable_reason(line) for line in refs]
                if all(reasons):
                    self.guards.append(Guard(fn.lineno, fn.end_lineno or fn.lineno,
                                             f"`{name}` is only used where {reasons[0]}"))
                    changed = True

    @cached_property
    def _name_refs(self) -> dict[str, list[int]]:
        """Lines where each name is loaded (called or passed as a value)."""
        refs: dict[str, list[int]] = {}
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                refs.setdefault(node.id, []).append(node.lineno)
        return refs

    def _bound_once(self, node: ast.AST) -> dict[str, ast.expr]:
        """Names bound exactly once in the function around `node`, then module constants."""
        fn = self.enclosing_function(node)
        names = dict(self._module_constants)
        if fn is not None:
            names.update(self._single_bindings(fn))
        return names

    @cached_property
    def _module_constants(self) -> dict[str, ast.expr]:
        return {name: value for name, value in _single_assignments(self.tree.body).items()
                if isinstance(value, ast.Constant)}

    def _single_bindings(self, fn: ast.FunctionDef) -> dict[str, ast.expr]:
        cached = self._bindings_cache.get(fn)
        if cached is None:
            cached = self._bindings_cache[fn] = _single_assignments(list(ast.walk(fn)), walk=False)
        return cached

    def unreachable_reason(self, line: int) -> str:
        """Why `line` cannot run under the configuration, or "" when it can (or nobody knows)."""
        for guard in self.guards:
            if guard.start <= line <= guard.end:
                return guard.reason
        return ""

    def reachable(self, node: ast.AST) -> bool:
        return not self.unreachable_reason(getattr(node, "lineno", 0))

    # -- navigation ------------------------------------------------------------------------
    def enclosing_function(self, node: ast.AST) -> ast.FunctionDef | None:
        while node is not None:
            node = self.parents.get(node)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                return node
        return None

    def ancestors(self, node: ast.AST) -> Iterator[ast.AST]:
        node = self.parents.get(node)
        while node is not None:
            yield node
            node = self.parents.get(node)

    def source_of(self, node: ast.AST, limit: int = 160) -> str:
        return _short(node, limit)

    @cached_property
    def flow(self):
        """The val-token / target data-flow facts of this file (audit.static.flow)."""
        from audit.static.flow import FlowAnalysis

        return FlowAnalysis(self)


def _single_assignments(nodes, walk: bool = True) -> dict[str, ast.expr]:
    """{name: value} for names assigned exactly once (plain `name = value`) among `nodes`."""
    counts: dict[str, int] = {}
    values: dict[str, ast.expr] = {}
    for node in (n for top in nodes for n in ast.walk(top)) if walk else nodes:
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.For, ast.AsyncFor)):
            targets = [node.target]
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            targets = [i.optional_vars for i in node.items if i.optional_vars is not None]
        elif isinstance(node, ast.arguments):
            targets = [ast.Name(id=a.arg) for a in node.posonlyargs + node.args + node.kwonlyargs]
        for target in targets:
            for name in (n.id for n in ast.walk(target) if isinstance(n, ast.Name)):
                counts[name] = counts.get(name, 0) + 1
                if isinstance(node, ast.Assign) and isinstance(target, ast.Name):
                    values[name] = node.value
    return {name: value for name, value in values.items() if counts[name] == 1}


def callee_name(call: ast.Call) -> str:
    """`f` for f(...), `step` for opt.step(...), "" for calls of calls / subscripts."""
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _end(body: list[ast.stmt]) -> int:
    return max(getattr(stmt, "end_lineno", stmt.lineno) or stmt.lineno for stmt in body)


def _short(node: ast.AST, limit: int = 160) -> str:
    text = " ".join(ast.unparse(node).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
