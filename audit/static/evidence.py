"""Evidence the front-end rules share: run-log facts, README/submission.json claims, the code
inventory (what was unwrapped, inlined and shipped) and a few call-graph facts of the entry file.

Everything is computed once per AuditContext and cached on it. Contexts built by
audit/submission.py carry their normalisation; rule snippets (engine.context_from_snippet) do not,
so `normalization(ctx)` recomputes it from the snippet's own files, never from disk.
"""

from __future__ import annotations

import ast
import lzma
import re
import base64
from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterator

from audit.normalize import Normalized, normalize_source
from audit.runner.logs import RunSummary, parse_log
from audit.static.nodes import closure_forward
from audit.static.rule import AuditContext, SourceFile

ARTIFACT_LIMIT = 16_000_000  # decimal bytes (README FAQ: "16,000,000 total bytes")
TRAIN_LIMIT_MS = 600_000
EVAL_LIMIT_S = 600.0
CODE_SUFFIXES = (".py", ".c", ".cc", ".cpp", ".cu", ".cuh", ".h", ".hpp", ".so", ".sh", ".pyx")
NATIVE_SUFFIXES = (".c", ".cc", ".cpp", ".cu", ".cuh", ".so", ".pyx")


def _cached(ctx: AuditContext, key: str, build):
    cache = ctx.__dict__.setdefault("_front_evidence", {})
    if key not in cache:
        cache[key] = build()
    return cache[key]


# -- normalisation and code inventory ---------------------------------------------------------


def normalization(ctx: AuditContext) -> Normalized | None:
    """The entry's normalisation (from audit/submission.py, or recomputed for a snippet)."""
    existing = getattr(ctx, "normalized", None)
    if existing is not None:
        return existing
    if ctx.entry is None:
        return None
    return _cached(ctx, "normalized", lambda: normalize_source(
        ctx.entry.text, ctx.entry.path, {f.path: f.text for f in ctx.files}))


def original_texts(ctx: AuditContext) -> dict[str, str]:
    """The Python files of the submission as shipped (before normalisation)."""
    sub = getattr(ctx, "submission_files", None)
    if sub is not None:
        return dict(sub.python)
    return {f.path: f.text for f in ctx.files}


def file_sizes(ctx: AuditContext) -> dict[str, int]:
    """Bytes of every file of the folder (snippets: their texts)."""
    sub = getattr(ctx, "submission_files", None)
    if sub is not None:
        return dict(sub.sizes)
    snippet = getattr(ctx, "snippet_sizes", None)
    if snippet is not None:
        return dict(snippet)
    return {path: len(text.encode("utf-8")) for path, text in original_texts(ctx).items()}


def is_single_file(ctx: AuditContext) -> bool:
    sub = getattr(ctx, "submission_files", None)
    return bool(sub is not None and sub.single_file)


def lzma_wrapper_bytes(code: str) -> int:
    """Bytes of `code` as the records' lzma(raw)+base85 self-extracting train_gpt.py."""
    packed = lzma.compress(code.encode("utf-8"), format=lzma.FORMAT_RAW,
                           filters=[{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}])
    head = 'import lzma as L,base64 as B\nexec(L.decompress(B.b85decode("'
    tail = '"),format=L.FORMAT_RAW,filters=[{"id":L.FILTER_LZMA2}]))\n'
    return len(head) + len(base64.b85encode(packed)) + len(tail)


def packed_code_bytes(code: str) -> int:
    """Bytes of `code` as the records pack it for accounting: minified (comments and docstrings
    dropped, as `ast.unparse` of the tree without docstrings gives it), then an lzma+base85 wrapper.
    Falls back to the wrapper of the text as is when it does not parse."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return lzma_wrapper_bytes(code)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and body \
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            body[0].value.value = ""
    return lzma_wrapper_bytes(ast.unparse(tree))


@dataclass
class CodeInventory:
    entry: str
    entry_bytes: int  # the entry file as shipped (what most records count)
    entry_is_wrapper: bool  # the entry is a self-extracting shim
    decoded_bytes: int  # the entry's code after unwrapping shims (helpers not included)
    raw: str = ""  # the entry as shipped
    inlined: list[str] = field(default_factory=list)  # helpers / exec(open()) targets executed
    native: list[str] = field(default_factory=list)  # native sources / binaries shipped
    shipped: dict[str, int] = field(default_factory=dict)  # every code file of the folder -> bytes
    blobs: dict[str, int] = field(default_factory=dict)  # shipped files the entry reads and execs -> bytes
    blob_lines: dict[str, int] = field(default_factory=dict)  # blob -> line of the exec in the entry

    @property
    def shipped_bytes(self) -> int:
        return sum(self.shipped.values())

    @property
    def running_bytes(self) -> int:
        """The code that runs as shipped: the entry, the files it inlines, and the blobs it execs."""
        return self.entry_bytes + sum(self.shipped.get(p, 0) for p in self.inlined) + sum(self.blobs.values())

    @cached_property
    def wrapped_bytes(self) -> int:
        """The entry's own code as an lzma+base85 wrapper (the shim's own size if it is one)."""
        return self.entry_bytes if self.entry_is_wrapper else lzma_wrapper_bytes(self.raw)


def code_inventory(ctx: AuditContext) -> CodeInventory | None:
    if ctx.entry is None:
        return None

    def build() -> CodeInventory:
        norm = normalization(ctx)
        texts = original_texts(ctx)
        sizes = file_sizes(ctx)
        entry = ctx.entry.path
        raw = texts.get(entry, ctx.entry.text)
        decoded_notes = [n for n in norm.notes if n.kind == "decoded" and n.path == entry] if norm else []
        own_lines = [line for line, (path, _) in zip(norm.text.split("\n"), norm.origins)
                     if path == entry or path.startswith(entry + "#")] if norm else []
        decoded = "\n".join(own_lines) if decoded_notes else raw
        shipped = {p: n for p, n in sizes.items() if p.endswith(CODE_SUFFIXES) and not p.startswith("<log>/")}
        blob_lines = _exec_blobs(ctx, sizes)
        blobs = {p: sizes[p] for p in blob_lines}
        shipped.update(blobs)
        return CodeInventory(
            entry=entry,
            entry_bytes=len(raw.encode("utf-8")),
            entry_is_wrapper=bool(decoded_notes),
            decoded_bytes=len(decoded.encode("utf-8")),
            raw=raw,
            inlined=list(norm.helpers) if norm else [],
            native=sorted(p for p in shipped if p.endswith(NATIVE_SUFFIXES)),
            shipped=shipped,
            blobs=blobs,
            blob_lines=blob_lines,
        )

    return _cached(ctx, "inventory", build)


_READS = {"open", "read_bytes", "read_text", "Path", "fromfile", "load"}


def _exec_blobs(ctx: AuditContext, sizes: dict[str, int]) -> dict[str, int]:
    """{shipped file: line} for the files an `exec`/`eval` in the entry reads its payload from
    (`exec(lzma.decompress(open("code.xz", "rb").read()))`): the loader runs that file's code, so
    the code bytes are the loader plus the blob. Python files the normaliser inlined are not blobs."""
    entry = ctx.entry
    tree = getattr(entry.analysis, "tree", None) if entry is not None else None
    if tree is None:
        return {}
    by_name: dict[str, list[str]] = {}
    for path in sizes:
        if not path.endswith(".py") and not path.startswith("<log>/"):
            by_name.setdefault(path.rsplit("/", 1)[-1], []).append(path)
    out: dict[str, int] = {}
    for call in file_index(entry).of(ast.Call):
        if not (isinstance(call.func, ast.Name) and call.func.id in ("exec", "eval") and call.args):
            continue
        for sub in ast.walk(call.args[0]):
            if isinstance(sub, ast.Call) and _callee(sub) in _READS:
                for text in string_constants(sub):
                    for path in by_name.get(text.rsplit("/", 1)[-1], []):
                        out.setdefault(path, entry.line_map(call.lineno)[1])
    return out


# -- logs -------------------------------------------------------------------------------------


def run_logs(ctx: AuditContext) -> dict[str, RunSummary]:
    """RunSummary of every log that reads like a run (has a score, a time or a size)."""

    def build():
        out = {}
        for name, text in sorted(ctx.logs.items()):
            summary = parse_log(text, source=name)
            if any(v is not None for v in (summary.val_bpb, summary.train_seconds, summary.eval_seconds,
                                            summary.artifact_bytes)):
                out[name] = summary
        return out

    return _cached(ctx, "logs", build)


def log_line(text: str, pattern: re.Pattern) -> tuple[int, str] | None:
    """(1-based line, text) of the first line of `text` matching `pattern`."""
    for i, line in enumerate(text.splitlines(), 1):
        if pattern.search(line):
            return i, line.strip()
    return None


# -- claims -----------------------------------------------------------------------------------

_README_BPB = re.compile(r"val[_ ]bpb[^0-9\n]{0,40}?(\d\.\d{3,})", re.IGNORECASE)
_README_SEEDS = re.compile(r"\b(\d{1,2}|three|five|two|one|four)[- ]seeds?\b", re.IGNORECASE)
_WORD_NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}


@dataclass
class Claims:
    val_bpb: tuple[float, str] | None = None  # (value, where)
    seeds: tuple[int, str] | None = None
    artifact_bytes: tuple[int, str] | None = None
    train_seconds: tuple[float, str] | None = None
    eval_seconds: tuple[float, str] | None = None
    text: str = ""  # README + blurb, for phrase claims


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def claims(ctx: AuditContext) -> Claims:
    def build() -> Claims:
        meta = ctx.submission if isinstance(ctx.submission, dict) else {}
        out = Claims(text="\n".join(str(x) for x in (ctx.readme or "", meta.get("blurb", "")) if x))
        if _number(meta.get("val_bpb")) is not None:
            out.val_bpb = (float(meta["val_bpb"]), "submission.json val_bpb")
        elif ctx.readme and (m := _README_BPB.search(ctx.readme)):
            out.val_bpb = (float(m.group(1)), "README.md")
        seeds = meta.get("seeds")
        results = meta.get("seed_results")
        if isinstance(seeds, list) and seeds:
            out.seeds = (len(seeds), "submission.json seeds")
        elif isinstance(results, dict) and results:
            out.seeds = (len(results), "submission.json seed_results")
        elif ctx.readme and (m := _README_SEEDS.search(ctx.readme)):
            word = m.group(1).lower()
            out.seeds = (int(_WORD_NUMBERS.get(word, word)), "README.md")
        for key in ("artifact_bytes_max", "bytes_total", "artifact_bytes"):
            if _number(meta.get(key)) is not None:
                out.artifact_bytes = (int(meta[key]), f"submission.json {key}")
                break
        if isinstance(results, dict):
            per_seed = [r.get("artifact_bytes") for r in results.values() if isinstance(r, dict)]
            per_seed = [int(v) for v in per_seed if _number(v) is not None]
            if per_seed and (out.artifact_bytes is None or max(per_seed) > out.artifact_bytes[0]):
                out.artifact_bytes = (max(per_seed), "submission.json seed_results.artifact_bytes")
            for key, attr in (("train_time_s", "train_seconds"), ("eval_time_s", "eval_seconds")):
                values = [r.get(key) for r in results.values() if isinstance(r, dict)]
                values = [float(v) for v in values if _number(v) is not None]
                if values:
                    setattr(out, attr, (max(values), f"submission.json seed_results.{key}"))
        for key, attr in (("train_time_s_mean", "train_seconds"), ("eval_time_s_mean", "eval_seconds")):
            if getattr(out, attr) is None and _number(meta.get(key)) is not None:
                setattr(out, attr, (float(meta[key]), f"submission.json {key}"))
        return out

    return _cached(ctx, "claims", build)


# -- code facts -------------------------------------------------------------------------------
#
# The engine's FileAnalysis already visited every node (its parent map); the index below groups
# those nodes by type once, and finds each node's enclosing scopes (defs and loops) with a memo
# over the parent chain, so that no front rule walks the tree again.

_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.For, ast.While, ast.AsyncFor)
_TRAIN_NAME = re.compile(r"^(train_(files|pattern|loader|data|shards?|stream|glob|path|bins?|dataset|iter)"
                         r"|train_data_\w+|args_train_files)$")
_TRAIN_STRING = re.compile(r"fineweb_train|_train_\*|train_\*\.bin")
CALIB_NAME = re.compile(r"hessian|calib|gptq|awq", re.IGNORECASE)


def _callee(call: ast.Call) -> str:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")


def _is_train_node(node: ast.AST) -> bool:
    if isinstance(node, ast.Name):
        return "train" in node.id and bool(_TRAIN_NAME.match(node.id))
    if isinstance(node, ast.Attribute):
        return "train" in node.attr and bool(_TRAIN_NAME.match(node.attr))
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return "train" in node.value and bool(_TRAIN_STRING.search(node.value))
    return False


class FileIndex:
    """Nodes of one file by type, import aliases, and per-scope facts (callees, train-data use)."""

    def __init__(self, src: SourceFile):
        analysis = src.analysis
        self.by_type: dict[type, list[ast.AST]] = {}
        for node in analysis.parents:  # ast.walk order: breadth first, not by line
            self.by_type.setdefault(type(node), []).append(node)
        self._parents = analysis.parents
        self._scopes: dict[int, tuple] = {}
        self.callees: dict[ast.AST, set[str]] = {}  # scope -> names it calls (nested scopes included)
        self.touches_train: set[ast.AST] = set()  # scopes that mention training data
        for call in self.of(ast.Call):
            name = _callee(call)
            if name:
                for scope in self.scopes_of(call):
                    self.callees.setdefault(scope, set()).add(name)
        for node in self.of(ast.Name, ast.Attribute, ast.Constant):
            if _is_train_node(node):
                self.touches_train.update(self.scopes_of(node))
        self.aliases = _aliases_from(self.of(ast.Import, ast.ImportFrom))
        self.loaded_names = {n.id for n in self.of(ast.Name) if isinstance(n.ctx, ast.Load)} | {
            n.attr for n in self.of(ast.Attribute)}

    def of(self, *types: type) -> list[ast.AST]:
        if len(types) == 1:
            return self.by_type.get(types[0], [])
        return [n for t in types for n in self.by_type.get(t, [])]

    def scopes_of(self, node: ast.AST) -> tuple:
        """Enclosing defs and loops of `node`, innermost first (memoised over the parent chain)."""
        parent = self._parents.get(node)
        if parent is None:
            return ()
        key = id(parent)
        cached = self._scopes.get(key)
        if cached is None:
            cached = ((parent,) if isinstance(parent, _SCOPES) else ()) + self.scopes_of(parent)
            self._scopes[key] = cached
        return cached


def file_index(src: SourceFile) -> FileIndex:
    index = getattr(src, "_front_index", None)
    if index is None:
        index = FileIndex(src)
        try:
            src._front_index = index
        except AttributeError:
            pass
    return index


def python_files(ctx: AuditContext) -> Iterator[SourceFile]:
    """The source files with an ast analysis (every file the engine parsed)."""
    for src in ctx.files:
        if getattr(src.analysis, "tree", None) is not None:
            yield src


def line_text(src: SourceFile, line: int) -> str:
    lines = getattr(src, "_front_lines", None)
    if lines is None:
        lines = src.text.splitlines()
        try:
            src._front_lines = lines
        except AttributeError:
            pass
    return lines[line - 1].strip() if 1 <= line <= len(lines) else ""


def dotted_name(node: ast.AST) -> str:
    """`torch.utils.cpp_extension.load` for an attribute chain, `f` for a name, "" otherwise."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _aliases_from(imports) -> dict[str, str]:
    names: dict[str, str] = {}
    for node in imports:
        if isinstance(node, ast.Import):
            for a in node.names:
                names[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif node.module:
            for a in node.names:
                names[a.asname or a.name] = f"{node.module}.{a.name}"
    return names


def import_aliases(src: SourceFile) -> dict[str, str]:
    """Local name -> full dotted name for the imports of a file (any depth)."""
    return file_index(src).aliases


def calls_from_modules(src: SourceFile, modules: tuple[str, ...], builtins: tuple[str, ...] = ()) -> Iterator[tuple[ast.Call, str]]:
    """(call, dotted callee with aliases expanded) for the calls of the file whose callee comes
    from one of `modules` (by import) or is one of the bare names `builtins`; a cheap filter on the
    root name first, so that rules about a few modules do not resolve every call of the file."""
    index = file_index(src)
    roots = {local for local, full in index.aliases.items() if full.split(".")[0] in modules}
    roots.update(m for m in modules if "." not in m)
    for call in index.of(ast.Call):
        root = call.func
        while isinstance(root, ast.Attribute):
            root = root.value
        if isinstance(root, ast.Name) and (root.id in roots or root.id in builtins):
            yield call, resolved_call_name(call, index.aliases)


def resolved_call_name(call: ast.Call, aliases: dict[str, str]) -> str:
    """The dotted callee of `call` with import aliases expanded (`hf.snapshot_download` ->
    `huggingface_hub.snapshot_download`)."""
    name = dotted_name(call.func)
    if not name:
        return ""
    head, _, rest = name.partition(".")
    full = aliases.get(head, head)
    return f"{full}.{rest}" if rest else full


def string_constants(node: ast.AST) -> Iterator[str]:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            yield sub.value


def in_dead_function(src: SourceFile, node: ast.AST) -> bool:
    """True when `node` sits in a function that nothing in the file calls or references."""
    analysis = src.analysis
    used = file_index(src).loaded_names
    fn = analysis.enclosing_function(node)
    if fn is None:
        return False
    while fn is not None:
        if fn.name in used or fn.name.startswith("__"):
            return False
        fn = analysis.enclosing_function(fn)
    return True


# -- training data and the training loop ------------------------------------------------------


@dataclass
class TrainFacts:
    """Which local functions/classes touch training data, calibrate, or contain the training loop."""

    touching: set[str]  # functions/classes whose code (transitively) reads training data
    calibrates: set[str]  # functions that (transitively) collect activations / Hessians
    loops: list[ast.AST]  # training loops: backward() on training data
    training: set[str]  # functions that contain a training loop or call one that does


def touches_train_data(node: ast.AST) -> bool:
    return any(_is_train_node(sub) for sub in ast.walk(node))


def train_facts(src: SourceFile) -> TrainFacts:
    cached = getattr(src, "_front_train", None)
    if cached is not None:
        return cached
    index = file_index(src)
    defs: dict[str, list[ast.AST]] = {}
    for node in index.of(ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef):
        defs.setdefault(node.name, []).append(node)
    callees = {name: set().union(*(index.callees.get(d, set()) for d in nodes)) for name, nodes in defs.items()}
    touching = closure_forward({n for n, nodes in defs.items() if any(d in index.touches_train for d in nodes)}, callees)
    calib_direct = {n for n in defs if "register_forward_hook" in callees[n] or (CALIB_NAME.search(n) and n in touching)}
    calibrates = closure_forward(calib_direct, callees)
    backward_fns = closure_forward({n for n in defs if "backward" in callees[n]}, callees)
    loops = []
    for node in index.of(ast.For, ast.While, ast.AsyncFor):
        called = index.callees.get(node, set())
        has_backward = "backward" in called or bool(called & backward_fns)
        reads_train = node in index.touches_train or bool(called & touching)
        if has_backward and reads_train:
            loops.append(node)
    loop_set = set(loops)
    outermost = [l for l in loops if not any(s in loop_set for s in index.scopes_of(l))]
    direct_training = set()
    for loop in outermost:
        fn = src.analysis.enclosing_function(loop)
        if fn is not None:
            direct_training.add(fn.name)
    training = closure_forward(direct_training, callees)
    facts = TrainFacts(touching=touching, calibrates=calibrates, loops=outermost, training=training)
    try:
        src._front_train = facts
    except AttributeError:
        pass
    return facts


def flat_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements of a body in execution order, entering if/with/try blocks (not loops or defs)."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, (ast.If, ast.With, ast.AsyncWith, ast.Try)):
            for field_name in ("body", "orelse", "finalbody"):
                yield from flat_statements(getattr(stmt, field_name, []) or [])
            for handler in getattr(stmt, "handlers", []) or []:
                yield from flat_statements(handler.body)


# -- score lines of a log ---------------------------------------------------------------------

_SCORE_LINE = re.compile(r"^(?P<label>[A-Za-z_][^\s{}]*(?:\s[^\s{}=:]+)*?)[\s:]+val_loss\s*[:=]\s*(?P<loss>[-+]?\d+(?:\.\d+)?)"
                         r"[,\s]+val_bpb\s*[:=]\s*(?P<bpb>[-+]?\d+(?:\.\d+)?)")
_SIDE_LABEL = re.compile(r"^(diagnostic|pre[-_]?quant|DIAGNOSTIC)|^\d+/\d+$|^step", re.IGNORECASE)


@dataclass
class ScoreLine:
    line: int
    label: str
    bpb: float
    text: str


def score_lines(text: str) -> list[ScoreLine]:
    """Evaluation result lines (`<label> val_loss:<x> val_bpb:<y>`), training-time and diagnostic
    evaluations left out; code that some logs print first is skipped (no `{` placeholders)."""
    out = []
    for i, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if "{" in line or raw[:1].isspace():
            continue
        m = _SCORE_LINE.match(line)
        if m and not _SIDE_LABEL.search(m.group("label")):
            out.append(ScoreLine(i, m.group("label"), float(m.group("bpb")), line))
    return out


def code_strings(ctx: AuditContext) -> list[str]:
    """Every string literal of the audited code, f-string fragments included (for log labels)."""

    def build():
        out = []
        for src in python_files(ctx):
            for node in file_index(src).of(ast.Constant):
                if isinstance(node.value, str) and len(node.value) >= 3:
                    out.append(node.value.strip())
        return out

    return _cached(ctx, "strings", build)


def printed_by_code(ctx: AuditContext, label: str) -> bool:
    """Whether the code can print a log line starting with `label` (a literal or an f-string head)."""
    for text in code_strings(ctx):
        head = text.split()[0] if text.split() else ""
        if head and (label == head or (len(head) >= 6 and label.startswith(head))):
            return True
    return False
