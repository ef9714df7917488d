"""Where the byte count in a reported val_bpb comes from, followed by data flow.

A bpb value is found by the name it is bound to (`val_bpb`, `bits_per_byte`, ...); the divisions in its backward
slice give the denominators (`tokens / byte_count`, `bits / total_bytes`), and each denominator is
followed back through assignments, augmented assignments, subscripts (`base_bytes_lut[tgt]`), the
return values of local functions and the arguments that call sites bind to parameters, to the
calls and string constants it is built from. The origin is then one of:

* sentencepiece: the tables are built from the tokenizer's pieces (`id_to_piece`, `is_byte`): the
  canonical rule, whose details PG007 checks on exactly these builders;
* sidecar: per-token raw bytes read from the canonical CaseOps export (`fineweb_val_bytes_*`);
* file: per-token bytes read from any other file (`np.load("token_bytes.npy")`), shipped with
  or generated for the submission: nothing proves they are the text's bytes;
* foreign tokenizer: bytes from a non-sentencepiece tokenizer (tiktoken, tokenmonster, HF) with no
  byte proof;
* transformed text: a case-encoding tokenizer (CaseOps) whose bytes are taken from its own pieces
  or decoded text, which is the transformed text, not the original.

Nothing is imported or executed; the analysis is name-level over the stdlib ast of each file.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from audit.static.evidence import dotted_name
from audit.static.rule import AuditContext, SourceFile

_SP_CALLS = {"id_to_piece", "IdToPiece", "is_byte", "IsByte", "piece_size", "GetPieceSize",
             "SentencePieceProcessor"}
_FILE_CALLS = {"load", "fromfile", "memmap", "read_bytes", "read_text", "loadtxt", "genfromtxt", "open",
               "load_file", "safe_open"}
_FOREIGN_TOKENIZERS = re.compile(r"^(tiktoken|tokenmonster|transformers|tokenizers)(\.|$)|AutoTokenizer|"
                                 r"GPT2Tokenizer|PreTrainedTokenizer|get_encoding|encoding_for_model")
_SIDECAR = re.compile(r"val_bytes|_bytes_\*|bytes_\d+\.bin|byte_counts?_\*", re.IGNORECASE)
# a path that names per-token byte data: `token_bytes.npy`, a tokenizer's `.meta.npz`, a vocab/LUT
# dump (not `BytesIO`, not the token shards, not the model)
_BYTE_PATH = re.compile(r"(?<![a-z])(bytes?|meta|tokeni[sz]er|vocab|luts?)(?![a-z])", re.IGNORECASE)
_LOADER_MODULES = {"np", "numpy", "torch", "json", "pickle", "joblib", "safetensors", "io"}
_CASE_MARKERS = ("caseops", "lossless_caps", "case_encod")  # a case-encoding tokenizer or transform
MAX_STEPS = 4000  # a bound on the backward walk over a large file


@dataclass
class Origin:
    """What the byte denominator of one bpb computation is built from."""

    line: int  # the bpb statement
    denominator: str  # the byte-count expression
    calls: set[str] = field(default_factory=set)  # dotted callees reached
    byte_files: list[str] = field(default_factory=list)  # file reads whose path names bytes
    strings: list[str] = field(default_factory=list)  # string constants reached
    builders: set[ast.AST] = field(default_factory=set)  # local functions whose results reach it

    @property
    def sentencepiece(self) -> bool:
        return bool({c.rsplit(".", 1)[-1] for c in self.calls} & _SP_CALLS)

    @property
    def sidecar(self) -> bool:
        return any(_SIDECAR.search(s) for s in self.strings)

    @property
    def file_loads(self) -> list[str]:
        """Reads of a per-token byte file (the path names bytes) other than the canonical sidecar."""
        return sorted(f for f in self.byte_files if not _SIDECAR.search(f))

    @property
    def foreign(self) -> list[str]:
        """Non-sentencepiece tokenizer APIs reached (tiktoken, tokenmonster, HF tokenizers)."""
        return sorted(c for c in self.calls if _FOREIGN_TOKENIZERS.search(c))


def mentions_case_encoding(text: str) -> bool:
    """The text names a case-encoding tokenizer or transform (a substring test: logs are large)."""
    lowered = text.lower()
    return any(marker in lowered for marker in _CASE_MARKERS)


def case_encoded(ctx: AuditContext) -> bool:
    """The submission tokenizes case-encoded text (a CaseOps tokenizer or transform in code or logs)."""
    texts = [f.text for f in ctx.files] + list(ctx.logs.values()) + [p for p in ctx.other_files]
    return any(mentions_case_encoding(t) for t in texts)


@dataclass
class _Summary:
    """The calls, names and strings one expression is made of (its value nodes only)."""

    calls: set[str] = field(default_factory=set)
    local_calls: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    strings: list[str] = field(default_factory=list)
    byte_files: list[str] = field(default_factory=list)


class _Graph:
    """Name-level def-use edges of one file: what each name (per function) is computed from.
    A function's edges are recorded the first time a walk enters it (a walk visits a few of a
    file's hundreds of functions)."""

    def __init__(self, analysis):
        self.analysis = analysis
        index = analysis.index
        self.defs: dict[tuple, list[ast.AST]] = {}  # (owner, name) -> value expressions bound to it
        self.returns: dict[str, list[ast.AST]] = {}  # function name -> returned expressions
        self.params: dict[str, list[str]] = {}  # function name -> parameter names in order
        self._recorded: set[int] = set()  # owners whose statements are in defs / returns
        self._origins: dict[tuple, Origin] = {}  # (scope, denominator) -> its walk
        self._summaries: dict[int, _Summary] = {}  # expression -> what it contributes to a walk
        for fns in index.functions.values():
            for fn in fns:
                args = fn.args.posonlyargs + fn.args.args
                names = [a.arg for a in args]
                if names and names[0] in ("self", "cls"):
                    names = names[1:]
                self.params[fn.name] = names + [a.arg for a in fn.args.kwonlyargs]

    def bound(self, owner, name: str) -> list[ast.AST]:
        """The expressions bound to `name` in `owner` (a function or the module)."""
        if id(owner) not in self._recorded:
            self._recorded.add(id(owner))
            for stmt in self.analysis.index.stmts.get(owner, ()):
                self._record(owner, stmt)
        return self.defs.get((owner, name), [])

    def returns_of(self, function: str) -> list[ast.AST]:
        """The expressions the local functions named `function` return."""
        for fn in self.analysis.index.functions.get(function, ()):
            self.bound(fn, "")
        return self.returns.get(function, [])

    def _record(self, owner, stmt) -> None:
        if isinstance(stmt, ast.Return) and stmt.value is not None and hasattr(owner, "name"):
            self.returns.setdefault(owner.name, []).append(stmt.value)
            return
        if isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)) and stmt.value is not None:
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            for target in targets:
                for name in _bound_names(target):  # `lut[i] = len(piece)` writes into lut
                    self.defs.setdefault((owner, name), []).append(stmt.value)
        elif isinstance(stmt, (ast.For, ast.AsyncFor)):
            for name in _bound_names(stmt.target):
                self.defs.setdefault((owner, name), []).append(stmt.iter)
        elif isinstance(stmt, (ast.With, ast.AsyncWith)):  # `with np.load(path) as data:`
            for item in stmt.items:
                for name in _bound_names(item.optional_vars) if item.optional_vars is not None else ():
                    self.defs.setdefault((owner, name), []).append(item.context_expr)
        elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            call = stmt.value  # `out.copy_(x)`, `np.add.at(table, idx, v)`: the receiver is written
            receiver = call.func.value if isinstance(call.func, ast.Attribute) else None
            for name in _bound_names(receiver) if receiver is not None else ():
                self.defs.setdefault((owner, name), []).append(call)

    def origin(self, owner, expr: ast.AST, line: int) -> Origin:
        """What `expr` (in `owner`) is built from; the walk is shared by the bpb statements that
        reach the same denominator (eval_val's, from each of its call sites)."""
        key = (id(owner), id(expr))
        if key not in self._origins:
            self._origins[key] = self._walk(owner, expr)
        found = self._origins[key]
        return Origin(line=line, denominator=found.denominator, calls=found.calls, strings=found.strings,
                      builders=found.builders, byte_files=found.byte_files)

    def _walk(self, owner, expr: ast.AST) -> Origin:
        out = Origin(line=0, denominator=ast.unparse(expr))
        functions = self.analysis.index.functions
        seen: set = set()
        work = [(owner, expr)]
        steps = 0
        while work and steps < MAX_STEPS:
            steps += 1
            scope, node = work.pop()
            summary = self._summary(node)
            out.strings.extend(summary.strings)
            out.calls.update(summary.calls)
            out.byte_files.extend(summary.byte_files)
            for callee in summary.local_calls:
                if ("ret", callee) not in seen:
                    seen.add(("ret", callee))
                    out.builders.update(functions[callee])
                    work.extend((fn, r) for fn in functions[callee] for r in self.returns_of(callee)
                                if self.analysis.enclosing_function(r) is fn)
            fn_name = getattr(scope, "name", None)
            params = self.params.get(fn_name, ()) if fn_name else ()
            for name in summary.names:
                for key in ((scope, name), (self.analysis.tree, name)):
                    if key not in seen:
                        seen.add(key)
                        work.extend((key[0], v) for v in self.bound(*key))
                if name in params and ("param", fn_name, name) not in seen:
                    seen.add(("param", fn_name, name))
                    work.extend(self._arguments(fn_name, name))
        return out

    def _summary(self, node: ast.AST) -> "_Summary":
        """What one expression contributes to a walk, computed once per expression."""
        found = self._summaries.get(id(node))
        if found is not None:
            return found
        found = _Summary()
        functions = self.analysis.index.functions
        for sub in _content(node, functions):
            if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                found.strings.append(sub.value)
            elif isinstance(sub, ast.Call):
                name = _dotted(sub.func)
                if name:
                    found.calls.add(name)
                callee = name.rsplit(".", 1)[-1]
                if _reads_file(name) and sub.args and any(_BYTE_PATH.search(w) for w in _path_words(sub.args[0])):
                    found.byte_files.append(ast.unparse(sub))
                if callee in functions:
                    found.local_calls.append(callee)
            elif isinstance(sub, ast.Name):
                found.names.append(sub.id)
            elif isinstance(sub, ast.Attribute):
                found.names.append(sub.attr)
                found.strings.append(sub.attr)  # `args.val_bytes_files`: the path's name
        self._summaries[id(node)] = found
        return found

    def _arguments(self, fn_name: str, param: str):
        """(caller scope, argument expression) bound to `param` at every call of `fn_name`."""
        position = self.params[fn_name].index(param)
        for call in self.analysis.index.calls.get(fn_name, []):
            scope = self.analysis.enclosing_function(call) or self.analysis.tree
            for kw in call.keywords:
                if kw.arg == param:
                    yield scope, kw.value
            if position < len(call.args) and not any(isinstance(a, ast.Starred) for a in call.args[:position + 1]):
                yield scope, call.args[position]


def _reads_file(dotted: str) -> bool:
    """A call that reads a file's content: `open`, a loader of numpy/torch/json/pickle, a Path's
    read_bytes/read_text (not `sp.load(...)`, a tokenizer reading its own model)."""
    head, _, tail = dotted.rpartition(".")
    if tail not in _FILE_CALLS:
        return False
    return not head or tail in ("read_bytes", "read_text") or head.split(".")[0] in _LOADER_MODULES


def _path_words(node: ast.AST) -> list[str]:
    """The string constants and variable names a path expression is made of (not the functions
    it calls: `io.BytesIO(decompress(blob))` reads a blob, not a byte table)."""
    out, work = [], [node]
    while work:
        sub = work.pop()
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            out.extend(re.split(r"[/.]", sub.value))
        elif isinstance(sub, ast.Name):
            out.append(sub.id)
        elif isinstance(sub, ast.Attribute):
            out.append(sub.attr)
            work.append(sub.value)
        elif isinstance(sub, ast.Call):
            work.extend(sub.args)
            work.extend(k.value for k in sub.keywords)
        else:
            work.extend(ast.iter_child_nodes(sub))
    return out


def _is_bpb_name(name: str) -> bool:
    """`val_bpb`, `q_val_bpb`, `bits_per_byte` (a plain substring test: it runs on every assignment)."""
    lowered = name.lower()
    return "bpb" in lowered or "bits_per_byte" in lowered


def _content(node: ast.AST, local: dict):
    """The nodes of `node` that carry its value: a subscript's index only selects entries of the
    table (`base_bytes_lut[tgt]` has the bytes of the table, not of the token ids), and a call of a
    local function stands for its returns (its arguments reach them through its parameters)."""
    work = [node]
    while work:
        sub = work.pop()
        yield sub
        if isinstance(sub, ast.Subscript):
            work.append(sub.value)
        elif isinstance(sub, ast.Call) and _dotted(sub.func).rsplit(".", 1)[-1] in local:
            continue
        else:
            work.extend(ast.iter_child_nodes(sub))


def _bound_names(target: ast.AST) -> list[str]:
    while isinstance(target, ast.Subscript):
        target = target.value
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, ast.Attribute):
        return [target.attr]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [n for e in target.elts for n in _bound_names(e)]
    if isinstance(target, ast.Starred):
        return _bound_names(target.value)
    return []


def _dotted(func: ast.AST) -> str:
    """The dotted callee (`np.load`), or the method name of a call on a call's result."""
    return dotted_name(func) or (func.attr if isinstance(func, ast.Attribute) else "")


def _denominators(expr: ast.AST, graph: _Graph, owner) -> list[tuple]:
    """(scope, right operand) of the divisions in the backward slice of `expr`, through local
    names and the returns of local functions (the numerator of `tokens / bytes` is a token count,
    so only divisors are kept)."""
    out, seen, work = [], set(), [(owner, expr)]
    while work and len(seen) < 200:
        scope, node = work.pop()
        for sub in _value_nodes(node, graph):
            if isinstance(sub, ast.BinOp) and isinstance(sub.op, ast.Div):
                out.append((scope, sub.right))
            elif isinstance(sub, ast.Name) and (scope, sub.id) not in seen:
                seen.add((scope, sub.id))
                work.extend((scope, v) for v in graph.bound(scope, sub.id))
            elif isinstance(sub, ast.Call):  # `val_loss, val_bpb = eval_val(...)`: into its returns
                callee = _dotted(sub.func).rsplit(".", 1)[-1]
                for fn in graph.analysis.index.functions.get(callee, []):
                    if ("ret", callee) not in seen:
                        seen.add(("ret", callee))
                        work.extend((fn, r) for r in graph.returns_of(callee)
                                    if graph.analysis.enclosing_function(r) is fn)
    return out


def _value_nodes(node: ast.AST, graph: _Graph):
    """The nodes of `node` its value is computed from: a call of a local function stands for its
    returns (its arguments are inputs of that function, not of this value)."""
    work = [node]
    while work:
        sub = work.pop()
        yield sub
        if isinstance(sub, ast.Call) and _dotted(sub.func).rsplit(".", 1)[-1] in graph.analysis.index.functions:
            continue
        work.extend(ast.iter_child_nodes(sub))


def bpb_origins(src: SourceFile) -> list[Origin]:
    """The origin of the byte denominator of every bpb computed in `src` (one per statement)."""
    cached = getattr(src, "_bytes_origins", None)
    if cached is not None:
        return cached
    analysis = src.analysis
    graph = _Graph(analysis)
    out = []
    for owner, stmts in analysis.index.stmts.items():
        for stmt in stmts:
            if not isinstance(stmt, (ast.Assign, ast.AnnAssign)) or stmt.value is None:
                continue
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            if not any(_is_bpb_name(n) for t in targets for n in _bound_names(t)):
                continue
            for scope, denominator in _denominators(stmt.value, graph, owner):
                origin = graph.origin(scope, denominator, stmt.lineno)
                if origin.sentencepiece or origin.file_loads or origin.foreign or origin.sidecar:
                    out.append(origin)
    try:
        src._bytes_origins = out
    except AttributeError:
        pass
    return out
