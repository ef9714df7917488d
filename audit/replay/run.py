"""`run_replay`: run a submission's train_gpt.py under the boot module, read its ledger, judge it.

Inputs follow parameter-golf's conventions: DATA_PATH, TOKENIZER_PATH and VOCAB_SIZE from the
environment when set, else the `data`/`tokenizer` arguments, else small synthetic shards in the real
format built from the bundled corpus (golf.data.corpus). Short settings (ITERATIONS, ...) are set
where the environment does not set them. The file runs in a subprocess (torchrun with gloo for
nproc > 1, every rank instrumented); the auditor never imports it. Then, unless probes=False, the
same run again on a validation stream perturbed from one position on (audit.replay.probes).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from audit.finding import Finding
from golf.errors import GolfError

REPO_ROOT = Path(__file__).resolve().parents[2]
# short training where a submission reads these; the replay's clocks are virtual (1 ms per read)
SHORT_SETTINGS = {"ITERATIONS": "20", "WARMUP_STEPS": "0", "VAL_LOSS_EVERY": "0", "MAX_WALLCLOCK_SECONDS": "30",
                  "TRAIN_LOG_EVERY": "10"}
# small enough for seconds of CPU, large enough for several TTT chunks (~7.4k val tokens, 4 documents)
SYNTHETIC = dict(vocab_size=384, val_fraction=0.05, max_chars=300_000, shard_tokens=1 << 14)


class ReplayOutcome(NamedTuple):
    """The replay's findings and its ledger summary (the audit JSON's "replay" object)."""

    findings: list[Finding]
    summary: dict


@dataclass(frozen=True)
class ReplayData:
    data_dir: Path
    val_pattern: str
    tokenizer: Path
    vocab_size: int


def resolve_inputs(env: dict, data: Path | None, tokenizer: Path | None, work: Path) -> ReplayData:
    """The shards and tokenizer of the replay (environment, then arguments, then synthetic)."""
    from golf.data.layout import resolve_data

    if env.get("DATA_PATH"):
        data = Path(env["DATA_PATH"])
        tokenizer = Path(env["TOKENIZER_PATH"]) if env.get("TOKENIZER_PATH") else tokenizer
    if data is None:
        from golf.data.corpus import build_demo

        data = work / "synthetic-data"
        build_demo(data, **SYNTHETIC)
    layout = resolve_data(data)
    tok = Path(tokenizer) if tokenizer else layout.tokenizer_path
    if not tok.is_file():
        raise GolfError(f"tokenizer {tok} not found")
    vocab = int(env["VOCAB_SIZE"]) if env.get("VOCAB_SIZE") else layout.vocab_size
    return ReplayData(Path(layout.val_pattern).parent, layout.val_pattern, tok, vocab)


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
        last = next((line for line in reversed(stderr.splitlines()) if line.strip()), f"exit code {code}")
        raise GolfError(f"replay: {script.name} failed (exit code {code}): {last.strip()}")
    return stdout + "\n" + stderr


def run_replay(folder: Path, *, data: Path | None = None, tokenizer: Path | None = None, nproc: int = 1,
               timeout_s: float = 600, env: dict | None = None, probes: bool = True,
               eval_budget_s: float = 600.0, keep: Path | None = None) -> ReplayOutcome:
    """Replay `folder`/train_gpt.py and return the findings and the ledger summary.

    probes=False skips the perturbation run (C1); keep=DIR keeps logs, ledgers and data there.
    """
    from audit.replay import probes as P
    from audit.replay.invariants import Locator, analyze
    from audit.replay.ledger import load_ledgers
    from golf.data.shards import list_shards, read_shard
    from golf.data.tokenizer import build_byte_luts, load_tokenizer

    folder = Path(folder).resolve()
    script = folder / "train_gpt.py"
    if not script.is_file():
        raise GolfError(f"{folder}: no train_gpt.py to replay")
    if nproc < 1:
        raise GolfError(f"--nproc must be at least 1, got {nproc}")
    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="golf-replay-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    try:
        base_env = {**os.environ, **(env or {})}
        inputs = resolve_inputs(base_env, data, tokenizer, work)
        stream = np.concatenate([np.asarray(read_shard(p)) for p in list_shards(inputs.val_pattern)]).astype(np.int64)
        luts = build_byte_luts(load_tokenizer(inputs.tokenizer), inputs.vocab_size)
        vocab_ids = np.flatnonzero(~np.asarray(luts.is_boundary[: inputs.vocab_size]))
        k = P.probe_position(stream, vocab_ids)
        run_env = {**SHORT_SETTINGS, **base_env}
        run_env.update({
            "DATA_PATH": str(inputs.data_dir), "TOKENIZER_PATH": str(inputs.tokenizer), "VOCAB_SIZE": str(inputs.vocab_size),
            "GOLF_REPLAY_VAL": inputs.val_pattern, "GOLF_REPLAY_CAPTURE": ",".join(map(str, P.capture_positions(k))),
            "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), base_env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        })
        if nproc > 1:
            run_env.setdefault("GLOO_SOCKET_IFNAME", "lo")
        log = _launch(script, run_env, nproc, timeout_s, work / "run")
        ledgers = load_ledgers(work / "run" / "ledgers")
        locator = Locator(str(folder), str(script))
        findings, summary, counted = analyze(ledgers, log, stream, luts, locator, eval_budget_s)
        summary["probes"] = []
        if probes and counted is not None:
            perturbed = P.write_perturbed(inputs.data_dir, inputs.val_pattern, work / "probe-data", k, vocab_ids)
            probe_env = {**run_env, "DATA_PATH": str(perturbed),
                         "GOLF_REPLAY_VAL": str(perturbed / Path(inputs.val_pattern).name)}
            _launch(script, probe_env, nproc, timeout_s, work / "probe")
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
