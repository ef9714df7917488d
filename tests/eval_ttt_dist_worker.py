"""Run under torchrun (2 ranks, gloo) by tests/test_eval_ttt_dist.py; rank 0 writes a JSON summary.

Two TTT runs on the tiny model, 4,096 targets, context 128, stride 32:
  even:   8 sequences per chunk, 4 per rank, micro-batch 4 -> comparable with one rank, micro-batch 8;
  uneven: 5 sequences per chunk (2 and 3 per rank), micro-batch 2, 1 epoch -> rank 0 pads with
          zero-gradient steps.
Both runs record per rank what was scored and read; rank 0 checks the union across ranks.
"""

import json
import sys
from collections import defaultdict

import numpy as np
import torch
import torch.distributed as dist

from eval_tiny_lm import fake_luts, patterned_tokens, tiny_model
from golf.budget import WallclockBudget
from golf.eval.ttt import eval_score_first_ttt

TTT = dict(seq_len=128, stride=32, lr=1e-2, adapt_last_blocks=1, grad_clip=1.0)


class RankLedger:
    def __init__(self):
        self.scored = defaultdict(list)
        self.read = defaultdict(list)
        self.steps = 0

    def on_score(self, chunk, target_positions, nll):
        self.scored[chunk].extend(target_positions.tolist())

    def on_train_step(self, chunk, target_positions_read):
        self.read[chunk].extend(target_positions_read)
        self.steps += 1


def gathered(obj, world):
    out = [None] * world
    dist.all_gather_object(out, obj)
    return out


def run(label, tokens, luts, world, **kwargs):
    ledger = RankLedger()
    model = tiny_model()
    result = eval_score_first_ttt(model, tokens, luts, observer=ledger, world=world, rank=dist.get_rank(),
                                  budget=WallclockBudget("evaluation", 1e9), **TTT, **kwargs)
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    ledgers = gathered((dict(ledger.scored), dict(ledger.read), ledger.steps), world)
    params = gathered(flat, world)
    results = gathered(result.val_bpb_s0, world)
    n_targets = tokens.numel() - 1
    counts = np.zeros(n_targets + 1, dtype=np.int64)
    scored_by_chunk = defaultdict(set)
    for scored, _, _ in ledgers:
        for chunk, positions in scored.items():
            np.add.at(counts, positions, 1)
            scored_by_chunk[chunk].update(positions)
    unscored_reads = 0
    for _, read, _ in ledgers:
        for chunk, positions in read.items():
            available = set().union(*(scored_by_chunk[c] for c in range(chunk + 1)))
            unscored_reads += len(set(positions) - available)
    return {
        f"{label}_s0": result.val_bpb_s0,
        f"{label}_s0_same_on_ranks": len(set(results)) == 1,
        f"{label}_params_same_on_ranks": all(torch.equal(params[0], p) for p in params[1:]),
        f"{label}_steps_per_rank": [steps for _, _, steps in ledgers],
        f"{label}_each_target_once": bool(counts[0] == 0 and (counts[1:] == 1).all()),
        f"{label}_unscored_reads": unscored_reads,
        f"{label}_trained_chunks": result.trained_chunks,
    }


def main(out_path):
    dist.init_process_group("gloo")
    torch.set_num_threads(1)
    world = dist.get_world_size()
    tokens, luts = patterned_tokens(4097), fake_luts()
    summary = {"world": world}
    summary.update(run("even", tokens, luts, world, chunk_tokens=1024, micro_batch_seqs=4, epochs=3))
    summary.update(run("uneven", tokens, luts, world, chunk_tokens=640, micro_batch_seqs=2, epochs=1))
    if dist.get_rank() == 0:
        with open(out_path, "w") as f:
            json.dump(summary, f)
    # both ranks done with every collective before either tears gloo down: a rank leaving while
    # the other still had work in flight aborted once ("terminate called without an active exception")
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
