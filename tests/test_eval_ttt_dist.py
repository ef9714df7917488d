"""Score-first TTT on 2 gloo ranks under torchrun gives the one-rank s_0 and keeps ranks in step."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from eval_tiny_lm import fake_luts, patterned_tokens, tiny_model
from golf.eval.ttt import eval_score_first_ttt

WORKER = Path(__file__).with_name("eval_ttt_dist_worker.py")


@pytest.mark.slow
def test_two_gloo_ranks_match_one_rank(tmp_path):
    out = tmp_path / "summary.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(WORKER.parent.parent), str(WORKER.parent)])}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(WORKER), str(out)],
        env=env, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(out.read_text())
    assert summary["world"] == 2
    for label in ("even", "uneven"):
        assert summary[f"{label}_s0_same_on_ranks"] and summary[f"{label}_params_same_on_ranks"]
        assert summary[f"{label}_each_target_once"] and summary[f"{label}_unscored_reads"] == 0
        steps = summary[f"{label}_steps_per_rank"]
        assert steps[0] == steps[1]  # equal collective counts, zero-gradient steps included
    # even: 3 trained chunks x 3 epochs x 1 step; uneven: 6 trained chunks x 2 steps (one padded on rank 0)
    assert summary["even_steps_per_rank"] == [9, 9] and summary["uneven_steps_per_rank"] == [12, 12]
    # one rank with micro-batch 8 takes the same optimiser steps as 2 ranks x micro-batch 4
    one = eval_score_first_ttt(tiny_model(), patterned_tokens(4097), fake_luts(), seq_len=128, stride=32,
                               chunk_tokens=1024, epochs=3, lr=1e-2, adapt_last_blocks=1, micro_batch_seqs=8,
                               grad_clip=1.0)
    print(f"\ns_0 one rank {one.val_bpb_s0:.9f}, two gloo ranks {summary['even_s0']:.9f}")
    assert summary["even_s0"] == pytest.approx(one.val_bpb_s0, rel=1e-6)
