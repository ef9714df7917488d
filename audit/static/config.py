"""The hyperparameters a submission ran with, and whether a config-guarded branch can run under them.

Records set their behaviour through environment variables read in a `Hyperparameters` class
(`ttt_enabled = bool(int(os.environ.get("TTT_ENABLED", "0")))`), and the defaults are often not what
the record used: #1667 defaults `SMEAR_GATE` to 0 but its logs print `smear_gate_enabled: True`.
So a value is resolved with the priority

    logged value (`name: value` / `name=value` in a run log)  >  README run command (`NAME=value`)
    >  the default in the code,

and `resolve(name)` says which source gave it. The logs that count are those of the seeds the
submission reports (submission.json `seeds` / `seed_results`): ablation or older runs shipped next to
them rank after, and a key on which the reported runs print different values is named in
`disagreements`. Source code a log echoes is not config (a log line that is a line of the code), and
a logged `disabled` / `SKIPPED` value reads as off. A function parameter that every call binds by
keyword from one config attribute (`f(alpha=args.ngram_alpha)`) resolves to that attribute's value. `Evaluator` folds a condition expression (an `if`
test) to a constant under that configuration, or None when it cannot; a branch whose test folds to a
false value is unreachable (the #1458 false positive: dead n-gram code behind NGRAM_EVAL_ORDER=0).
"""

from __future__ import annotations

import ast
import keyword
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

# `  name: value` / `name=value` in the logs; the value is one scalar token (never code).
_LOG_PAIR = re.compile(
    r"(?:^|[\s,(])([a-z_][a-z0-9_]*)(?::\s?|=)(True|False|None|[-+]?\d[\w.+-]*|[A-Za-z_][\w./-]*)(?=[\s,)]|$)"
)
# `NAME=value` env assignments in shell commands (README, run.sh).
_ENV_ASSIGN = re.compile(r"(?:^|[\s;`(])([A-Z][A-Z0-9_]*)=(\"[^\"]*\"|'[^']*'|[^\s;`)]+)")
_SHELL_DEFAULT = re.compile(r"\$\{\w+:?-([^}$]*)\}")
_PAIRS_LINE = re.compile(r"(?:[a-z_][a-z0-9_]*(?::\s?|=)[^\s,:=()]+[\s,]*)+")
_KEYWORDS = set(keyword.kwlist) - {"True", "False", "None"}
_SCALAR = re.compile(r"^(True|False|None|[-+]?(\d[\d_]*\.?\d*([eE][-+]?\d+)?|\.\d+([eE][-+]?\d+)?))$")

UNKNOWN = object()  # a value the evaluator cannot fold


@dataclass
class Param:
    """One hyperparameter read from the environment in the code: `attr = conv(os.environ.get(ENV, d))`."""

    attr: str  # the attribute / variable the value is stored in (lower case in records)
    env: str  # the environment variable name
    default: Any  # the default literal (UNKNOWN when not a literal)
    expr: ast.expr | None = None  # the whole right-hand side, folded again under a README env value

    @property
    def conversion(self) -> str | None:
        """'int' or 'float' when the code converts the environment's text with it at once
        (`int(os.environ.get(ENV, d))`, also inside `bool(...)`): a value it cannot parse crashes the run."""
        for node in ast.walk(self.expr) if self.expr is not None else ():
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("int", "float")
                    and node.args and (_is_environ_read(node.args[0]) or (None,))[0] == self.env):
                return node.func.id
        return None


@dataclass
class Config:
    """Resolved hyperparameters: logged values, README/run-script env values, code defaults."""

    logged: dict[str, tuple[Any, str]] = field(default_factory=dict)  # name -> (value, "log:<file>")
    env: dict[str, tuple[str, str]] = field(default_factory=dict)  # ENV -> (raw text, "readme")
    params: dict[str, Param] = field(default_factory=dict)  # attr and ENV (both) -> Param
    disagreements: dict[str, list[tuple[Any, str]]] = field(default_factory=dict)  # key -> (value, log) per log
    log_pairs: dict[str, dict[str, Any]] = field(default_factory=dict)  # log -> its `key: value` pairs
    reported_logs: list[str] = field(default_factory=list)  # the logs of the runs the submission reports
    _evaluator: "Evaluator | None" = None
    _resolving: set = field(default_factory=set)

    # -- reading ---------------------------------------------------------------------------
    @classmethod
    def build(cls, assigns: Iterable[ast.AST], logs: dict[str, str] | None, commands: dict[str, str],
              submission: dict | None = None, calls: Iterable[ast.Call] = (), code: Iterable[str] = ()) -> "Config":
        """From the assignment statements of the code (Index.assigns), the logs and shell texts;
        `submission` names the reported seeds, `calls` bind keyword parameters, `code` is the source
        text a log may echo."""
        calls = list(calls)
        cfg = cls()
        code = list(code)
        for param in _env_params(assigns, _environ_lines(calls, code)):
            cfg.params.setdefault(param.attr, param)
            cfg.params.setdefault(param.env, param)
        echoed = {line.strip() for text in code for line in text.splitlines() if len(line.strip()) >= 3}
        logs = logs or {}
        authoritative, others = authoritative_logs(logs, submission)
        per_log = cfg.log_pairs
        cfg.reported_logs = list(authoritative)
        for name in authoritative + others:
            pairs = per_log.setdefault(name, {})
            for key, raw in _logged_pairs(logs[name], echoed):
                pairs.setdefault(key, _logged_value(raw))
            for key, value in pairs.items():
                cfg.logged.setdefault(key, (value, f"log:{name}"))
        for key in sorted({k for name in authoritative for k in per_log[name]}):
            seen = [(per_log[name][key], name) for name in authoritative if key in per_log[name]]
            if len({repr(v) for v, _ in seen}) > 1 and key in cfg.params and not _progress_key(key):
                cfg.disagreements[key] = seen  # a hyperparameter the code reads, not a progress value
        for name, text in commands.items():
            for env, raw in _ENV_ASSIGN.findall(text or ""):
                value = raw.strip("\"'")
                if (m := _SHELL_DEFAULT.fullmatch(value)) is not None:
                    value = m.group(1)  # `${X:-zstd}`: the value the script gives when X is unset
                elif value.startswith("$"):
                    continue  # `SEED=$SEED`, `${backbone}`: a shell variable, not a value
                cfg.env.setdefault(env, (value, name))
        cfg._bind_keyword_parameters(calls)
        return cfg

    def _bind_keyword_parameters(self, calls: Iterable[ast.Call]) -> None:
        """`f(alpha=args.ngram_alpha)` at every call that passes `alpha`: the callee's parameter
        `alpha` carries the config value of `ngram_alpha` into the callee's guards."""
        bound: dict[str, set[str]] = {}
        for call in calls:
            for kw in call.keywords:
                if kw.arg is None:
                    continue
                value = kw.value
                source = value.attr if isinstance(value, ast.Attribute) else getattr(value, "id", None)
                bound.setdefault(kw.arg, set()).add(source if source and self._is_config_name(source) else "")
        for name, sources in bound.items():
            if len(sources) == 1 and "" not in sources and not self.knows(name):
                (source,) = sources
                param = self.params.get(source)
                if param is None:  # logged only (argparse, a dataclass): no env var to fold through
                    param = Param(attr=source, env=source.upper(), default=UNKNOWN)
                self.params[name] = param

    def _is_config_name(self, name: str) -> bool:
        return name in self.params or name in self.logged

    # -- resolving -------------------------------------------------------------------------
    def resolve(self, name: str) -> tuple[Any, str]:
        """(value, source) of a hyperparameter named by attribute or env var; (UNKNOWN, "") if none."""
        if name in self._resolving:  # `x = int(os.environ.get("X", x))`: no fixed point to find
            return UNKNOWN, ""
        self._resolving.add(name)
        try:
            return self._resolve(name)
        finally:
            self._resolving.discard(name)

    def _resolve(self, name: str) -> tuple[Any, str]:
        param = self.params.get(name) or self.params.get(name.lower()) or self.params.get(name.upper())
        keys = [name, name.lower()] + ([param.attr] if param else [])
        for key in keys:
            if key in self.logged:
                return self.logged[key]
        envs = [name.upper()] + ([param.env] if param else [])
        for env in envs:
            if env in self.env:
                raw, source = self.env[env]
                if param is not None and param.expr is not None:
                    value = Evaluator(self, override=(param.env, raw)).fold(param.expr)
                    if value is not UNKNOWN:
                        return value, source
                return _literal(raw), source
        if param is not None:
            value = param.default
            if param.expr is not None:
                value = Evaluator(self, override=(param.env, None)).fold(param.expr)
            if value is not UNKNOWN:
                return value, "default"
        return UNKNOWN, ""

    def knows(self, name: str) -> bool:
        """True for names the code reads from the environment (only those fold in a condition)."""
        return name in self.params

    def as_strings(self) -> dict[str, str]:
        """Every known hyperparameter as text, for AuditContext.config."""
        out: dict[str, str] = {}
        for name in sorted(set(self.params) | set(self.logged) | set(self.env)):
            value, _ = self.resolve(name)
            if value is not UNKNOWN:
                out[name] = str(value)
        return out

    @property
    def source(self) -> str:
        """The dominant source: the first log read (and the keys its peers disagree on), else the
        README command, else the defaults."""
        for value, source in self.logged.values():
            if self.disagreements:
                keys = ", ".join(sorted(self.disagreements)[:4]) + ("..." if len(self.disagreements) > 4 else "")
                return f"{source}; the reported runs' logs disagree on {keys}"
            return source
        for value, source in self.env.values():
            return source
        return "defaults"

    def fold(self, expr: ast.expr) -> Any:
        if self._evaluator is None:
            self._evaluator = Evaluator(self)
        return self._evaluator.fold(expr)

    def guard(self, expr: ast.expr, names: dict[str, ast.expr] | None = None) -> tuple[Any, list[str]]:
        """The folded value of a condition and the config names (with their sources) it used.

        `names` maps local variables and module constants to the one expression they are bound to
        (`use_slot = getattr(args, "slot_enabled", False)`; minified `_C = False`)."""
        ev = Evaluator(self, names=names)
        value = ev.fold(expr)
        return value, ev.used


def authoritative_logs(logs: dict[str, str], submission: dict | None) -> tuple[list[str], list[str]]:
    """(logs of the runs the submission reports, the other logs), each in name order.

    A log is a reported run's when it prints a score submission.json reports for a seed
    (`seed_results[seed].val_bpb`): that decides between a seed's training log and a re-evaluation
    log of the same seed. Failing that, a log belongs to a reported seed by its path
    (`train_seed42.log`, `seed1337/run.log`) or a `seed: N` line. Without reported seeds, or when no
    log matches, every log counts.
    """
    names = sorted(logs)
    scores = _reported_scores(submission)
    if scores:
        mine = [name for name in names if any(score in logs[name] for score in scores)]
        if mine:
            return mine, [name for name in names if name not in mine]
    reported = reported_seeds(submission)
    if not reported:
        return names, []
    mine = [name for name in names if log_seed(name, logs[name]) in reported]
    if not mine:
        return names, []
    return mine, [name for name in names if name not in mine]


def _reported_scores(submission: dict | None) -> list[str]:
    """The per-seed val_bpb values submission.json reports, as the text a log prints them with
    (at least 6 decimals, so that a near score of another run does not match)."""
    if not isinstance(submission, dict):
        return []
    out = []
    for field_name in ("seed_results", "seeds"):
        rows = submission.get(field_name)
        for row in rows.values() if isinstance(rows, dict) else ():
            value = row.get("val_bpb") if isinstance(row, dict) else None
            if isinstance(value, float):
                text = repr(value)
                if len(text.partition(".")[2]) >= 6:
                    out.append(text[: text.index(".") + 7])
    return out


def reported_seeds(submission: dict | None) -> set[int]:
    """The seeds submission.json reports: `seeds` (a list, or a dict keyed by seed) and the keys of
    `seed_results`."""
    if not isinstance(submission, dict):
        return set()
    out: set[int] = set()
    for field_name in ("seeds", "seed_results"):
        value = submission.get(field_name)
        items = value if isinstance(value, list) else list(value) if isinstance(value, dict) else []
        for item in items:
            digits = re.search(r"\d+", str(item))
            if digits and not isinstance(item, bool):
                out.add(int(digits.group()))
    return out


_SEED_IN_NAME = re.compile(r"seed[_-]?(\d+)", re.IGNORECASE)
_SEED_IN_TEXT = re.compile(r"^\s*seed\s*[:=]\s*(\d+)\s*$", re.MULTILINE)


def log_seed(name: str, text: str) -> int | None:
    """The seed a run log belongs to: from its file name, else from its `seed: N` line."""
    m = _SEED_IN_NAME.search(name.rsplit("/", 1)[-1]) or _SEED_IN_NAME.search(name) or _SEED_IN_TEXT.search(
        text[:200_000])
    return int(m.group(1)) if m else None


# values that change within a run (progress counters, timings, scores) are not configuration
_PROGRESS = re.compile(r"^(seed|run_id|\w*_id|step|steps|step_avg|train_time|train_loss|val_loss|val_bpb|time|elapsed|lr|"
                       r"tokens|bytes|\w*_(ms|s|time|loss|bpb|bytes|tokens|count|steps|avg))$")


def _progress_key(key: str) -> bool:
    return bool(_PROGRESS.match(key))


def _logged_pairs(text: str, echoed: set[str] = frozenset()):
    """(key, raw value) pairs of a run log: lines made only of `key: value` / `key=value` pairs.

    Many logs print the source code first; a code line (`if h.etlb_enabled:del model`) is never
    made only of pairs, and a line that is a line of the submission's code (`    ttt_enabled=False,`
    from an echoed call) is skipped.
    """
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or len(stripped) > 400 or (":" not in stripped and "=" not in stripped):
            continue
        if not _PAIRS_LINE.fullmatch(stripped) or stripped in echoed:
            continue
        for key, raw in _LOG_PAIR.findall(stripped):
            if raw not in _KEYWORDS:
                yield key, raw


_NON_EVENTS = {"disabled", "skipped", "off"}  # `ngram_eval: SKIPPED`: the channel did not run


def _logged_value(raw: str) -> Any:
    """A logged value; `disabled` / `SKIPPED` / `off` read as False (a non-event, not a truthy word)."""
    return False if raw.strip().lower() in _NON_EVENTS else _literal(raw)


_NAMED = {"True": True, "False": False, "None": None}


def _literal(raw: str) -> Any:
    """A logged / shell value as the Python scalar it spells, else the text itself."""
    text = raw.strip()
    if text in _NAMED:
        return _NAMED[text]
    if _SCALAR.match(text):
        for convert in (int, float):
            try:
                return convert(text)
            except ValueError:
                continue
    return raw


def _is_environ_read(call: ast.AST) -> tuple[str, ast.expr | None] | None:
    """('ENV', default expr) for os.environ.get("ENV", d) / os.getenv("ENV", d) / os.environ["ENV"]."""
    if isinstance(call, ast.Call) and call.args and isinstance(call.args[0], ast.Constant):
        func = call.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        is_get = name == "get" and isinstance(func, ast.Attribute) and _is_environ(func.value)
        if (is_get or name == "getenv") and isinstance(call.args[0].value, str):
            default = call.args[1] if len(call.args) > 1 else None
            return call.args[0].value, default
    if isinstance(call, ast.Subscript) and _is_environ(call.value):
        if isinstance(call.slice, ast.Constant) and isinstance(call.slice.value, str):
            return call.slice.value, None
    return None


def _is_environ(node: ast.AST) -> bool:
    """`os.environ` / `environ` (imported from os)."""
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
        isinstance(node, ast.Name) and node.id == "environ")


def _environ_lines(calls: list[ast.Call], code: list[str]) -> set[int] | None:
    """Lines that may read the environment: the lines of `os.environ.get` / `os.getenv` calls and of
    `environ[...]` subscripts in the text (None when no call list was given: every line may)."""
    if not calls and not code:
        return None
    lines = {call.lineno for call in calls if _is_environ_read(call)}
    for text in code:
        if "environ[" in text:
            lines.update(i for i, line in enumerate(text.splitlines(), 1) if "environ[" in line)
    return lines


def _env_params(assigns: Iterable[ast.AST], candidate_lines: set[int] | None = None):
    """Every `target = <expr reading one env var>` among the assignments (class bodies, functions);
    with `candidate_lines`, only assignments spanning one of those lines are walked."""
    for node in assigns:
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            if candidate_lines is not None and not any(
                    line in candidate_lines for line in range(node.lineno, (node.end_lineno or node.lineno) + 1)):
                continue
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            reads = [r for r in map(_is_environ_read, ast.walk(node.value)) if r]
            if len(reads) != 1:
                continue
            env, default = reads[0]
            for target in targets:
                attr = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", None)
                if attr:
                    lit = UNKNOWN
                    if isinstance(default, ast.Constant):
                        lit = default.value
                    elif default is not None:
                        try:
                            lit = ast.literal_eval(default)
                        except ValueError:
                            lit = UNKNOWN
                    yield Param(attr=attr, env=env, default=lit, expr=node.value)


class Evaluator:
    """Folds an expression to a constant under a Config; UNKNOWN when any part is not known."""

    _CALLS = {"int": int, "float": float, "bool": bool, "str": str, "abs": abs, "min": min, "max": max}

    def __init__(self, config: Config, override: tuple[str, str | None] | None = None,
                 names: dict[str, ast.expr] | None = None):
        self.config = config
        self.override = override  # (ENV, raw or None=use default) when folding a Param's own expr
        self.names = names or {}  # local / module names bound once, folded through their value
        self.used: list[str] = []
        self._depth = 0

    def fold(self, node: ast.AST) -> Any:
        try:
            return self._fold(node)
        except Exception:  # noqa: BLE001 - any failure to fold (TypeError, ZeroDivision...) = unknown
            return UNKNOWN

    def _name(self, name: str) -> Any:
        if not self.config.knows(name):
            return UNKNOWN  # a local or a logged progress value (`step`), not a hyperparameter
        value, source = self.config.resolve(name)
        if value is not UNKNOWN:
            self.used.append(f"{name}={value!r} ({source})")
        return value

    def _fold(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        read = _is_environ_read(node)
        if read is not None:
            env, default = read
            if self.override and env == self.override[0]:
                raw = self.override[1]
                if raw is not None:
                    return raw
            elif env in self.config.env:
                self.used.append(f"{env}={self.config.env[env][0]!r} ({self.config.env[env][1]})")
                return self.config.env[env][0]
            elif env in self.config.params and self.override is None:
                return self._name(env)
            value = self._fold(default) if default is not None else None
            if self.override is None:
                self.used.append(f"{env}={value!r} (default)")
            return value
        if isinstance(node, ast.Name):
            if node.id in self.names and not self.config.knows(node.id) and self._depth < 8:
                self._depth += 1
                try:
                    return self._fold(self.names[node.id])
                finally:
                    self._depth -= 1
            return self._name(node.id)
        if isinstance(node, ast.Attribute):
            return self._name(node.attr)
        if isinstance(node, ast.UnaryOp):
            value = self._fold(node.operand)
            if value is UNKNOWN:
                return UNKNOWN
            return {ast.Not: lambda v: not v, ast.USub: lambda v: -v, ast.UAdd: lambda v: +v}[type(node.op)](value)
        if isinstance(node, ast.BoolOp):
            values = [self._fold(v) for v in node.values]
            if isinstance(node.op, ast.And):
                if any(v is not UNKNOWN and not v for v in values):
                    return False
                return UNKNOWN if UNKNOWN in values else values[-1]
            if any(v is not UNKNOWN and v for v in values):
                return True
            return UNKNOWN if UNKNOWN in values else values[-1]
        if isinstance(node, ast.Compare):
            left = self._fold(node.left)
            for op, comp in zip(node.ops, node.comparators):
                right = self._fold(comp)
                if left is UNKNOWN or right is UNKNOWN:
                    return UNKNOWN
                if not _compare(op, left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.BinOp):
            a, b = self._fold(node.left), self._fold(node.right)
            if a is UNKNOWN or b is UNKNOWN:
                return UNKNOWN
            return _BINOPS[type(node.op)](a, b)
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            values = [self._fold(e) for e in node.elts]
            return UNKNOWN if UNKNOWN in values else tuple(values)
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in ("getattr", "hasattr") and len(node.args) >= 2:
                attr = node.args[1]
                if isinstance(attr, ast.Constant) and isinstance(attr.value, str):
                    if self.config.knows(attr.value):
                        value = self._name(attr.value)
                        return value if func.id == "getattr" else True
                    if len(node.args) == 3 and func.id == "getattr":
                        value = self._fold(node.args[2])
                        if value is not UNKNOWN:
                            self.used.append(f"{attr.value} unset (getattr default {value!r})")
                        return value
                    if func.id == "hasattr":
                        return UNKNOWN
            if isinstance(func, ast.Name) and func.id in self._CALLS and not node.keywords:
                args = [self._fold(a) for a in node.args]
                if UNKNOWN in args:
                    return UNKNOWN
                if func.id == "bool" and args and isinstance(args[0], str):
                    return _truthy_text(args[0])
                return self._CALLS[func.id](*args)
            if isinstance(func, ast.Attribute) and func.attr in ("lower", "upper", "strip") and not node.args:
                value = self._fold(func.value)
                return UNKNOWN if not isinstance(value, str) else getattr(value, func.attr)()
        return UNKNOWN


def _truthy_text(text: str) -> bool:
    return text.strip().lower() not in ("", "0", "false", "no", "off", "none")


def _compare(op: ast.cmpop, a: Any, b: Any) -> bool:
    if isinstance(op, (ast.In, ast.NotIn)):
        result = a in b
        return result if isinstance(op, ast.In) else not result
    return {
        ast.Eq: lambda: a == b,
        ast.NotEq: lambda: a != b,
        ast.Lt: lambda: a < b,
        ast.LtE: lambda: a <= b,
        ast.Gt: lambda: a > b,
        ast.GtE: lambda: a >= b,
        ast.Is: lambda: a is b,
        ast.IsNot: lambda: a is not b,
    }[type(op)]()


_BINOPS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.FloorDiv: lambda a, b: a // b,
    ast.Mod: lambda a, b: a % b,
}
