"""Which data a submission trained and evaluated on, read from its logs, commands and manifests.

The code rarely shows it: #44 linked the validation shards onto the training paths with the code
unchanged, and a CaseOps split prepared locally with the script's default of 10,000 validation
documents leaves the other 40,000 canonical validation documents in the training shards. So the
facts come from:

* the logs of the reported runs (config.authoritative_logs): `vocab_size`, the tokenizer and data
  paths (a case-encoding tokenizer), `val_tokens` (or `val_loader:... tokens:N`), logged byte totals,
  `train_shards`, the training file pattern;
* the shell commands of README.md and shipped scripts: `ln -s` / `cp` / `mv` / `rsync` of
  `fineweb_val_*` onto a training path, and prep commands that set the number of validation
  documents (`--val-docs 10000`, `VAL_DOCS=10000`);
* shipped manifests (JSON) that record the number of validation documents.

A script's default alone is never evidence: records that kept the same default evaluated the
canonical data. The canonical figures are those of shared/spec/rules.md.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field

from audit.static.bytes_provenance import mentions_case_encoding
from audit.static.config import Config, authoritative_logs
from audit.static.rule import AuditContext

CANONICAL_VAL_DOCS = 50_000
# (vocabulary size, case-encoded) -> val_tokens as the records log them
CANONICAL_VAL_TOKENS = {(1024, False): 62_021_632, (8192, False): 40_540_160, (8192, True): 47_851_520}
CANONICAL_VAL_BYTES = {False: 151_073_604, True: 151_074_309}  # decoded text / CaseOps raw-byte sidecar
# a count is truncated to a multiple of the sequence length: at most this share below canonical
TRUNCATION = 0.001

_VAL_LOADER_TOKENS = re.compile(r"^val_loader:.*\btokens:(\d+)\s*$", re.MULTILINE)
# a line reporting the scored token and byte counts (not code: no `{`)
_DENOMINATOR_LINE = re.compile(r"^[^{}\n]*\btokens\s*[:=]\s*(\d{6,})\b[^{}\n]*\bbytes\s*[:=]\s*(\d{7,})\b[^{}\n]*$",
                               re.MULTILINE)
_TRAIN_FILES = re.compile(r"^[ \t]*(train_files|train_pattern|train_glob)[ \t]*[:=][ \t]*(\S+)[ \t]*$", re.MULTILINE)
_BYTE_TOTAL_KEYS = ("val_bytes", "val_byte_count", "total_val_bytes", "val_bytes_total", "byte_total")
_VAL_DOCS_FLAG = re.compile(r"^--?(num[-_])?val[-_]docs?(=(\d+))?$", re.IGNORECASE)
_VAL_DOCS_ENV = re.compile(r"\b(?:NUM_)?VAL_DOCS=(\d+)\b")
_VAL_DOCS_KEY = re.compile(r"(num_)?val(idation)?_docs?(_count)?")  # a manifest's validation documents
_VAL_TOKENS_KEY = re.compile(r"(\w+_)?val(idation)?_tokens")  # a manifest's validation tokens
_COPY_COMMANDS = {"ln", "cp", "mv", "rsync"}
_VAL_SHARD = re.compile(r"fineweb_val|val_\*|_val_")
_TRAIN_PATH = re.compile(r"train")


@dataclass
class LoggedFact:
    value: object
    log: str  # the log file it was read from
    line: int


@dataclass
class DataFacts:
    vocab_size: LoggedFact | None = None
    case_encoded: bool = False
    val_tokens: list[LoggedFact] = field(default_factory=list)  # one per reported run that logs it
    val_bytes: list[LoggedFact] = field(default_factory=list)
    train_patterns: list[LoggedFact] = field(default_factory=list)

    @property
    def canonical_tokens(self) -> int | None:
        if self.vocab_size is None or not isinstance(self.vocab_size.value, int):
            return None
        return CANONICAL_VAL_TOKENS.get((self.vocab_size.value, self.case_encoded))


def _line_of(text: str, needle: str) -> int:
    at = text.find(needle)
    return text.count("\n", 0, at) + 1 if at >= 0 else 0


def data_facts(ctx: AuditContext) -> DataFacts:
    cache = ctx.__dict__.setdefault("_data_facts", {})
    if "facts" in cache:
        return cache["facts"]
    facts = DataFacts()
    config = getattr(ctx, "hyper", None)
    if isinstance(config, Config):
        names, log_pairs = config.reported_logs, config.log_pairs
    else:  # a context built without the engine's resolver: no logged pairs to read
        names, log_pairs = authoritative_logs(ctx.logs, ctx.submission)[0], {}
    facts.case_encoded = any(mentions_case_encoding(t) for t in [f.text for f in ctx.files] + list(ctx.other_files))
    for name in names:
        text = ctx.logs[name]
        pairs = log_pairs.get(name, {})
        if facts.vocab_size is None and isinstance(pairs.get("vocab_size"), int):
            facts.vocab_size = LoggedFact(pairs["vocab_size"], name, _line_of(text, "vocab_size"))
        if mentions_case_encoding(text[:200_000]):
            facts.case_encoded = True
        tokens = pairs.get("val_tokens")
        loader = _VAL_LOADER_TOKENS.search(text) if "val_loader:" in text else None
        if isinstance(tokens, int):
            facts.val_tokens.append(LoggedFact(tokens, name, _line_of(text, f"val_tokens: {tokens}")
                                               or _line_of(text, f"val_tokens:{tokens}")))
        elif loader:
            facts.val_tokens.append(LoggedFact(int(loader.group(1)), name, _line_of(text, loader.group(0))))
        for key in _BYTE_TOTAL_KEYS:
            if isinstance(pairs.get(key), int):
                facts.val_bytes.append(LoggedFact(pairs[key], name, _line_of(text, key)))
                break
        else:
            report = _DENOMINATOR_LINE.search(text) if "bytes=" in text or "bytes:" in text else None
            if report:  # `cond_ppm tokens=47851520 bytes=164594398`: a scorer reporting its denominator
                facts.val_bytes.append(LoggedFact(int(report.group(2)), name, text.count("\n", 0, report.start()) + 1))
        for m in _TRAIN_FILES.finditer(text) if "train_" in text else ():
            facts.train_patterns.append(LoggedFact(m.group(2), name, text.count("\n", 0, m.start()) + 1))
    cache["facts"] = facts
    return facts


# -- shell commands and manifests ------------------------------------------------------------


@dataclass
class Command:
    path: str  # README.md or the script
    line: int
    text: str


def shell_texts(ctx: AuditContext) -> dict[str, str]:
    """README.md and the shipped shell scripts (the texts whose commands ran)."""
    out = {"README.md": ctx.readme} if ctx.readme else {}
    out.update(getattr(ctx, "commands", {}) or {})
    return out


def _commands(text: str):
    """(line, argv) of each simple command of a shell text (README lines that read as commands)."""
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip().removeprefix("$ ").strip()
        if not line or line.startswith(("#", "//", "|", ">", "*", "-")) and not line.startswith("--"):
            continue
        for part in re.split(r"&&|\|\||;|\bdo\b|\bthen\b", line):
            try:
                argv = shlex.split(part, comments=True)
            except ValueError:
                continue
            while argv and (re.match(r"^[A-Z_][A-Z0-9_]*=", argv[0]) or argv[0] in ("sudo", "env", "time")):
                argv = argv[1:]
            if argv:
                yield number, argv


def val_copied_to_train(ctx: AuditContext) -> list[Command]:
    """`ln -s` / `cp` / `mv` / `rsync` whose sources are validation shards and target a training path
    (the source may be a loop variable over `fineweb_val_*` named a few lines above)."""
    out = []
    for path, text in shell_texts(ctx).items():
        lines = text.splitlines()
        for number, argv in _commands(text):
            if argv[0].rsplit("/", 1)[-1] not in _COPY_COMMANDS:
                continue
            operands = [a for a in argv[1:] if not a.startswith("-")]
            if len(operands) < 2 or not _TRAIN_PATH.search(operands[-1]):
                continue
            window = "\n".join(lines[max(0, number - 4):number])
            sources = operands[:-1]
            from_val = any(_VAL_SHARD.search(s) for s in sources) or (
                any(s.startswith("$") for s in sources) and re.search(r"\bfor\b[^\n]*fineweb_val", window))
            if from_val:
                out.append(Command(path, number, lines[number - 1].strip()))
    return out


def prepared_val_docs(ctx: AuditContext) -> list[tuple[int, Command]]:
    """(validation documents, where) set by a prep command that ran or recorded in a shipped manifest."""
    out = []
    for path, text in shell_texts(ctx).items():
        lines = text.splitlines()
        for number, argv in _commands(text):
            for i, arg in enumerate(argv):
                m = _VAL_DOCS_FLAG.match(arg)
                value = m.group(3) if m and m.group(3) else argv[i + 1] if m and i + 1 < len(argv) else None
                if value and value.isdigit():
                    out.append((int(value), Command(path, number, lines[number - 1].strip())))
        for m in _VAL_DOCS_ENV.finditer(text):
            number = text.count("\n", 0, m.start()) + 1
            out.append((int(m.group(1)), Command(path, number, lines[number - 1].strip())))
    out.extend(_manifest_counts(ctx, _VAL_DOCS_KEY))
    return out


def manifest_val_tokens(ctx: AuditContext) -> list[tuple[int, Command]]:
    """(validation tokens, where) recorded by shipped manifests of the data the run trained on
    (`"exact_val_tokens": 9662502`): the validation part of the split its training shards came from."""
    return _manifest_counts(ctx, _VAL_TOKENS_KEY)


def _manifest_counts(ctx: AuditContext, key_pattern: re.Pattern) -> list[tuple[int, Command]]:
    """(count, where) for every integer of a shipped JSON manifest under a key matching `key_pattern`."""
    out = []
    for path, text in _manifests(ctx).items():
        try:
            meta = json.loads(text)
        except json.JSONDecodeError:
            continue
        for key, value in _walk_json(meta):
            if key_pattern.fullmatch(key) and isinstance(value, int) and not isinstance(value, bool):
                out.append((value, Command(path, _line_of(text, f'"{key}"'), f'"{key}": {value}')))
    return out


def _manifests(ctx: AuditContext) -> dict[str, str]:
    return dict(getattr(ctx, "manifests", {}) or {})


def _walk_json(value, depth: int = 0):
    if depth > 4:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key), item
            yield from _walk_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value[:100]:
            yield from _walk_json(item, depth + 1)
