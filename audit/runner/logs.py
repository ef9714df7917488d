"""Parse a training/evaluation run log into a RunSummary (score, times, sizes, seed, config).

Reads the console/log formats of the parameter-golf records and golf's own. The facts a log carries:

* score lines `<label> val_loss:<x> val_bpb:<y> [eval_time:<ms>ms]` (also `key: value` and
  `key=value` spacing). Labels of the form `step:N/M` or `N/M` are training-time validation,
  labels starting with `diagnostic` or naming pre-quantisation are side measurements; every other
  label (`final_int8_zlib_roundtrip_exact`, `final_ttt_s0`, `quantized_ttt_phased`, `legal_ttt`,
  golf's `final` ...) is a reported score, and the LAST one in the log is the run's score (the
  records print their headline number last, often as an `_exact` repeat with more digits);
* `train_time:<ms>ms` on step and `stopping_early` lines (the largest is the training time);
* `total_eval_time:<s>s` when printed, otherwise the sum of the reported lines' `eval_time`;
* `Total submission size[ kind]: N bytes` (last = the counted artifact), `Code size[ (compressed)]:
  N bytes`, `Serialized model[ kind]: N bytes`, or `artifact_bytes: N`;
* the seed (`seed:N`, `  seed: N` in a Hyperparameters dump, else the file name `..seed42..`);
* the preamble configuration: `key:value` / `key: value` lines printed before the first line of
  training progress (a step, a train_time, stopping_early), minus per-process keys; logs that start with the script's own source (followed by a line
  of 100 `=`) also give a code hash.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from golf.errors import GolfError

_NUM = r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_SEP = r"\s*[:=]\s*"

_SCORE = re.compile(
    rf"^(?P<label>\S.*?)\s+val_loss{_SEP}(?P<loss>{_NUM})[,\s]+val_bpb{_SEP}(?P<bpb>{_NUM})(?P<rest>.*)$"
)
_STEP_LABEL = re.compile(r"^(?:step\s*:\s*)?(?P<step>\d+)\s*/\s*(?P<total>\d+)$")
_EVAL_TIME = re.compile(rf"eval_time{_SEP}(?P<ms>{_NUM})ms")
_TRAIN_TIME = re.compile(rf"train_time{_SEP}(?P<ms>{_NUM})ms")
_TOTAL_EVAL = re.compile(rf"^total_eval_time{_SEP}(?P<s>{_NUM})s\b")
_STOP_EARLY = re.compile(r"^stopping_early\b.*?\bstep\s*:\s*(?P<step>\d+)\s*/\s*\d+")
_TOTAL_SIZE = re.compile(r"^Total submission size[^:]*:\s*(?P<n>\d+)\s*bytes")
_ARTIFACT = re.compile(r"^artifact_bytes\s*[:=]\s*(?P<n>\d+)\s*$")
_CODE_SIZE = re.compile(r"^Code size(?P<kind>\s*\([^)]*\))?\s*:\s*(?P<n>\d+)\s*bytes")
_MODEL_SIZE = re.compile(r"^Serialized model[^:]*:\s*(?P<n>\d+)\s*bytes")
_CODE_HASH = re.compile(r"^code_sha256\s*[:=]\s*(?P<h>[0-9a-f]{64})\s*$")
_SEED_LINE = re.compile(r"^\s*seed\s*[:=]\s*(?P<seed>\d+)\s*$")
_SEED_IN_NAME = re.compile(r"seed[_-]?(?P<seed>\d+)", re.IGNORECASE)
_KV_LINE = re.compile(r"^\s*(?:[A-Za-z_][\w.]*\s*:\s*\S+)(?:\s+[A-Za-z_][\w.]*\s*:\s*\S+)*\s*$")
_KV_PAIR = re.compile(r"([A-Za-z_][\w.]*)\s*:\s*(\S+)")
_TRAINING_STARTED = re.compile(r"^(?:warmup_step\s*:\s*\d|loop_warmup|step\s*:\s*\d+/|\d+/\d+\s)")
# progress and timing of a run, never configuration (seeds of one configuration stop at different
# steps under the wallclock cap): a line with one of these ends the preamble and is not config
_PROGRESS = re.compile(
    rf"\b(?:train_time|step_avg|eval_time|train_loss){_SEP}|\bstep{_SEP}\d+\s*/\s*\d+|^(?:stopping_early|late_qat|warmup_step)\b"
)
_CODE_END = "=" * 100
# launcher noise that differs between runs of the same code (torchrun warnings, rank prefixes)
_NOISE = re.compile(r"^(?:W\d{4} |I\d{4} |\[W|\[rank\d+\]|\[\d{4}-\d\d-\d\d )")
# golf's per-file headers in a source dump name the file's path, which differs between run folders
_SOURCE_HEADER = re.compile(r"^# ---- source: .* ----$")
# keys that legitimately differ between the seeds of one configuration
_PER_RUN_KEYS = frozenset(
    {"seed", "rank", "local_rank", "run_id", "logfile", "is_main_process", "master_process",
     "model_params", "train_shards", "val_tokens", "data_path", "tokenizer_path", "datasets_dir"}
)


@dataclass
class RunSummary:
    """What one seed's log says about its run. None = the log does not say."""

    source: str = ""
    seed: int | None = None
    val_bpb: float | None = None
    val_loss: float | None = None
    score_label: str = ""  # the log label the score was read from
    train_seconds: float | None = None
    eval_seconds: float | None = None
    artifact_bytes: int | None = None
    code_bytes: int | None = None
    model_bytes: int | None = None
    steps: int | None = None
    stopped_early: bool = False  # the wallclock cap ended training
    code_hash: str | None = None
    config: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _code_block(lines: list[str]) -> tuple[str | None, int]:
    """The script source a record log starts with (hash, index after it), or (None, 0)."""
    for index, line in enumerate(lines[:20000]):
        if line.strip() == _CODE_END:
            code = "\n".join(x for x in lines[:index] if not (_NOISE.match(x) or _SOURCE_HEADER.match(x))).strip()
            if "\n" in code:  # a real code dump, not a decorative rule under a title
                return hashlib.sha256(code.encode()).hexdigest(), index + 1
            return None, 0
    return None, 0


def parse_log(text: str, source: str = "") -> RunSummary:
    """Summarise one run log; `source` (a file name) also supplies the seed when the log does not."""
    lines = text.splitlines()
    summary = RunSummary(source=source)
    summary.code_hash, start = _code_block(lines)
    train_ms: float | None = None
    eval_ms: list[float] = []
    total_eval_s: float | None = None
    last_step: int | None = None
    in_preamble = True
    code_sizes: dict[str, int] = {}

    for raw in lines[start:]:
        line = raw.rstrip()
        if _NOISE.match(line):
            continue
        for match in _TRAIN_TIME.finditer(line):
            train_ms = max(train_ms or 0.0, float(match["ms"]))
        score = _SCORE.match(line)
        if score:
            label = score["label"].strip()
            step = _STEP_LABEL.match(label)
            if step:
                last_step = int(step["step"])
                in_preamble = False
                continue
            if label.lower().startswith("diagnostic") or "pre-quant" in label or "prequant" in label:
                continue
            summary.val_loss = float(score["loss"])
            summary.val_bpb = float(score["bpb"])
            summary.score_label = label
            timed = _EVAL_TIME.search(score["rest"])
            if timed:
                eval_ms.append(float(timed["ms"]))
            continue
        if _TRAINING_STARTED.match(line) or _PROGRESS.search(line):
            in_preamble = False
        if match := _STOP_EARLY.match(line):
            summary.stopped_early = True
            last_step = int(match["step"])
        elif match := _TOTAL_EVAL.match(line):
            total_eval_s = float(match["s"])
        elif match := _TOTAL_SIZE.match(line) or _ARTIFACT.match(line):
            summary.artifact_bytes = int(match["n"])
        elif match := _CODE_SIZE.match(line):
            code_sizes[(match["kind"] or "").strip(" ()").lower()] = int(match["n"])
        elif match := _MODEL_SIZE.match(line):
            summary.model_bytes = int(match["n"])
        elif match := _CODE_HASH.match(line):
            summary.code_hash = match["h"]
        elif summary.seed is None and (match := _SEED_LINE.match(line)):
            summary.seed = int(match["seed"])
        if in_preamble and _KV_LINE.match(line):
            for key, value in _KV_PAIR.findall(line):
                if key not in _PER_RUN_KEYS:
                    summary.config[key] = value

    if summary.seed is None and (match := _SEED_IN_NAME.search(Path(source).name)):
        summary.seed = int(match["seed"])
    # the counted code size: the compressed wrapper's when the log gives both (accepted since #1530)
    summary.code_bytes = code_sizes.get("compressed", code_sizes.get("", code_sizes.get("uncompressed")))
    summary.train_seconds = None if train_ms is None else train_ms / 1000.0
    summary.eval_seconds = total_eval_s if total_eval_s is not None else (sum(eval_ms) / 1000.0 if eval_ms else None)
    summary.steps = last_step
    return summary


def parse_log_file(path: str | Path) -> RunSummary:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise GolfError(f"cannot read log {path}: {exc.strerror or exc}") from exc
    return parse_log(text, source=path.name)


def read_seed_logs(folder: str | Path) -> list[RunSummary]:
    """The run logs shipped in a submission folder (*.log / *.txt that report a score), parsed;
    each summary's `source` is the log's path relative to the folder."""
    folder = Path(folder)
    found = []
    for path in sorted(folder.rglob("*")):
        if path.suffix not in (".log", ".txt") or not path.is_file():
            continue
        summary = parse_log_file(path)
        if summary.val_bpb is not None:
            summary.source = str(path.relative_to(folder))
            found.append(summary)
    return found
