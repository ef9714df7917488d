"""Replay overhead: the same score-first TTT evaluation, unaudited and under the ledger recorder.

`python -m bench.bench_replay [--quick]` evaluates golf's GPT with golf.eval.ttt (the reference's
legal s_0 loop: score a chunk of sliding windows, then train on it) twice per shape in one process,
once plainly and once inside audit.replay.tracker.Tracker with the validation tensor tagged (what
the boot module does in a replay), restoring the weights before each run, and prints one JSON line
with the audited/unaudited time ratios:
* record-shaped: d=512, 11 layers, 8 heads, vocab 1024, seq 2048, a few TTT chunks — per-op
  compute dominates, as on a GPU (target <= 1.5x);
* smoke-shaped: the smoke preset (d=64, 3 layers, seq 128) — per-op dispatch dominates.
Each measurement is the best of `repeats` runs in process CPU time on one thread, after an untimed
warm-up of both modes; --quick shortens the record-shaped stream.

`--reference` instead replays the golf reference itself (tests/fixtures/replay/golf_reference:
`golf train --preset smoke` on synthetic shards) with 1 rank and with 2 torchrun ranks (gloo), and
prints its verdicts and the recomputed vs reported val_bpb.
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from audit.replay.tracker import Tracker
from golf.config import Hyperparameters
from golf.eval.bpb import ByteLUTs
from golf.eval.ttt import eval_score_first_ttt
from golf.model import GPT


def _luts(vocab: int) -> ByteLUTs:
    rng = np.random.default_rng(1)
    boundary = np.zeros(vocab, dtype=bool)
    boundary[:4] = True
    return ByteLUTs(base_bytes=np.where(boundary, 0, rng.integers(1, 6, vocab)).astype(np.int32),
                    has_leading_space=(rng.random(vocab) < 0.3) & ~boundary, is_boundary=boundary)


def _evaluate(model, val, luts, hp: Hyperparameters, chunks: int):
    return eval_score_first_ttt(model, val, luts, seq_len=hp.eval_seq_len, stride=hp.eval_stride,
                                chunk_tokens=(val.numel() - 1) // chunks, epochs=1, lr=hp.ttt_lr,
                                adapt_last_blocks=hp.ttt_last_blocks, micro_batch_seqs=hp.ttt_batch_seqs,
                                grad_clip=hp.ttt_grad_clip, batch_windows=hp.eval_batch_seqs)


def _run(mode: str, model, initial, stream, luts, hp, chunks) -> tuple[float, float]:
    """(process CPU seconds, wall seconds) of one evaluation from the initial weights."""
    model.load_state_dict(initial)
    val = torch.from_numpy(stream.copy())
    cpu, wall = time.process_time(), time.perf_counter()
    if mode == "audited":
        tracker = Tracker(stream)
        tracker.install_hooks()
        try:
            tracker.tag_if_validation(val)
            with tracker:
                result = _evaluate(model, val, luts, hp, chunks)
            ledger = tracker.finish()
        finally:
            tracker.remove_hooks()
        scored = sum(e["positions"].size for e in ledger.scores if not e["grad"])
        assert scored == stream.size - 1, f"the recorder traced {scored} of {stream.size - 1} scored targets"
    else:
        result = _evaluate(model, val, luts, hp, chunks)
    assert result.n_tokens == stream.size - 1
    return time.process_time() - cpu, time.perf_counter() - wall


def measure(hp: Hyperparameters, n_targets: int, chunks: int, repeats: int) -> dict:
    """Best-of-`repeats` CPU seconds of the evaluation, plain and audited, and their ratio (process
    CPU time, so that other load on the machine does not masquerade as overhead)."""
    torch.manual_seed(0)
    vocab = 1024
    model = GPT(hp.model_config(vocab))
    initial = copy.deepcopy(model.state_dict())
    stream = np.random.default_rng(0).integers(4, vocab, size=n_targets + 1).astype(np.int64)
    luts = _luts(vocab)
    warm = stream[: 2 * hp.eval_seq_len + 1]
    for mode in ("plain", "audited"):  # first-call costs (lazy imports, allocator) out of the timings
        _run(mode, model, initial, warm, luts, hp, 2)
    times = {"plain": [], "audited": []}
    for _ in range(repeats):
        for mode in ("plain", "audited"):
            times[mode].append(_run(mode, model, initial, stream, luts, hp, chunks))
    plain, audited = min(times["plain"]), min(times["audited"])
    return {"plain_cpu_s": round(plain[0], 3), "audited_cpu_s": round(audited[0], 3), "ratio": round(audited[0] / plain[0], 3),
            "plain_wall_s": round(plain[1], 3), "audited_wall_s": round(audited[1], 3)}


def replay_reference() -> dict:
    """The golf reference's own evaluation under the replay, on 1 and 2 ranks."""
    from audit.finding import verdict_of
    from audit.replay import run_replay
    from audit.replay.run import SYNTHETIC
    from golf.data.corpus import build_demo

    folder = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "replay" / "golf_reference"
    out: dict = {"bench": "replay_reference", "preset": "smoke"}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        build_demo(data, **SYNTHETIC)
        for nproc in (1, 2):
            findings, s = run_replay(folder, data=data, nproc=nproc)
            out[f"nproc{nproc}"] = {
                "verdict": verdict_of(findings), "rules": sorted({f.rule for f in findings}),
                "reported_val_bpb": s["reported_val_bpb"], "recomputed_val_bpb": s["recomputed_val_bpb"],
                "abs_diff": abs(s["reported_val_bpb"] - s["recomputed_val_bpb"]),
                "counted_exactly_once": s["counted_exactly_once"], "never_counted": s["never_counted"],
                "updates_using_val": s["updates_using_val"], "probes_passed": [p["passed"] for p in s["probes"]],
                "replay_seconds": round(s["replay_seconds"], 1),
            }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a shorter record-shaped stream, one repeat")
    parser.add_argument("--reference", action="store_true", help="replay the golf reference (1 and 2 ranks) instead")
    args = parser.parse_args(argv)
    if args.reference:
        print(json.dumps(replay_reference()))
        return 0
    torch.set_num_threads(1)  # one thread: CPU time is the work done, not the machine's load

    record = Hyperparameters.preset("record")
    record.eval_seq_len, record.eval_stride, record.ttt_batch_seqs, record.eval_batch_seqs = 2048, 2048, 1, 1
    record_targets = 3 * 2048 if args.quick else 4 * 2048
    smoke = Hyperparameters.preset("smoke")
    out = {
        "bench": "replay_overhead",
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "record_shaped": {"d": 512, "layers": 11, "seq": 2048, "targets": record_targets,
                          "chunks": record_targets // 2048,
                          **measure(record, record_targets, record_targets // 2048, 1 if args.quick else 2)},
        "smoke_shaped": {"d": smoke.model_dim, "layers": smoke.num_layers, "seq": smoke.eval_seq_len, "targets": 8192,
                         "chunks": 8, **measure(smoke, 8192, 8, 2 if args.quick else 3)},
    }
    out["record_ratio"] = out["record_shaped"]["ratio"]
    out["smoke_ratio"] = out["smoke_shaped"]["ratio"]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
