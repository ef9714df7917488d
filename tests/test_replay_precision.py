"""A replay whose fp32 shortcut breaks the submission's own mixed precision is run again in the precision
the code asked for (the emulation's autocast, GOLF_REPLAY_FP32=0), and says so."""

import os

import pytest

from audit.replay.run import REPO_ROOT, _launch_main
from audit.replay.synthdata import synthetic_data
from golf.errors import GolfError

MIXED = """import torch
w = torch.ones(2, 2, device="cuda", dtype=torch.bfloat16)
with torch.autocast("cuda", dtype=torch.bfloat16):
    y = torch.ones(2, 3, device="cuda") @ torch.ones(3, 2, device="cuda")
z = y @ w  # after the region: autocast's bf16 output meets a bf16 weight (an fp32 region gave fp32)
print("product dtype", z.dtype)
"""


@pytest.fixture
def env(tmp_path):
    data = synthetic_data(1024, cache=tmp_path / "cache")
    return {**os.environ, "GOLF_REPLAY_VAL": data.val_pattern, "PYTHONPATH": str(REPO_ROOT),
            "GOLF_REPLAY_EMULATE": "1"}


@pytest.mark.slow
def test_a_dtype_failure_of_the_fp32_shortcut_is_run_again_in_bf16(tmp_path, env):
    script = tmp_path / "train_gpt.py"
    script.write_text(MIXED)
    log, used, failure = _launch_main(script, env, 1, 120, tmp_path / "run")
    assert "product dtype torch.bfloat16" in log and used["GOLF_REPLAY_FP32"] == "0"
    assert "same dtype" in failure or "scalar type" in failure
    with pytest.raises(GolfError, match="same dtype|scalar type"):  # a precision the caller chose is kept
        _launch_main(script, {**env, "GOLF_REPLAY_FP32": "1"}, 1, 120, tmp_path / "again")


@pytest.mark.slow
def test_other_failures_are_not_retried(tmp_path, env):
    script = tmp_path / "train_gpt.py"
    script.write_text("raise ValueError('not a precision problem')\n")
    with pytest.raises(GolfError, match="not a precision problem"):
        _launch_main(script, env, 1, 120, tmp_path / "run")
