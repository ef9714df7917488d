"""Python 3.12 f-strings on Python 3.11, rewritten in memory (the submission's file is never edited).

3.12 (PEP 701) lets an f-string's replacement fields hold string literals in the f-string's own
quote (f"{d["key"]}"), which 3.11 cannot parse. `prepare(source, filename)` compiles the source as
it is; when that fails, it parses it with libcst (which reads 3.12 f-strings; minified code its node
checks refuse, such as `for(a,b)in x`, is parsed without them), requotes every
string literal inside a replacement field that uses its f-string's quote (and nested f-strings
with it) to the other quote, and compiles that text under the original filename. Only quote
characters change, never line breaks, so tracebacks and the ledger's file:line still point at the
original file. Source that still does not compile raises UnsupportedSyntax (a replay finding).
`install_exec_hook` does the same for source the submission unpacks and execs itself.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import itertools
import os
import sys

import libcst as cst
import libcst.matchers as m


class UnsupportedSyntax(Exception):
    """The source cannot be compiled by this Python, even after the f-string rewrite."""


_QUOTES = ('"', "'", '"""', "'''")


def _quote_of(start: str) -> str:
    return start.lstrip("rRbBuUfF")


def _clashes(quote: str, enclosing: str) -> bool:
    """Whether `quote` would end the f-string quoted by `enclosing` (3.11: a single quote inside a
    triple-quoted f-string of its character does not)."""
    return quote[0] == enclosing[0] and not (len(enclosing) == 3 and len(quote) == 1)


def _free_quote(enclosing: list[str]) -> str | None:
    """A quote that ends no enclosing f-string."""
    return next((q for q in _QUOTES if not any(_clashes(q, e) for e in enclosing)), None)


def _escape(text: str, quote: str) -> str:
    return text.encode("unicode_escape").decode("ascii").replace(quote[0], "\\" + quote[0])


def _requote_simple(node: cst.SimpleString, quote: str) -> cst.SimpleString:
    """`node` written with `quote` instead of its own quote (escapes remade, so no raw prefix)."""
    value = ast.literal_eval(node.value)
    prefix = node.prefix.replace("r", "").replace("R", "")
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    return node.with_changes(value=f"{prefix}{quote}{_escape(text, quote)}{quote}")


class _Requote(cst.CSTTransformer):
    """Gives every string literal inside a replacement field a quote no enclosing f-string uses."""

    def __init__(self):
        super().__init__()
        self.enclosing: list[str] = []  # the quote chosen for each enclosing f-string
        self.sites = 0

    def visit_FormattedString(self, node: cst.FormattedString) -> None:
        own = _quote_of(node.start)
        if not self.enclosing:
            # an f-string nested in this one needs a third quote: only a triple quote leaves one
            nested = len(m.findall(node, m.FormattedString())) > 1
            self.enclosing.append(own[0] * 3 if nested and len(own) == 1 else own)
            return
        clash = any(_clashes(own, e) for e in self.enclosing)
        self.enclosing.append((_free_quote(self.enclosing) or own) if clash else own)

    def leave_FormattedString(self, original, updated: cst.FormattedString):
        chosen = self.enclosing.pop()
        own = _quote_of(updated.start)
        if chosen == own:
            return updated
        self.sites += 1
        return updated.with_changes(start=updated.start[: len(updated.start) - len(own)] + chosen, end=chosen)

    def leave_SimpleString(self, original, updated: cst.SimpleString):
        if self.enclosing and any(_clashes(updated.quote, e) for e in self.enclosing):
            quote = _free_quote(self.enclosing)
            if quote is not None:
                self.sites += 1
                return _requote_simple(updated, quote)
        return updated


def prepare(source: str, filename: str) -> tuple[object, int]:
    """(code object, number of rewritten string literals) for `source` under `filename`."""
    try:
        return compile(source, filename, "exec"), 0
    except SyntaxError as first:
        error = first
    rewriter = _Requote()
    try:
        text = cst.parse_module(source).visit(rewriter).code
    except cst.CSTValidationError:
        # minified code (`for(a,b)in x`, `)for`) is valid Python that libcst's node checks refuse
        rewriter = _Requote()
        try:
            with _lenient_nodes():
                text = cst.parse_module(source).visit(rewriter).code
        except Exception:
            raise UnsupportedSyntax(_describe(error)) from None
    except Exception:
        raise UnsupportedSyntax(_describe(error)) from None
    try:
        return compile(text, filename, "exec"), rewriter.sites
    except SyntaxError as second:
        raise UnsupportedSyntax(_describe(second)) from None


@contextlib.contextmanager
def _lenient_nodes():
    """libcst without its whitespace checks on nodes (they only refuse what Python accepts; the
    text round-trips unchanged either way)."""
    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    saved = [(c, c.__dict__["_validate"]) for c in {cst.CSTNode, *subclasses(cst.CSTNode)} if "_validate" in c.__dict__]
    for cls, _ in saved:
        cls._validate = _no_validation
    try:
        yield
    finally:
        for cls, validate in saved:
            cls._validate = validate


def _no_validation(self) -> None:
    return None


def _describe(error: SyntaxError) -> str:
    return f"line {error.lineno}: {error.msg}"


def install_exec_hook(script: str, folder: str, record) -> None:
    """Source that the submission execs as a string, or compiles first (the records' lzma+base85
    self-unpacking wrappers: `exec(S)` or `exec(compile(S, F, "exec"))`), is written to `folder` and
    compiled from there through prepare(): its 3.12 f-strings are rewritten too, and the ledger's
    sites point at lines of a real file."""
    real_exec, real_compile = builtins.exec, builtins.compile
    count = itertools.count(1)

    def unpack(source):
        text = source.decode("utf-8") if isinstance(source, bytes) else source
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"{os.path.splitext(os.path.basename(script))[0]}.exec{next(count)}.py")
        staged = f"{path}.{os.getpid()}"  # ranks write the same text: each whole, then moved in place
        with open(staged, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(staged, path)
        code, sites = prepare(text, path)
        record.note(f"exec'd source unpacked to {os.path.basename(path)}")
        if sites:
            record.note(f"f-string rewrite in {os.path.basename(path)} ({sites} sites)")
        return code

    def exec_(source, globals=None, locals=None, *args, **kwargs):
        caller = sys._getframe(1)
        if isinstance(source, (str, bytes)) and caller.f_code.co_filename == script:
            source = unpack(source)
        if globals is None:  # exec's defaults are its caller's namespaces, not this wrapper's
            globals, locals = caller.f_globals, caller.f_locals
        return real_exec(source, globals, locals, *args, **kwargs)

    def compile_(source, filename, mode, *args, **kwargs):
        caller = sys._getframe(1)
        if (isinstance(source, (str, bytes)) and mode == "exec" and not args and not kwargs
                and caller.f_code.co_filename == script):
            return unpack(source)
        return real_compile(source, filename, mode, *args, **kwargs)

    builtins.exec = exec_
    builtins.compile = compile_
