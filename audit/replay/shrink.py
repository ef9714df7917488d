"""Toy sizes for a replay: the submission's own hyperparameters, read statically, made small through the
environment, with every evaluation-path flag kept as its logs ran it.

The configuration comes from audit.static.config (the code's `os.environ.get(NAME, default)` reads,
the run logs, the README/run-script commands); the submission is never imported. Then:

* sizes it reads from the environment are lowered to toy values (never raised): width (MODEL_DIM
  with NUM_HEADS/NUM_KV_HEADS: the GQA ratio kept, head_dim even and at least ROPE_DIMS), other
  *_DIM widths, MLP_HIDDEN (in proportion: MLP_MULT is kept, code elsewhere may fix the
  multiple), LoRA ranks, sequence lengths and strides, batch tokens and
  sequences, ITERATIONS (and *_START_STEP phase switches inside them), warm-up, the wallclock
  cap, TTT chunks, epochs (two at most, so that a multi-epoch mechanism stays) and prefix
  documents, calibration batches, val token limits. The
  layer count is left alone: layer-index settings (LOOP_START, XSA_LAST_N, VE_LAYERS) depend on it;
* a size written as a literal in the Hyperparameters class or at module level cannot be set: far
  above its toy value it gives an RP090 note (the replay runs it as written);
* every other value the logs (or the README command) set and the code reads from the environment
  is set to that value, so the replay runs the configuration that produced the reported score.
  Logs of eval-only reruns (a `*_ONLY` flag on) describe a rerun, not the main run: they are left
  out, and no `*_ONLY` flag is ever set. Where neither a log nor a run command sets anything, the
  replay runs the code's defaults, and an RP092 note names the flags those defaults leave off (the
  reported score may come from a path they select).

It also names the data the run needs: the vocabulary (VOCAB_SIZE, else the default data or
tokenizer path), whether a CaseOps flag is on, and whether the tokens are raw UTF-8 bytes (a
vocabulary of 256, or a `fineweb10B_bytes` data path).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from audit.finding import Finding
from audit.replay.invariants import make_finding
from audit.static.config import UNKNOWN, Config, Param

SEQ = 128
TOY_WIDTH = 64
MIN_HEAD_DIM = 16
GRAD_ACCUM_MAX = 8  # the records split a batch into up to 8 // world_size micro-batches
BATCH_SEQS = 4
ITERATIONS = 3
WALLCLOCK_S = 30  # virtual seconds (the replay's clocks tick 1 ms per read)
CHUNK_TOKENS = 2048  # the synthetic val set (4-6k tokens) still spans several chunks
CHUNK_SIZE = 64
EPOCHS = 2
DOCS = 8
CALIBRATION = 2
LORA_RANK = 4
AUX_DIM = 32
VAL_TOKENS = 8192
HARD_CODED_SLACK = 4  # a literal size up to this multiple of its toy value still replays in time

# at the start of a line: a log that prints its source shows `log("TTT_EVAL_ONLY=1 ...")` in code
_EVAL_ONLY_FLAG = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_]*_ONLY)\s*[:=]\s*(1|true|yes|on)\b", re.IGNORECASE | re.MULTILINE)
_VOCAB_IN_PATH = re.compile(r"fineweb10B_sp(\d+)|fineweb_(\d+)_bpe")
_BYTES_DATASET = re.compile(r"fineweb10B_bytes|_bytes/?$")
BYTE_VOCAB = 256
# names whose logged value belongs to the machine or the run, not to the configuration
_RUNTIME = {"SEED", "RUN_ID", "RANK", "LOCAL_RANK", "WORLD_SIZE", "VOCAB_SIZE", "MASTER_ADDR", "MASTER_PORT"}
_RUNTIME_PART = re.compile(r"PATH|DIR|FILE|PATTERN|OUTPUT")


def _cap(target: int) -> Callable[[Any, dict], Any]:
    return lambda value, sizes: min(value, target)


# (env name pattern, new value from (value, sizes)); the first match decides
SIZE_RULES: list[tuple[re.Pattern, Callable[[Any, dict], Any]]] = [
    (re.compile(r"(^|_)SEQ_LEN$"), lambda v, s: min(v, SEQ) if v > 0 else v),
    (re.compile(r"(^|_)STRIDE$"), lambda v, s: min(v, SEQ // 2) if v > 0 else v),
    # four sequences per micro-batch: code that cuts the batch further (calibration at a quarter of
    # it) still gets whole sequences
    (re.compile(r"^(TRAIN_)?BATCH_TOKENS$"), _cap(SEQ * GRAD_ACCUM_MAX * BATCH_SEQS)),
    (re.compile(r"^VAL_BATCH_(SIZE|TOKENS)$"), _cap(SEQ * GRAD_ACCUM_MAX * BATCH_SEQS)),
    (re.compile(r"_BATCH_SEQS$|^(TTT|EVAL|GPTQ)_BATCH_SIZE$|^SW_EVAL_BATCH$"), _cap(BATCH_SEQS)),
    (re.compile(r"^ITERATIONS$"), _cap(ITERATIONS)),
    # a training phase the full run reaches (depth recurrence from step 3000) starts in the toy run too
    (re.compile(r"_START_STEP$"), lambda v, s: min(v, ITERATIONS - 1) if v > 0 else v),
    (re.compile(r"^WARMUP_STEPS$"), _cap(0)),
    (re.compile(r"^MAX_WALLCLOCK_SECONDS$"), lambda v, s: min(v, WALLCLOCK_S) if v > 0 else WALLCLOCK_S),
    (re.compile(r"_CHUNK_TOKENS$"), _cap(CHUNK_TOKENS)),
    (re.compile(r"_CHUNK_SIZE$"), _cap(CHUNK_SIZE)),
    (re.compile(r"(^|_)EPOCHS$"), _cap(EPOCHS)),
    (re.compile(r"_PREFIX_DOCS$"), _cap(DOCS)),
    (re.compile(r"CALIB(RATION)?_(BATCHES|SAMPLES)$"), _cap(CALIBRATION)),
    (re.compile(r"^(MAX_)?VAL_(MAX_)?TOKENS(_LIMIT)?$"), lambda v, s: min(v, VAL_TOKENS) if v > 0 else v),
    (re.compile(r".+_RANK$"), lambda v, s: min(v, LORA_RANK) if v > 0 else v),
    # the MLP keeps its multiple of the width: code elsewhere may fix it (a Hessian model built with
    # "always MLP 4x" must load the trained weights), and at toy width it costs little
    (re.compile(r"^MLP_HIDDEN$"), lambda v, s: max(1, round(v * s["MODEL_DIM"] / s["MODEL_DIM_WAS"]))
     if v > 0 and s.get("MODEL_DIM_WAS") else v),
    # an embedding as wide as the model follows the model's new width
    (re.compile(r"^EMBEDDING_DIM$"), lambda v, s: s["MODEL_DIM"] if v == s.get("MODEL_DIM_WAS") else min(v, AUX_DIM)),
    (re.compile(r".+_DIM$"), lambda v, s: min(v, AUX_DIM) if v > 0 else v),
]
WIDTH_NAMES = ("MODEL_DIM", "NUM_HEADS", "NUM_KV_HEADS")


@dataclass
class ShrinkPlan:
    """What the replay sets: the environment, and what it says about it."""

    env: dict[str, str] = field(default_factory=dict)
    shrunk: dict[str, str] = field(default_factory=dict)  # NAME -> "old->new" (or "V (hard-coded)")
    kept: dict[str, str] = field(default_factory=dict)  # NAME -> value set from the logs / README
    findings: list[Finding] = field(default_factory=list)
    vocab_size: int | None = None
    caseops: bool = False
    byte_level: bool = False  # tokens are UTF-8 bytes (vocabulary 256, no tokenizer)
    ignored_logs: list[str] = field(default_factory=list)


def eval_only_logs(logs: dict[str, str]) -> list[str]:
    """The logs of eval-only reruns: a `*_ONLY` flag logged on (`TTT_EVAL_ONLY=1`, `ttt_only: True`)."""
    return sorted(name for name, text in logs.items() if _EVAL_ONLY_FLAG.search(text))


def _env_text(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


def _like(new: float, old: int | float) -> int | float:
    """`new` in the type the code's value has (an int stays an int: `int(os.environ[...])`)."""
    return int(new) if isinstance(old, int) else float(new)


def toy_width(heads: int | None, kv_heads: int | None, rope_dims: int | None, fixed: set[str]) -> dict[str, int]:
    """MODEL_DIM, NUM_HEADS, NUM_KV_HEADS at toy size: the GQA ratio kept, head_dim even, >= MIN_HEAD_DIM
    and >= ROPE_DIMS; a count the code fixes (in `fixed`) stays as it is."""
    heads = heads or 1
    kv_heads = kv_heads or heads
    ratio = heads // kv_heads if heads % kv_heads == 0 else 1
    new_heads = heads if "NUM_HEADS" in fixed else min(heads, max(2, ratio))
    new_kv = kv_heads if "NUM_KV_HEADS" in fixed else max(1, new_heads // ratio)
    head_dim = max(MIN_HEAD_DIM, rope_dims or 0, TOY_WIDTH // new_heads)
    head_dim += head_dim % 2
    return {"MODEL_DIM": new_heads * head_dim, "NUM_HEADS": new_heads, "NUM_KV_HEADS": new_kv}


def _hard_coded_toy(name: str, literal: int | float) -> int | float | None:
    """The toy value of a size the code fixes (None: not a size, or a count that costs nothing)."""
    if name == "MODEL_DIM":
        return TOY_WIDTH
    rule = None if name in WIDTH_NAMES or literal <= 0 else _rule_for(name)
    return None if rule is None else rule(literal, {"MODEL_DIM": TOY_WIDTH})


def _compatible(value: Any, param: Param, code_names: frozenset = frozenset()) -> bool:
    """Whether a logged value can be what the code read: a number where the default is one or where the
    code converts the text with int()/float() (a log that prints the source shows `model_dim: int,` in a
    signature, and a status line `ngram_cache:enabled` is no setting), and never a name of the code
    itself (`eval_seq_len=sw_seq_len,` in a printed call, `args.ve_layers`)."""
    if isinstance(value, str) and value in code_names:
        return False
    if param.conversion is not None and isinstance(value, str) and not _literal_number(value):
        return False
    default = param.default
    numeric_default = _number(default) is not None or (isinstance(default, str) and _literal_number(default))
    return not numeric_default or isinstance(value, (bool, int, float))


def _code_names(tree: ast.Module) -> frozenset:
    """Every variable and dotted attribute name the code uses (`sw_seq_len`, `args.ve_layers`)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            try:
                names.add(ast.unparse(node))
            except Exception:  # noqa: BLE001 - an odd node is just not a name
                pass
    return frozenset(names)


def _literal_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _resolve(configs: list[Config], param: Param, code_names: frozenset = frozenset()) -> tuple[Any, str]:
    """(value, source) of a parameter from the first of `configs` (logs + README, README, neither) that
    gives one the code could have read (`0.04**.` from a Markdown README is none)."""
    for config in configs:
        value, source = config.resolve(param.env)
        if source in ("", "default") or _compatible(value, param, code_names):
            return value, source
    return param.default, "default"


def _params_by_env(config: Config) -> dict[str, Param]:
    return {p.env: p for p in config.params.values()}


def _hard_coded_sizes(tree: ast.Module) -> dict[str, tuple[int, int]]:
    """UPPER name -> (literal, line) of sizes assigned a number literal at module or class level."""
    out: dict[str, tuple[int, int]] = {}
    bodies = [tree.body] + [n.body for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    for body in bodies:
        for node in body:
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Constant):
                value = _number(node.value.value)
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name) and value is not None:
                        out.setdefault(target.id.upper(), (value, node.lineno))
    return out


def _rule_for(name: str) -> Callable[[Any, dict], Any] | None:
    return next((rule for pattern, rule in SIZE_RULES if pattern.search(name)), None)


def _vocab(values: dict[str, tuple[Any, str]], params: dict[str, Param], text: str) -> int | None:
    value = values.get("VOCAB_SIZE", (None, ""))[0]
    if _number(value):
        return int(value)
    for name in ("DATA_PATH", "TOKENIZER_PATH"):
        default = params.get(name)
        if default is not None and isinstance(default.default, str) and (m := _VOCAB_IN_PATH.search(default.default)):
            return int(m.group(1) or m.group(2))
    m = _VOCAB_IN_PATH.search(text)
    return int(m.group(1) or m.group(2)) if m else None


def plan_shrink(folder: str | Path) -> ShrinkPlan:
    """The toy-size environment of the submission in `folder`, read statically (GolfError for an
    unreadable folder; an empty plan for code this Python cannot parse: the boot module reports it)."""
    from audit.static.analysis import parse_python
    from audit.submission import load_submission, normalize_entry

    sub = load_submission(Path(folder))
    normalized = normalize_entry(sub)
    try:
        tree = normalized.tree or parse_python(normalized.text, sub.entry)
    except SyntaxError:
        return ShrinkPlan()
    plan = ShrinkPlan(ignored_logs=eval_only_logs(sub.logs))
    logs = {name: text for name, text in sub.logs.items() if name not in plan.ignored_logs}
    assigns = [n for n in ast.walk(tree) if isinstance(n, (ast.Assign, ast.AnnAssign))]
    commands = {"README.md": sub.readme or "", **sub.commands}
    configs = [Config.build(assigns, logs, commands), Config.build(assigns, {}, commands), Config.build(assigns, {}, {})]
    config = configs[0]
    params = _params_by_env(config)
    code_names = _code_names(tree)
    values = {env: _resolve(configs, params[env], code_names) for env in params}
    hard = {name: lit for name, lit in _hard_coded_sizes(tree).items() if name not in params}

    _shrink_sizes(plan, values, hard)
    _note_hard_coded(plan, hard, normalized.line_map)
    _keep_logged(plan, values, params)
    if not any(source not in ("", "default") for _, source in values.values()):
        _note_defaults_only(plan, params, normalized.line_map)
    plan.vocab_size = _vocab(values, params, normalized.text)
    data_default = params["DATA_PATH"].default if "DATA_PATH" in params else None
    plan.byte_level = plan.vocab_size == BYTE_VOCAB or (
        isinstance(data_default, str) and _BYTES_DATASET.search(data_default) is not None)
    if plan.byte_level:
        plan.vocab_size = BYTE_VOCAB
    plan.caseops = any("CASEOPS" in env and values[env][0] not in (UNKNOWN, None, False, 0, "0", "")
                       for env in params)
    return plan


def _shrink_sizes(plan: ShrinkPlan, values: dict[str, tuple[Any, str]], hard: dict[str, tuple[int, int]]) -> None:
    """Toy values for the sizes the code reads from the environment; a logged or README size is set
    even where it is already small (the default would otherwise replace it)."""
    numbers = {env: _number(v) for env, (v, _) in values.items()}

    def number(name: str) -> int | None:
        value = numbers.get(name)
        return value if value is not None else (hard.get(name) or (None,))[0]

    sizes = {"MODEL_DIM": TOY_WIDTH}
    if numbers.get("MODEL_DIM"):
        fixed = {n for n in ("NUM_HEADS", "NUM_KV_HEADS") if numbers.get(n) is None}
        width = toy_width(number("NUM_HEADS"), number("NUM_KV_HEADS"), number("ROPE_DIMS"), fixed)
        sizes = {n: min(v, numbers[n]) if numbers.get(n) else v for n, v in width.items()}
        sizes["MODEL_DIM_WAS"] = numbers["MODEL_DIM"]
    for env, value in numbers.items():
        rule = (lambda v, s, env=env: s.get(env, v)) if env in WIDTH_NAMES else _rule_for(env)
        if value is None or rule is None or env in _RUNTIME:
            continue
        new = _like(rule(value, sizes), value)
        if new != value:
            plan.shrunk[env] = f"{value}->{new}"
        if new != value or values[env][1] != "default":
            plan.env[env] = _env_text(new)


def _note_hard_coded(plan: ShrinkPlan, hard: dict[str, tuple[int, int]], line_map: Callable) -> None:
    """RP090 for each size the code fixes far above its toy value."""
    for name, (literal, line) in sorted(hard.items()):
        toy = _hard_coded_toy(name, literal)
        if toy is not None and literal > HARD_CODED_SLACK * max(toy, 1):
            path, line = line_map(line)
            plan.shrunk[name] = f"{literal} (hard-coded)"
            plan.findings.append(make_finding(
                "RP090", "FMT-1", (path, line),
                f"could not shrink {name} = {literal}: the code fixes it (no environment variable); the replay "
                f"runs it as written", evidence=f"{name.lower()} = {literal}", severity="note"))


def _note_defaults_only(plan: ShrinkPlan, params: dict[str, Param], line_map: Callable) -> None:
    """RP092: no log and no run command set any value, so the replay runs the code's defaults; the
    flags those leave off are named (an evaluation path the reported run may have switched on)."""
    off = sorted(env for env, p in params.items() if _is_flag(p) and not env.endswith("_ONLY")
                 and p.default in (0, "0", False, "", "false", "False"))
    first = min((p.expr.lineno for p in params.values() if p.expr is not None), default=1)
    plan.findings.append(make_finding(
        "RP092", "FMT-1", line_map(first),
        "no log of the reported run and no run command set its configuration: the replay ran the code's "
        "defaults" + (f", which leave off {', '.join(off)}; a score made with one of them on was not replayed"
                      if off else ""), evidence=", ".join(off), severity="note"))


def _is_flag(param: Param) -> bool:
    """A switch read from the environment: `bool(...)` of it, or a comparison (`== "1"`)."""
    expr = param.expr
    return isinstance(expr, ast.Compare) or (
        isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and expr.func.id == "bool")


def _keep_logged(plan: ShrinkPlan, values: dict[str, tuple[Any, str]], params: dict[str, Param]) -> None:
    """Every other value the logs or the README set (evaluation-path flags above all), as they set it;
    never a `*_ONLY` flag, a path, or a value of the machine (rank, seed, run id)."""
    for env, (value, source) in sorted(values.items()):
        if source in ("", "default") or env in plan.env or env in _RUNTIME or _RUNTIME_PART.search(env):
            continue
        if env.endswith("_ONLY") or value is UNKNOWN or value is None:
            continue
        default = params[env].default
        text = _as_the_code_reads(_env_text(value), default)
        if text is None or "/" in text or len(text) > 200:
            continue
        if default is not UNKNOWN and _env_text(default) == text:
            continue
        plan.env[env] = text
        plan.kept[env] = f"{text} ({source})"


def _as_the_code_reads(text: str, default: Any) -> str | None:
    """A logged or scripted value as the code can read it: a whole float where the code's default is an
    int is written as an int (`int("2500.0")` fails); a fraction there, or a shell expansion the
    configuration could not resolve, is no value (None)."""
    if "$" in text:
        return None
    if isinstance(default, int) and not isinstance(default, bool) and _literal_number(text) and "." in text:
        number = float(text)
        return str(int(number)) if number.is_integer() else None
    return text
