"""The replay recorder's memory on the full-size validation set (62,021,633 tokens).

`python -m bench.bench_ledger [--quick]` plays one rank of an 8-rank score-first TTT evaluation
under audit.replay.tracker.Tracker: the whole validation tensor is tagged, the rank's eighth of the
targets is scored chunk by chunk without autograd and each scored chunk then trains a small model
(one optimizer step), as the legal s_0 loop does. The model is a vocabulary-256 bigram (the
recorder's memory does not depend on the model). It prints one JSON line: the recorder's bytes per
validation position (16-bit stream, sampled content index, first-event tables in runs), the bytes
of the position shadow of the tagged tensor, the bytes per scored instance, the pickled ledger's
size, the process's peak RSS, the recording's time and the time the auditor's analysis takes
(passes, their sums, first-update times). --quick plays a stream of 1/8 of the size.
"""

from __future__ import annotations

import argparse
import io
import json
import pickle
import resource
import time
from dataclasses import asdict

import numpy as np
import torch
import torch.nn.functional as F

from audit.replay import ledger as L
from audit.replay.tracker import Tracker

FULL_TOKENS = 62_021_633
WORLD = 8
CHUNK = 32_768
VOCAB = 256


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(tokens: int) -> dict:
    torch.manual_seed(0)
    stream = np.random.default_rng(0).integers(0, VOCAB, size=tokens, dtype=np.int64)
    val = torch.from_numpy(stream)
    model = torch.nn.Sequential(torch.nn.Embedding(VOCAB, 8), torch.nn.Linear(8, VOCAB))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    rss_before = _peak_rss_mb()
    start = time.perf_counter()
    tracker = Tracker(stream, rank=0, world=WORLD)
    tracker.install_hooks()
    try:
        with tracker:
            tagged = tracker.tag_if_validation(val)
            targets = tokens - 1
            lo, hi = 0, targets // WORLD  # rank 0's share of the targets
            for a in range(lo, hi, CHUNK):
                b = min(a + CHUNK, hi)
                with torch.no_grad():  # score the chunk first ...
                    F.cross_entropy(model(tagged[a:b]), tagged[a + 1:b + 1], reduction="none").sum()
                loss = F.cross_entropy(model(tagged[a:b]), tagged[a + 1:b + 1])  # ... then train on it
                opt.zero_grad()
                loss.backward()
                opt.step()
        ledger = tracker.finish()
    finally:
        tracker.remove_hooks()
    seconds = time.perf_counter() - start
    recording_rss = _peak_rss_mb() - rss_before  # the run's own tensors are in it too (the tagged tensor's shadow)
    shadow_bytes = tracker._shadow_of(tagged).element_size()
    evaluated = [e for e in ledger.scores if not e["grad"]]
    instances = sum(e["positions"].size for e in ledger.scores)
    instance_bytes = sum(e["positions"].nbytes + e["losses"].nbytes + e["reduced"].nbytes for e in ledger.scores)
    recorded = asdict(ledger)
    buffer = io.BytesIO()
    pickle.dump(recorded, buffer, protocol=pickle.HIGHEST_PROTOCOL)
    analysis_start = time.perf_counter()  # the auditor's side: passes, their sums, the first-update times
    passes = L.split_passes([recorded])
    sums = [c.nll for p in passes for c in L.candidates(p, np.ones(tokens))]
    first_update_t = L.first_times([recorded], "first_update_seq")
    analysis_seconds = time.perf_counter() - analysis_start
    assert np.isfinite(first_update_t).sum() == hi - lo + 1 and sums
    assert sum(e["positions"].size for e in evaluated) == hi - lo
    runs = sum(len(t["runs"]) for t in (ledger.first_update_seq, ledger.first_grad_update_seq, ledger.first_score_seq))
    return {
        "tokens": tokens, "world": WORLD, "rank_targets": hi - lo, "chunk": CHUNK,
        "scoring_events": len(ledger.scores), "updates": len(ledger.mutations), "first_event_runs": runs,
        "recorder_bytes_per_position": round(ledger.bytes_per_position, 3),
        "shadow_bytes_per_tagged_position": shadow_bytes,
        "bytes_per_scored_instance": round(instance_bytes / max(1, instances), 2),
        "pickled_ledger_mb": round(buffer.tell() / 2**20, 1),
        "peak_rss_growth_recording_mb": round(recording_rss, 1),
        "peak_rss_growth_with_analysis_mb": round(_peak_rss_mb() - rss_before, 1),
        "seconds": round(seconds, 1),
        "analysis_seconds": round(analysis_seconds, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1/8 of the full validation set")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    tokens = FULL_TOKENS // 8 if args.quick else FULL_TOKENS
    print(json.dumps({"bench": "replay_ledger_memory", **measure(tokens)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
