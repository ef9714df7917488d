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
from typing import Any, Callable, Iterator

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


# analyses built on top of FileAnalysis, by name: audit.static.flow registers "flow" when imported, so
# that this module never imports the modules that import it
LAYERS: dict[str, Callable[["FileAnalysis"], Any]] = {}


@dataclass
class Guard:
    """A region of lines that a configuration guard makes unreachable."""

    start: int
    end: int
    reason: str


FUNCTION_NODES = (ast.FunctionDef, ast.AsyncFunctionDef)
# Load/Store contexts and operator tokens: no pass looks them up, and they are a third of the nodes
_LEAVES = (ast.expr_context, ast.operator, ast.cmpop, ast.boolop, ast.unaryop)


@dataclass
class Index:
    """One pre-order walk of a module, recording everything the passes after it look up, so that
    no pass walks the tree again (walks dominate the cost of a pure-Python analysis)."""

    tree: ast.Module
    parents: dict = field(default_factory=dict)  # node -> parent
    functions: dict = field(default_factory=dict)  # simple name -> [FunctionDef]
    calls: dict = field(default_factory=dict)  # callee simple name -> [Call]
    name_refs: dict = field(default_factory=dict)  # loaded name -> [line]
    branches: list = field(default_factory=list)  # If / While nodes
    assigns: list = field(default_factory=list)  # Assign / AnnAssign nodes
    stmts: dict = field(default_factory=dict)  # owner (FunctionDef or Module) -> its statements, in order
    exprs: dict = field(default_factory=dict)  # statement -> its own expression nodes
    bindings: dict = field(default_factory=dict)  # owner -> {name: [binding nodes]}

    @classmethod
    def build(cls, tree: ast.Module) -> "Index":
        idx = cls(tree=tree)
        stack = [(child, tree, tree, None) for child in reversed(tree.body)]
        idx.stmts[tree] = []
        while stack:
            node, parent, owner, stmt = stack.pop()
            idx.parents[node] = parent
            if isinstance(node, ast.stmt):
                idx.stmts.setdefault(owner, []).append(node)
                stmt = node
                if isinstance(node, (ast.If, ast.While)):
                    idx.branches.append(node)
                elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.For, ast.AsyncFor)):
                    if not isinstance(node, (ast.AugAssign, ast.For, ast.AsyncFor)):
                        idx.assigns.append(node)
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    names = idx.bindings.setdefault(owner, {})
                    for target in targets:
                        for sub in ast.walk(target):
                            if isinstance(sub, ast.Name):
                                names.setdefault(sub.id, []).append(node)
            else:
                idx.exprs.setdefault(stmt, []).append(node)
                if isinstance(node, ast.Call):
                    name = callee_name(node)
                    if name:
                        idx.calls.setdefault(name, []).append(node)
                elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                    idx.name_refs.setdefault(node.id, []).append(node.lineno)
            if isinstance(node, FUNCTION_NODES):
                idx.functions.setdefault(node.name, []).append(node)
                idx.stmts.setdefault(node, [])
                names = idx.bindings.setdefault(node, {})
                for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs:
                    names.setdefault(a.arg, []).append(node)
                inner = node
            else:
                inner = owner
            children = []
            for fname in node._fields:
                value = getattr(node, fname, None)
                if value.__class__ is list:
                    children.extend(v for v in value if isinstance(v, ast.AST) and not isinstance(v, _LEAVES))
                elif isinstance(value, ast.AST) and not isinstance(value, _LEAVES):
                    children.append(value)
            for child in reversed(children):
                stack.append((child, node, inner, None if isinstance(child, ast.stmt) else stmt))
        return idx

    def single_bindings(self, owner: ast.AST) -> dict:
        """{name: value} for names bound exactly once in `owner`, by a plain `name = value`."""
        out = {}
        for name, nodes in self.bindings.get(owner, {}).items():
            if len(nodes) == 1 and isinstance(nodes[0], ast.Assign) and len(nodes[0].targets) == 1 \
                    and isinstance(nodes[0].targets[0], ast.Name):
                out[name] = nodes[0].value
        return out


@dataclass
class FileAnalysis:
    """Facts about one file shared by all rules (see the module docstring)."""

    path: str
    tree: ast.Module
    config: Config
    index: Index
    guards: list[Guard] = field(default_factory=list)
    _bindings_cache: dict = field(default_factory=dict)

    @property
    def parents(self) -> dict:
        return self.index.parents

    @property
    def functions(self) -> dict:
        return self.index.functions

    @property
    def calls(self) -> dict:
        return self.index.calls

    @classmethod
    def build(cls, path: str, tree: ast.Module, config: Config, index: Index | None = None) -> "FileAnalysis":
        fa = cls(path=path, tree=tree, config=config, index=index or Index.build(tree))
        fa._find_guards()
        return fa

    # -- reachability ----------------------------------------------------------------------
    def _foldable(self, test: ast.AST) -> bool:
        """Cheap pre-check: a test can only fold when it mentions a hyperparameter, an environment
        read, getattr, a module constant or a local bound once (folded through its value)."""
        for node in ast.walk(test):
            if isinstance(node, ast.Name):
                if self.config.knows(node.id) or node.id in self._module_constants or node.id == "getattr":
                    return True
                if node.id not in ("self", "None", "True", "False"):
                    return True  # a local: maybe bound once to a foldable value
            elif isinstance(node, ast.Attribute) and (self.config.knows(node.attr) or node.attr in ("environ", "getenv")):
                return True
        return False

    def _find_guards(self) -> None:
        if not self.config.params:
            return  # nothing is configurable: every branch can run
        for node in self.index.branches:
            if self._foldable(node.test):
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

    @property
    def _name_refs(self) -> dict[str, list[int]]:
        return self.index.name_refs

    def _bound_once(self, node: ast.AST) -> dict[str, ast.expr]:
        """Names bound exactly once in the function around `node`, then module constants."""
        fn = self.enclosing_function(node)
        names = dict(self._module_constants)
        if fn is not None:
            names.update(self._single_bindings(fn))
        return names

    @cached_property
    def _module_constants(self) -> dict[str, ast.expr]:
        return {name: value for name, value in self.index.single_bindings(self.tree).items()
                if isinstance(value, ast.Constant)}

    def _single_bindings(self, fn: ast.FunctionDef) -> dict[str, ast.expr]:
        cached = self._bindings_cache.get(fn)
        if cached is None:
            cached = self._bindings_cache[fn] = self.index.single_bindings(fn)
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
        """The val-token / target data-flow facts of this file (audit.static.flow.FlowAnalysis)."""
        return LAYERS["flow"](self)


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
