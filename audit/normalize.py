"""Static normalisation of a submission's Python source before the rules read it.

Real submissions hide their code behind self-extracting shims (`exec(lzma.decompress(
base64.b85decode("…")))`, brotli or zlib variants, a `_b=b"<base85>"` literal decoded by a later exec),
behind `exec(open(<sibling file>).read())` indirection, and in helper modules imported from the
same folder. `normalize_source` undoes all three *without executing or importing anything*: a
small evaluator accepts only literals, names bound to literals, a whitelist of pure decoders
(lzma, zlib, gzip, bz2, brotli, base64/base85/hex) and str/bytes methods; everything else is left in
place, so an unresolved `exec(...)` stays visible to the dynamic-code rule.

The result keeps, for every normalised line, the (file, line) it came from: lines decoded from a
shim map to the line of the `exec` that carries them, inlined files to their own lines.
"""

from __future__ import annotations

import ast
import bz2
import gzip
import io
import lzma
import posixpath
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

# A shim may not decode to more than this: no legal submission's code comes near it, and the cap
# keeps a decompression bomb from exhausting memory.
MAX_DECODED_BYTES = 32 * 1024 * 1024
MAX_LAYERS = 8  # nested shims / indirections followed before giving up
MAX_HELPER_BYTES = 20 * 1024 * 1024


class _Unresolvable(Exception):
    """The expression is not a static value the evaluator accepts (or decoding failed)."""


@dataclass(frozen=True)
class Note:
    """Something normalisation did or could not do, at (path, line) of an original file."""

    kind: str  # decoded | indirection | helper | undecodable | unresolved
    path: str
    line: int
    detail: str


@dataclass
class Normalized:
    """A file with its shims, indirection and helper modules unwrapped, and where each line came from."""

    text: str
    origins: list[tuple[str, int]]  # origins[i] = (original path, original line) of line i+1
    notes: list[Note] = field(default_factory=list)
    helpers: list[str] = field(default_factory=list)  # helper files inlined, relative paths
    path: str = ""  # the normalised file, relative to the folder
    # lines decoded from a shim are named "<file>#decoded" (numbered within the decoded text);
    # this maps each such name to the (file, line) of the exec that carries it
    virtual: dict[str, tuple[str, int]] = field(default_factory=dict)
    # the ast of `text` when normalising changed nothing (the static engine reuses it: a parse of a
    # 3,000-line record costs about 80 ms)
    tree: ast.Module | None = None

    def line_map(self, line: int) -> tuple[str, int]:
        """(original relative path, original 1-based line) of normalised 1-based `line`."""
        if 1 <= line <= len(self.origins):
            return self.origins[line - 1]
        return (self.origins[-1] if self.origins else ("", line))

    def real_location(self, path: str, line: int) -> tuple[str, int]:
        """A (file, line) that exists on disk: a decoded line resolves to its exec statement."""
        seen = 0
        while path in self.virtual and seen < MAX_LAYERS:
            path, line = self.virtual[path]
            seen += 1
        return path, line

    @property
    def files(self) -> list[str]:
        """The normalised file and every file inlined into it (indirection targets, helpers)."""
        return list(dict.fromkeys([self.path, *self.helpers] if self.path else self.helpers))


# --------------------------------------------------------------------------------------------
# Parsing. The records use Python 3.12 f-strings (quotes reused inside a replacement field:
# `f"{", ".join(x)}"`), which the `ast` of an older interpreter rejects. A small scanner that knows
# PEP 701 nesting finds them; the normalised text gets the nested quotes swapped (same length, same
# meaning) so that every later parser accepts it, and where a swap is impossible the f-string body
# is masked for the statement positions that normalisation needs.

_PREFIX_CHARS = set("rRbBuUfF")
_OTHER_QUOTE = {'"': "'", "'": '"'}
_CODE_STOP = re.compile(r"[#'\"]")
_STRING_STOP = {q: re.compile(r"[\\\n" + q + "]") for q in "'\""}
_F_STRING_STOP = {q: re.compile(r"[\\\n{" + q + "]") for q in "'\""}


class _StringScanner:
    """Walks the string literals of Python source, PEP 701 f-string nesting included."""

    def __init__(self, text: str):
        self.text = text
        self.fstrings: list[tuple[int, int, int]] = []  # (prefix start, quote start, end) of f-strings
        self.requotes: list[tuple[int, int]] = []  # (start, end) of nested strings to re-quote

    def run(self) -> "_StringScanner":
        text, i, n = self.text, 0, len(self.text)
        while i < n:
            m = _CODE_STOP.search(text, i)  # jump to the next comment or quote
            if m is None:
                break
            i = m.start()
            if text[i] == "#":
                newline = text.find("\n", i)
                i = n if newline < 0 else newline
                continue
            k = self._prefix_start(i)
            is_f = "f" in text[k:i].lower()
            end = self._string_end(i, is_f, outer=None)
            if is_f:
                self.fstrings.append((k, i, end))
            i = end
        return self

    def _prefix_start(self, i: int) -> int:
        text, k = self.text, i
        while k > 0 and text[k - 1] in _PREFIX_CHARS and i - k < 2:
            k -= 1
        if k > 0 and (text[k - 1].isalnum() or text[k - 1] == "_"):
            return i  # the letters belong to an identifier, not a prefix
        return k

    def _string_end(self, i: int, is_f: bool, outer: str | None) -> int:
        """Index just past the string whose opening quote is at text[i]; `outer` is the quote of
        the f-string whose replacement field holds this string (None at top level)."""
        text, n = self.text, len(self.text)
        quote = text[i]
        triple = text.startswith(quote * 3, i)
        delim = quote * 3 if triple else quote
        j = i + len(delim)
        stops = _F_STRING_STOP if is_f else _STRING_STOP
        while j < n:
            m = stops[quote].search(text, j)  # jump to the next backslash, quote, newline or brace
            if m is None:
                return n
            j = m.start()
            c = text[j]
            if c == "\\":
                j += 2
                continue
            if text.startswith(delim, j):
                end = j + len(delim)
                if outer == quote and not triple and not is_f:
                    body = text[i + 1:j]
                    if _OTHER_QUOTE[quote] not in body and "\\" not in body:
                        self.requotes.append((i, end))
                return end
            if not triple and c == "\n":
                return j  # unterminated: let the parser report it
            if is_f and c == "{":
                if text.startswith("{{", j):
                    j += 2
                    continue
                j = self._expression_end(j + 1, quote if not triple else None)
                continue
            j += 1
        return n

    def _expression_end(self, j: int, outer: str | None) -> int:
        """Index just past the `}` closing a replacement field that starts at text[j]."""
        text, n, depth = self.text, len(self.text), 0
        while j < n:
            c = text[j]
            if c in "([{":
                depth += 1
            elif c in ")]}":
                if depth == 0:
                    return j + 1
                depth -= 1
            elif c in "\"'":
                k = self._prefix_start(j)
                j = self._string_end(j, "f" in text[k:j].lower(), outer)
                continue
            j += 1
        return n


def _requote_fstrings(text: str) -> str:
    """`f"{", ".join(x)}"` -> `f"{', '.join(x)}"`: same length, same value, parseable by Python 3.11."""
    scanner = _StringScanner(text).run()
    if not scanner.requotes:
        return text
    out = list(text)
    for start, end in scanner.requotes:
        out[start] = out[end - 1] = _OTHER_QUOTE[text[start]]
    return "".join(out)


def _mask_fstrings(text: str) -> str:
    """`text` with every f-string's body replaced by x's (same length, same newlines)."""
    out = list(text)
    for k, i, end in _StringScanner(text).run().fstrings:
        quote_len = 3 if text.startswith(text[i] * 3, i) else 1
        for j in range(k, i):
            out[j] = " "
        for j in range(i + quote_len, max(i + quote_len, end - quote_len)):
            if out[j] != "\n":
                out[j] = "x"
    return "".join(out)


def _parse(text: str) -> tuple[ast.Module, bool]:
    """(tree, whether f-string bodies had to be masked); SyntaxError of the unmasked text."""
    try:
        return ast.parse(text), False
    except SyntaxError as first:
        if "f-string" not in (first.msg or ""):
            raise
        try:
            return ast.parse(_mask_fstrings(text)), True
        except SyntaxError:
            raise first from None


def parse_python(text: str) -> ast.Module:
    """`ast.parse`, accepting Python 3.12 f-strings on older interpreters (bodies masked).

    Raises SyntaxError (of the unmasked text) when the text is not Python.
    """
    return _parse(text)[0]


# --------------------------------------------------------------------------------------------
# The static evaluator: pure decoders only.


def _lzma(data: bytes, format: int = lzma.FORMAT_AUTO, memlimit=None, filters=None) -> bytes:
    if format == lzma.FORMAT_RAW:
        dec = lzma.LZMADecompressor(format=format, filters=filters)
    else:
        dec = lzma.LZMADecompressor(format=format, memlimit=memlimit)
    out = dec.decompress(data, max_length=MAX_DECODED_BYTES)
    if not dec.eof and not dec.needs_input:
        raise _Unresolvable("decoded size over the limit")
    return out


def _zlib(data: bytes, wbits: int = zlib.MAX_WBITS, bufsize: int = 0) -> bytes:
    dec = zlib.decompressobj(wbits)
    out = dec.decompress(data, MAX_DECODED_BYTES)
    if dec.unconsumed_tail:
        raise _Unresolvable("decoded size over the limit")
    return out


def _gzip(data: bytes) -> bytes:
    out = gzip.GzipFile(fileobj=io.BytesIO(data)).read(MAX_DECODED_BYTES + 1)
    if len(out) > MAX_DECODED_BYTES:
        raise _Unresolvable("decoded size over the limit")
    return out


def _bz2(data: bytes) -> bytes:
    dec = bz2.BZ2Decompressor()
    out = dec.decompress(data, max_length=MAX_DECODED_BYTES)
    if not dec.eof and not dec.needs_input:
        raise _Unresolvable("decoded size over the limit")
    return out


def _brotli(data: bytes) -> bytes:
    try:
        import brotli
    except ImportError as exc:  # the auditor's environment lacks brotli: report, do not guess
        raise _Unresolvable("brotli is not installed") from exc
    dec = brotli.Decompressor()
    out = dec.process(data, output_buffer_limit=MAX_DECODED_BYTES)
    if len(out) >= MAX_DECODED_BYTES and not dec.is_finished():
        raise _Unresolvable("decoded size over the limit")
    return out


def _codecs_decode(data, encoding: str = "utf-8", errors: str = "strict"):
    import codecs

    if encoding.replace("-", "_").lower() in ("zlib", "zlib_codec", "zip"):
        return _zlib(data)
    if encoding.replace("-", "_").lower() in ("bz2", "bz2_codec"):
        return _bz2(data)
    return codecs.decode(data, encoding, errors)


def _base64_fn(name: str) -> Callable:
    import base64

    return getattr(base64, name)


def _binascii_fn(name: str) -> Callable:
    import binascii

    return getattr(binascii, name)


# dotted name (after alias resolution) -> pure function
_DECODERS: dict[str, Callable] = {
    "lzma.decompress": _lzma,
    "zlib.decompress": _zlib,
    "gzip.decompress": _gzip,
    "bz2.decompress": _bz2,
    "brotli.decompress": _brotli,
    "codecs.decode": _codecs_decode,
    **{
        f"base64.{n}": _base64_fn(n)
        for n in (
            "b85decode", "b64decode", "a85decode", "b32decode", "b16decode",
            "urlsafe_b64decode", "standard_b64decode", "decodebytes",
        )
    },
    **{f"binascii.{n}": _binascii_fn(n) for n in ("a2b_base64", "unhexlify", "a2b_hex")},
    "bytes.fromhex": bytes.fromhex,
}
# how a decoding layer is named in the notes ("lzma+base85 shim"); else the module name
_LAYER_NAMES = {"b85decode": "base85", "a85decode": "ascii85", "b64decode": "base64", "b32decode": "base32",
                "b16decode": "hex", "urlsafe_b64decode": "base64", "standard_b64decode": "base64",
                "decodebytes": "base64", "a2b_base64": "base64", "unhexlify": "hex", "a2b_hex": "hex",
                "fromhex": "hex"}
# str/bytes methods the evaluator may apply to a value it already knows
_METHODS = {"decode", "encode", "replace", "strip", "lstrip", "rstrip", "removeprefix", "removesuffix"}
# modules whose UPPER_CASE constants (lzma.FORMAT_RAW, lzma.FILTER_LZMA2, zlib.MAX_WBITS) may be read
_CONSTANT_MODULES = {"lzma": lzma, "zlib": zlib}


def _statements(node: ast.AST):
    """Every statement nested in `node` (through bodies, not expressions): cheaper than ast.walk."""
    for name in ("body", "orelse", "finalbody", "handlers", "cases"):
        for child in getattr(node, name, ()) or ():
            if isinstance(child, ast.stmt):
                yield child
            yield from _statements(child)


def _aliases(tree: ast.Module) -> dict[str, str]:
    """Local name -> dotted module path, from every import in the module."""
    names: dict[str, str] = {}
    for node in _statements(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    names[a.asname] = a.name
                else:
                    top = a.name.split(".")[0]
                    names[top] = top
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                names[a.asname or a.name] = f"{node.module}.{a.name}"
    return names


def _literal_bindings(tree: ast.Module) -> dict[str, ast.expr]:
    """Module-level `name = <expr>` bound exactly once (a second binding makes the name unknown)."""
    bound: dict[str, ast.expr | None] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            bound[name] = node.value if name not in bound else None
    return {k: v for k, v in bound.items() if v is not None}


class _Evaluator:
    """Evaluates the payload expression of an exec statically; raises _Unresolvable otherwise."""

    def __init__(self, tree: ast.Module, current_path: str):
        self.aliases = _aliases(tree)
        self.bindings = _literal_bindings(tree)
        self.current_path = current_path
        self.used: list[str] = []  # decoders applied, outermost last (for the notes)

    def dotted(self, node: ast.expr) -> str | None:
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id, node.id)
        if (isinstance(node, ast.Call) and len(node.args) == 1 and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str) and self.dotted(node.func) in ("__import__", "importlib.import_module")):
            return node.args[0].value  # __import__("lzma").decompress
        if isinstance(node, ast.Attribute):
            base = self.dotted(node.value)
            return f"{base}.{node.attr}" if base else None
        return None

    def value(self, node: ast.expr, depth: int = 0) -> Any:
        if depth > 50:
            raise _Unresolvable("expression too deep")
        if isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes, int, float, bool, type(None))):
            return node.value
        if isinstance(node, ast.Name):
            if node.id == "__file__":
                return self.current_path
            if node.id in self.bindings:
                return self.value(self.bindings[node.id], depth + 1)
            raise _Unresolvable(f"name {node.id!r} is not a literal")
        if isinstance(node, ast.Attribute):
            dotted = self.dotted(node)
            if dotted:
                module, _, const = dotted.rpartition(".")
                if module in _CONSTANT_MODULES and const.isupper():
                    return getattr(_CONSTANT_MODULES[module], const)
            raise _Unresolvable(f"attribute {ast.unparse(node)!r}")
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return self.value(node.left, depth + 1) + self.value(node.right, depth + 1)
        if isinstance(node, (ast.List, ast.Tuple)):
            return [self.value(e, depth + 1) for e in node.elts]
        if isinstance(node, ast.Dict) and all(k is not None for k in node.keys):
            return {self.value(k, depth + 1): self.value(v, depth + 1) for k, v in zip(node.keys, node.values)}
        if isinstance(node, ast.Call):
            return self.call(node, depth)
        raise _Unresolvable(type(node).__name__)

    def call(self, node: ast.Call, depth: int) -> Any:
        if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
            raise _Unresolvable("star arguments")
        args = [self.value(a, depth + 1) for a in node.args]
        kwargs = {k.arg: self.value(k.value, depth + 1) for k in node.keywords}
        dotted = self.dotted(node.func)
        if dotted in _DECODERS:
            self.used.append(_LAYER_NAMES.get(dotted.split(".")[-1], dotted.split(".")[0]))
            try:
                return _DECODERS[dotted](*args, **kwargs)
            except _Unresolvable:
                raise
            except Exception as exc:  # corrupt data, wrong filters: undecodable, never fatal
                raise _Unresolvable(f"{dotted} failed: {type(exc).__name__}: {exc}") from exc
        if isinstance(node.func, ast.Attribute) and node.func.attr in _METHODS:
            receiver = self.value(node.func.value, depth + 1)
            if isinstance(receiver, (str, bytes)):
                try:
                    return getattr(receiver, node.func.attr)(*args, **kwargs)
                except Exception as exc:
                    raise _Unresolvable(f".{node.func.attr}() failed: {exc}") from exc
        raise _Unresolvable(f"call of {ast.unparse(node.func)!r}")

    # -- paths of exec(open(<path>).read()) --------------------------------------------------
    def path(self, node: ast.expr, depth: int = 0) -> str:
        """A path expression built from __file__ and literals (os.path / pathlib / str.replace)."""
        if depth > 20:
            raise _Unresolvable("path too deep")
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):  # Path(...) / "x.py"
            return posixpath.join(self.path(node.left, depth + 1), self.path(node.right, depth + 1))
        if isinstance(node, ast.Attribute) and node.attr == "parent":
            return posixpath.dirname(self.path(node.value, depth + 1))
        if isinstance(node, ast.Call):
            dotted = self.dotted(node.func) or ""
            args = node.args
            if dotted in ("os.path.join", "posixpath.join") and args:
                return posixpath.join(*(self.path(a, depth + 1) for a in args))
            if dotted in ("os.path.dirname", "posixpath.dirname") and len(args) == 1:
                return posixpath.dirname(self.path(args[0], depth + 1))
            if dotted in ("os.path.abspath", "os.path.realpath", "os.path.normpath", "str", "os.fspath",
                          "pathlib.Path", "Path", "pathlib.PurePath") and len(args) == 1:
                return self.path(args[0], depth + 1)
            if isinstance(node.func, ast.Attribute):
                method = node.func.attr
                if method in ("resolve", "absolute", "expanduser") and not args:
                    return self.path(node.func.value, depth + 1)
                if method == "with_name" and len(args) == 1:
                    return posixpath.join(posixpath.dirname(self.path(node.func.value, depth + 1)),
                                          self.path(args[0], depth + 1))
                if method == "joinpath" and args:
                    return posixpath.join(self.path(node.func.value, depth + 1),
                                          *(self.path(a, depth + 1) for a in args))
                if method == "replace" and len(args) == 2:
                    base = self.path(node.func.value, depth + 1)
                    return base.replace(self.value(args[0]), self.value(args[1]))
        value = self.value(node, depth + 1)
        if not isinstance(value, str):
            raise _Unresolvable("path is not a string")
        return value


def _read_target(node: ast.expr) -> ast.expr | None:
    """The path expression of `open(P).read()`, `open(P, "r").read()` or `Path(P).read_text()`."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
        return None
    if node.func.attr == "read" and isinstance(node.func.value, ast.Call):
        opener = node.func.value
        name = opener.func.id if isinstance(opener.func, ast.Name) else getattr(opener.func, "attr", "")
        if name == "open" and opener.args:
            return opener.args[0]
    if node.func.attr in ("read_text", "read_bytes"):
        return node.func.value
    return None


def _exec_payload(stmt: ast.stmt) -> ast.expr | None:
    """The payload of a statement `exec(payload)` / `exec(compile(payload, ...))`, else None."""
    if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)):
        return None
    call = stmt.value
    if not (isinstance(call.func, ast.Name) and call.func.id == "exec" and call.args):
        return None
    payload = call.args[0]
    if (isinstance(payload, ast.Call) and isinstance(payload.func, ast.Name)
            and payload.func.id == "compile" and payload.args):
        payload = payload.args[0]
    return payload


# --------------------------------------------------------------------------------------------
# Rebuilding the text.


@dataclass
class _Edit:
    """Replace original lines [first, last] (1-based) by `body`, keeping text outside the stmt."""

    first: int
    last: int
    start_col: int
    end_col: int
    body: Normalized


@dataclass
class _Insert:
    before: int  # 1-based original line
    body: Normalized


def _indent(body: Normalized, indent: str) -> Normalized:
    if not indent:
        return body
    lines = [indent + line if line.strip() else line for line in body.text.split("\n")]
    return Normalized("\n".join(lines), body.origins, body.notes, body.helpers)


def _split_lines(text: str) -> list[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


class _Normalizer:
    def __init__(self, folder: Path | Mapping[str, str] | None):
        # The submission's files: a folder on disk, or {relative path: text} (snippets, tests).
        self.folder = folder.resolve() if isinstance(folder, Path) else None
        self.files = folder if isinstance(folder, Mapping) else None
        self.inlined: set[str] = set()  # files already inlined anywhere in this normalisation
        self.masked = False  # some text needed PEP 701 f-string masking to parse
        self.virtual: dict[str, tuple[str, int]] = {}  # decoded text name -> (file, line) of its exec

    # -- files of the folder ----------------------------------------------------------------
    def _sibling(self, current: str, target: str) -> str | None:
        """`target` as a path relative to the folder, if it is a file inside it."""
        rel = posixpath.normpath(posixpath.join(posixpath.dirname(current), target))
        candidates = [rel]
        if posixpath.isabs(target):  # an absolute path of the author's machine: try the file name
            candidates.append(posixpath.basename(target))
        for cand in candidates:
            if cand.startswith("..") or posixpath.isabs(cand):
                continue
            if self.files is not None and cand in self.files:
                return cand
            if self.folder is not None:
                full = (self.folder / cand).resolve()
                if full.is_file() and self.folder in full.parents:
                    return full.relative_to(self.folder).as_posix()
        return None

    def _read(self, rel: str) -> str:
        if self.files is not None:
            return self.files[rel]
        assert self.folder is not None
        data = (self.folder / rel).read_bytes()
        if len(data) > MAX_HELPER_BYTES:
            raise _Unresolvable(f"{rel} is over {MAX_HELPER_BYTES} bytes")
        return data.decode("utf-8")

    def _local_module(self, current: str, module: str) -> list[str]:
        """Files of the folder a `import module` loads (package __init__ and leaf), in load order."""
        parts = module.split(".")
        found = []
        for i in range(1, len(parts) + 1):
            stem = "/".join(parts[:i])
            as_pkg = self._sibling(current, stem + "/__init__.py")
            as_file = self._sibling(current, stem + ".py")
            if as_pkg:
                found.append(as_pkg)
            elif as_file:
                found.append(as_file)
                break
            else:
                break
        return found

    # -- one file ---------------------------------------------------------------------------
    def normalize(self, text: str, path: str, depth: int = 0, label: str | None = None,
                  tree: ast.Module | None = None) -> Normalized:
        """Normalise `text`, the file `path` (where siblings are looked up); `label` names the
        text's lines when it is not a file of the folder (a decoded shim: "train_gpt.py#decoded")."""
        lines = _split_lines(text)
        label = label or path

        def origin(line: int) -> tuple[str, int]:
            return (label, line)

        notes: list[Note] = []
        helpers: list[str] = []
        masked = False
        try:
            if tree is None:
                tree, masked = _parse(text)
                self.masked |= masked
        except (SyntaxError, ValueError):
            return Normalized("\n".join(lines), [origin(i + 1) for i in range(len(lines))], notes)
        edits: list[_Edit] = []
        inserts: list[_Insert] = []
        evaluator = _Evaluator(tree, path)
        top_level_of: dict[int, ast.stmt] = {}
        nodes = []
        for top in tree.body:
            for node in (top, *_statements(top)):
                top_level_of[id(node)] = top
                nodes.append(node)
        for node in nodes:
            if (payload := _exec_payload(node)) is not None:
                edit = self._exec_edit(node, payload, evaluator, path, depth, label, lines, notes)
                if edit is not None:
                    edits.append(edit)
                    helpers.extend(edit.body.helpers)
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for helper in self._helper_modules(node, path):
                    if depth >= MAX_LAYERS:
                        break
                    try:
                        body = self.normalize(self._read(helper), helper, depth + 1)
                    except (_Unresolvable, UnicodeDecodeError) as exc:
                        notes.append(Note("unresolved", *origin(node.lineno), f"helper {helper}: {exc}"))
                        continue
                    top = top_level_of[id(node)]
                    first = min([top.lineno] + [d.lineno for d in getattr(top, "decorator_list", [])])
                    inserts.append(_Insert(first, body))
                    helpers.append(helper)
                    helpers.extend(h for h in body.helpers if h not in helpers)
                    notes.append(Note("helper", *origin(node.lineno), f"inlined helper module {helper}"))
        for edit in edits:
            notes.extend(edit.body.notes)
        for ins in inserts:
            notes.extend(ins.body.notes)
        result = self._rebuild(lines, edits, inserts, origin, notes, helpers)
        if not edits and not inserts and not masked:
            result.tree = tree
        return result

    def _helper_modules(self, node: ast.Import | ast.ImportFrom, path: str) -> list[str]:
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif node.level == 0 and node.module:
            modules = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif node.level == 1:  # `from . import x` / `from .x import y`, inside a local package
            modules = [node.module] if node.module else [a.name for a in node.names]
        out = []
        for module in modules:
            for rel in self._local_module(path, module):
                if rel not in self.inlined and rel != path:
                    self.inlined.add(rel)
                    out.append(rel)
        return out

    def _exec_edit(self, stmt, payload, evaluator, path, depth, label, lines, notes) -> _Edit | None:
        line = stmt.lineno
        target = _read_target(payload)
        try:
            if depth >= MAX_LAYERS:
                raise _Unresolvable(f"more than {MAX_LAYERS} nested layers")
            if target is not None:
                rel = self._sibling(path, evaluator.path(target))
                if rel is None:
                    raise _Unresolvable(f"exec(open({ast.unparse(target)}).read()): no such file in the folder")
                if rel in self.inlined or rel == path:
                    raise _Unresolvable(f"{rel} is executed twice (cycle)")
                self.inlined.add(rel)
                body = self.normalize(self._read(rel), rel, depth + 1)
                body.notes.insert(0, Note("indirection", label, line, f"exec of {rel} inlined"))
                body.helpers.insert(0, rel)
            else:
                evaluator.used.clear()
                decoded = evaluator.value(payload)
                if isinstance(decoded, bytes):
                    decoded = decoded.decode("utf-8")
                if not isinstance(decoded, str):
                    raise _Unresolvable("payload is not code")
                try:
                    tree, masked = _parse(decoded)
                    self.masked |= masked
                except (SyntaxError, ValueError) as exc:
                    raise _Unresolvable(f"decoded text is not valid Python ({exc.msg if isinstance(exc, SyntaxError) else exc})")
                layers = "+".join(reversed(evaluator.used)) or "literal"
                virtual = f"{path}#decoded" + (str(len(self.virtual) + 1) if self.virtual else "")
                self.virtual[virtual] = (label, line)
                body = self.normalize(decoded, path, depth + 1, label=virtual, tree=tree)
                body.notes.insert(0, Note("decoded", label, line,
                                          f"{layers} shim decoded ({len(decoded.encode())} bytes, "
                                          f"{decoded.count(chr(10)) + 1} lines)"))
        except (_Unresolvable, UnicodeDecodeError, OSError) as exc:
            if target is not None or _looks_like_shim(payload, evaluator):
                notes.append(Note("undecodable", label, line, str(exc)))
            return None
        indent = lines[stmt.lineno - 1][: len(lines[stmt.lineno - 1]) - len(lines[stmt.lineno - 1].lstrip())]
        return _Edit(stmt.lineno, stmt.end_lineno or stmt.lineno, stmt.col_offset, stmt.end_col_offset or 0,
                     _indent(body, indent))

    @staticmethod
    def _rebuild(lines, edits, inserts, origin, notes, helpers) -> Normalized:
        out: list[str] = []
        origins: list[tuple[str, int]] = []
        by_first = {e.first: e for e in edits}
        inserts_at: dict[int, list[_Insert]] = {}
        for ins in inserts:
            inserts_at.setdefault(ins.before, []).append(ins)
        i = 1
        while i <= len(lines):
            for ins in inserts_at.get(i, []):
                body_lines = _split_lines(ins.body.text)
                out.extend(body_lines)
                origins.extend(ins.body.origins[: len(body_lines)])
            edit = by_first.get(i)
            if edit is None:
                out.append(lines[i - 1])
                origins.append(origin(i))
                i += 1
                continue
            first_line, last_line = lines[edit.first - 1], lines[edit.last - 1]
            before = first_line[: edit.start_col].rstrip().rstrip(";").rstrip()
            after = last_line[edit.end_col:].strip().lstrip(";").strip()
            indent = first_line[: len(first_line) - len(first_line.lstrip())]
            if before.strip():
                out.append(before)
                origins.append(origin(edit.first))
            body_lines = _split_lines(edit.body.text)
            out.extend(body_lines)
            origins.extend(edit.body.origins[: len(body_lines)])
            if after and not after.startswith("#"):
                out.append(indent + after)
                origins.append(origin(edit.last))
            i = edit.last + 1
        return Normalized("\n".join(out) + "\n" if out else "", origins, notes, helpers)


def _looks_like_shim(payload: ast.expr, evaluator: _Evaluator) -> bool:
    """An exec whose payload calls a decoder: a shim we failed to decode (worth a note)."""
    return any(isinstance(n, ast.Call) and evaluator.dotted(n.func) in _DECODERS for n in ast.walk(payload))


def normalize_source(
    text: str, path: str, folder: str | Path | Mapping[str, str] | None = None
) -> Normalized:
    """Unwrap shims, exec(open()) indirection and local helper imports of one file, statically.

    `path` is the file's path relative to `folder`: the submission folder on disk, or its files as
    {relative path: text}, where sibling files and helper modules are looked up; with no folder only
    in-file shims are unwrapped.
    """
    normalizer = _Normalizer(Path(folder) if isinstance(folder, str) else folder)
    normalizer.inlined.add(path)
    result = normalizer.normalize(text, path)
    if normalizer.masked:
        result.text = _requote_fstrings(result.text)
        result.tree = None
    result.virtual = dict(normalizer.virtual)
    result.path = path
    return result
