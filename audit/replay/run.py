"""`run_replay`: run a submission's train_gpt.py (or its train_gpt_<variant>.py) under the boot module,
read its ledger, judge it.

Inputs follow parameter-golf's conventions: DATA_PATH, TOKENIZER_PATH and VOCAB_SIZE from the
environment when set, else the `data`/`tokenizer` arguments, else synthetic shards in the real
format for the vocabulary the submission needs (audit.replay.synthdata: cached; CaseOps with its
byte sidecar when a CaseOps flag is on; raw UTF-8 bytes for a byte-level model), linked into the run folder as data/datasets/... and
data/tokenizers/... as well. The sizes are shrunk to toy values through the environment with every
evaluation-path flag kept as the logs ran it (audit.replay.shrink; summary["shrink"] says what);
short settings (ITERATIONS, ...) are set where neither sets them. Packages the submission declares
in requirements.txt and this Python lacks are never installed: an RP091 note names them.

The file runs from a copy of its folder (its logs left out; what it writes stays in the replay's
work folder), in a subprocess (torchrun with gloo for nproc > 1, every rank instrumented); the
auditor never imports it. Then, unless probes=False, the same run again on a validation stream
perturbed from one position on (audit.replay.probes). timeout_s bounds both runs together.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from audit.finding import Finding
from golf.errors import GolfError

if TYPE_CHECKING:
    from audit.replay.shrink import ShrinkPlan
    from audit.replay.synthdata import SynthData

REPO_ROOT = Path(__file__).resolve().parents[2]
# short training where a submission reads these; the replay's clocks are virtual (1 ms per read)
SHORT_SETTINGS = {"ITERATIONS": "20", "WARMUP_STEPS": "0", "VAL_LOSS_EVERY": "0", "MAX_WALLCLOCK_SECONDS": "30",
                  "TRAIN_LOG_EVERY": "10"}
# small enough for seconds of CPU, large enough for several TTT chunks (~7.4k val tokens, 4 documents)
SYNTHETIC = dict(vocab_size=384, val_fraction=0.05, max_chars=300_000, shard_tokens=1 << 14)
# toy sizes run fastest on one thread, and several replays sharing cores do not spin against each other
# (2-core machine, NaiveBaseline at toy size: 79 s -> 24 s of CPU profile)
TOY_THREADS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
DEFAULT_VOCAB = 1024  # the challenge's first vocabulary, for a submission that names none
_MISSING_MODULE = re.compile(r"ModuleNotFoundError: No module named '([^']+)'")
_NOT_COPIED = ("*.log", "logs", "__pycache__", "runs", "data")


class ReplayOutcome(NamedTuple):
    """The replay's findings and its ledger summary (the audit JSON's "replay" object)."""

    findings: list[Finding]
    summary: dict


@dataclass(frozen=True)
class ReplayData:
    data_dir: Path
    val_pattern: str
    tokenizer: Path | None  # None: byte-level tokens (each id one UTF-8 byte)
    vocab_size: int
    synthetic: "SynthData | None" = None
    zero_byte_ids: tuple[int, ...] = ()  # CaseOps operators: 0 original bytes (their sidecar's count)


def resolve_inputs(env: dict, data: Path | None, tokenizer: Path | None, plan: "ShrinkPlan | None" = None) -> ReplayData:
    """The shards and tokenizer of the replay (environment, then arguments, then synthetic data for
    the vocabulary `plan` names). DATA_PATH may be a shard folder with TOKENIZER_PATH anywhere."""
    from audit.replay.synthdata import byte_level_data, operator_ids, synthetic_data
    from golf.data.layout import resolve_data

    if env.get("DATA_PATH"):
        data = Path(env["DATA_PATH"])
        tokenizer = Path(env["TOKENIZER_PATH"]) if env.get("TOKENIZER_PATH") else tokenizer
    if data is None and plan is not None and plan.byte_level:
        synth = byte_level_data()
        return ReplayData(synth.shards, synth.val_pattern, None, synth.vocab_size, synth)
    if data is None:
        synth = synthetic_data((plan and plan.vocab_size) or DEFAULT_VOCAB, bool(plan and plan.caseops))
        return ReplayData(synth.shards, synth.val_pattern, synth.tokenizer, synth.vocab_size, synth,
                          tuple(operator_ids(synth)))
    layout = resolve_data(data, tokenizer)
    vocab = int(env["VOCAB_SIZE"]) if env.get("VOCAB_SIZE") else layout.vocab_size
    # the val token shards only: a CaseOps byte sidecar (fineweb_val_bytes_*) is not a token stream
    val_pattern = str(Path(layout.val_pattern).with_name("fineweb_val_[0-9]*.bin"))
    return ReplayData(Path(layout.val_pattern).parent, val_pattern, layout.tokenizer_path, vocab)


def entry_of(folder: Path) -> str:
    """The file a replay runs: train_gpt.py, else the entry the static audit chooses (a folder whose
    script is named train_gpt_<variant>.py); GolfError when there is none."""
    if (folder / "train_gpt.py").is_file():
        return "train_gpt.py"
    from audit.submission import load_submission

    try:
        entry = load_submission(folder).entry
    except GolfError:  # no Python file at all (an empty folder, a folder of folders)
        entry = ""
    if "/" in entry or not entry.startswith("train"):
        raise GolfError(f"{folder}: no train_gpt.py to replay")
    return entry


def _stage(folder: Path, run_folder: Path) -> Path:
    """A copy of the submission folder to run in (without its shipped logs and data links)."""
    shutil.copytree(folder, run_folder, symlinks=True, ignore=shutil.ignore_patterns(*_NOT_COPIED))
    return run_folder / entry_of(folder)


def _launch(script: Path, env: dict, nproc: int, timeout_s: float, out: Path) -> str:
    """Run the boot module on `script` (from its folder); returns the log; GolfError on failure."""
    out.mkdir(parents=True, exist_ok=True)
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "audit.replay.boot", str(script)]
    else:
        cmd = [sys.executable, "-m", "audit.replay.boot", str(script)]
    env = {**env, "GOLF_REPLAY_OUT": str(out / "ledgers")}
    with open(out / "stdout.txt", "wb") as so, open(out / "stderr.txt", "wb") as se:
        proc = subprocess.Popen(cmd, cwd=script.parent, env=env, stdout=so, stderr=se, start_new_session=True)
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise GolfError(f"replay of {script} did not finish within {timeout_s:.0f} s") from None
    stdout = (out / "stdout.txt").read_text(errors="replace")
    stderr = (out / "stderr.txt").read_text(errors="replace")
    if code != 0:
        last = next((line for line in reversed(stderr.splitlines()) if line.strip()), f"exit code {code}").strip()
        if missing := _MISSING_MODULE.search(last):
            raise GolfError(f"replay: {script.name} imports {missing.group(1)}, which is not installed here "
                            "(the replay installs nothing; the submission cannot run without it)")
        raise GolfError(f"replay: {script.name} failed (exit code {code}): {last}")
    return stdout + "\n" + stderr


def replay_environment(folder: Path, data: Path | None, tokenizer: Path | None, base_env: dict,
                       shrink: bool = True) -> tuple["ShrinkPlan", ReplayData, dict]:
    """The shrink plan, the inputs and the environment of a replay of `folder` (explicit settings in
    `base_env` win over the plan, which wins over SHORT_SETTINGS). Shared with `golf validate --smoke`."""
    from audit.replay.shrink import ShrinkPlan, plan_shrink

    plan = plan_shrink(folder) if shrink else ShrinkPlan()
    inputs = resolve_inputs(base_env, data, tokenizer, plan)
    run_env = {**SHORT_SETTINGS, **(TOY_THREADS if shrink else {}), **plan.env, **base_env}
    if inputs.tokenizer is not None:
        run_env["TOKENIZER_PATH"] = str(inputs.tokenizer)
    run_env.update({"DATA_PATH": str(inputs.data_dir),
                    "VOCAB_SIZE": str(inputs.vocab_size), "GOLF_REPLAY_VAL": inputs.val_pattern,
                    "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), base_env.get("PYTHONPATH", "")]).rstrip(os.pathsep)})
    return plan, inputs, run_env


def stage_run_folder(folder: Path, inputs: ReplayData, run_folder: Path) -> Path:
    """The copy of `folder` the run starts in, with synthetic data linked where the records look."""
    from audit.replay.synthdata import install_layout

    script = _stage(folder, run_folder)
    if inputs.synthetic is not None:
        install_layout(inputs.synthetic, run_folder)
    return script


def run_replay(folder: Path, *, data: Path | None = None, tokenizer: Path | None = None, nproc: int = 1,
               timeout_s: float = 600, env: dict | None = None, probes: bool = True,
               eval_budget_s: float = 600.0, keep: Path | None = None, shrink: bool = True) -> ReplayOutcome:
    """Replay `folder`/train_gpt.py and return the findings and the ledger summary.

    probes=False skips the perturbation run (C1); keep=DIR keeps logs, ledgers and data there;
    shrink=False runs the submission's own sizes.
    """
    from audit.replay import probes as P
    from audit.replay.invariants import Locator, analyze
    from audit.replay.ledger import load_ledgers
    from audit.replay.requirements import missing_requirements
    from audit.replay.synthdata import byte_level_luts
    from golf.data.shards import list_shards, read_shard
    from golf.data.tokenizer import build_byte_luts, load_tokenizer

    folder = Path(folder).resolve()
    entry_of(folder)  # GolfError before any work when there is nothing to run
    if nproc < 1:
        raise GolfError(f"--nproc must be at least 1, got {nproc}")
    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="golf-replay-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    try:
        base_env = {**os.environ, **(env or {})}
        plan, inputs, run_env = replay_environment(folder, data, tokenizer, base_env, shrink)
        shutil.rmtree(work / "submission", ignore_errors=True)
        script = stage_run_folder(folder, inputs, work / "submission")
        stream = np.concatenate([np.asarray(read_shard(p)) for p in list_shards(inputs.val_pattern)]).astype(np.int64)
        if inputs.tokenizer is None:
            luts = byte_level_luts()
        else:
            luts = build_byte_luts(load_tokenizer(inputs.tokenizer), inputs.vocab_size)
            luts.base_bytes[list(inputs.zero_byte_ids)] = 0
        vocab_ids = np.flatnonzero(~np.asarray(luts.is_boundary[: inputs.vocab_size]))
        k = P.probe_position(stream, vocab_ids)
        run_env.update({"GOLF_REPLAY_CAPTURE": ",".join(map(str, P.capture_positions(k)))})
        if nproc > 1:
            run_env.setdefault("GLOO_SOCKET_IFNAME", "lo")
        log = _launch(script, run_env, nproc, timeout_s, work / "run")
        ledgers = load_ledgers(work / "run" / "ledgers")
        locator = Locator(str(script.parent), str(script))
        findings, summary, counted = analyze(ledgers, log, stream, luts, locator, eval_budget_s)
        findings = plan.findings + missing_requirements(folder) + findings
        summary["shrink"] = dict(plan.shrunk)
        summary["config_from_logs"] = dict(plan.kept)
        summary["logs_left_out"] = list(plan.ignored_logs)
        summary["data"] = {"vocab_size": inputs.vocab_size, "synthetic": inputs.synthetic is not None,
                           "caseops": bool(inputs.synthetic and inputs.synthetic.caseops)}
        summary["probes"] = []
        if probes and counted is not None:
            perturbed = P.write_perturbed(inputs.data_dir, inputs.val_pattern, work / "probe-data", k, vocab_ids)
            probe_env = {**run_env, "DATA_PATH": str(perturbed),
                         "GOLF_REPLAY_VAL": str(perturbed / Path(inputs.val_pattern).name)}
            _launch(script, probe_env, nproc, max(1.0, timeout_s - (time.time() - started)), work / "probe")
            probe_findings, result = P.compare(counted, load_ledgers(work / "probe" / "ledgers"), ledgers, k, locator)
            findings += probe_findings
            passed = None if "inconclusive" in result else not probe_findings
            summary["probes"].append({"name": "perturb-from-position", **result, "passed": passed})
        summary["replay_seconds"] = time.time() - started
        summary["nproc"] = nproc
        return ReplayOutcome(findings, summary)
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
