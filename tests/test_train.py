"""golf.config, golf.train and `golf train`: presets and env overrides, warm-up rollback, budgets
with a fake clock, the smoke pipeline end to end, and a 2-rank gloo run under torchrun."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from audit.runner.logs import parse_log
from golf.budget import WallclockBudget
from golf.cli import main
from golf.config import Hyperparameters
from golf.data.corpus import build_demo
from golf.data.layout import resolve_data
from golf.errors import BudgetExceeded, GolfError
from golf.model import GPT
from golf.optim import OptimizerSet
from golf.pipeline import calibrate
from golf.runlog import RunLog
from golf.train import rolled_back, train

REPO = Path(__file__).resolve().parents[1]
RUN_KEYS = {"val_bpb", "val_bpb_sliding", "val_bpb_prequant", "val_loss", "artifact_bytes", "code_bytes",
            "model_bytes", "train_seconds", "quant_seconds", "eval_seconds", "steps", "params", "seed", "config"}
pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py
TRAIN_LOSS = re.compile(r"^step:(\d+)/\d+ train_loss:([0-9.]+)", re.M)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A small `golf data demo` folder: 512-token SentencePiece BPE, ~8k val tokens."""
    out = tmp_path_factory.mktemp("demo") / "data"
    meta = build_demo(out, vocab_size=512, max_chars=400_000)
    return out, meta


class FakeClock:
    """Advances `tick` seconds per reading."""

    def __init__(self, tick: float):
        self.t, self.tick = 0.0, tick

    def __call__(self) -> float:
        self.t += self.tick
        return self.t


# --- configuration ----------------------------------------------------------------------------


def test_smoke_preset_is_the_cpu_configuration_of_the_spec():
    hp = Hyperparameters.preset("smoke")
    assert (hp.model_dim, hp.num_layers, hp.num_heads, hp.num_kv_heads) == (64, 3, 4, 2)
    assert hp.model_config(320).mlp_hidden == 224 and hp.rope_dims == 8
    assert (hp.bigram_vocab_size, hp.bigram_dim, hp.ve_dim, hp.ve_layer_indices()) == (128, 16, 16, (1, 2))
    assert (hp.train_seq_len, hp.train_batch_tokens // hp.train_seq_len) == (128, 8)
    assert (hp.iterations, hp.warmdown_iters, hp.warmup_steps, hp.ema_decay) == (40, 15, 2, 0.9)
    assert (hp.ttt_chunk_tokens, hp.ttt_lr, hp.ttt_last_blocks, hp.ttt_batch_seqs) == (1024, 1e-3, 1, 4)
    assert (hp.gptq_block_size, hp.fp16_passthrough_numel) == (32, 1024)


def test_record_preset_is_the_seed_configuration():
    hp = Hyperparameters.preset("record")
    assert (hp.model_dim, hp.num_layers, hp.num_heads, hp.num_kv_heads, hp.mlp_mult) == (512, 11, 8, 8, 3.5)
    assert (hp.bigram_vocab_size, hp.bigram_dim, hp.ve_layer_indices(), hp.xsa_last_n) == (8192, 128, (9, 10), -1)
    assert (hp.train_batch_tokens, hp.train_seq_len, hp.ema_decay, hp.max_wallclock_seconds) == (786_432, 2048, 0.997, 600)
    assert (hp.eval_stride, hp.eval_batch_seqs, hp.records_compat) == (64, 32, False)
    assert (hp.ttt_chunk_tokens, hp.ttt_epochs, hp.ttt_lr, hp.ttt_last_blocks, hp.ttt_batch_seqs) == (131_072, 3, 1e-4, 2, 32)
    assert (hp.artifact_budget_bytes, hp.train_budget_seconds, hp.eval_budget_seconds) == (16_000_000, 600, 600)
    assert hp.grad_accum_steps(8) == 1 and hp.grad_accum_steps(1) == 8


def test_env_overrides_use_parameter_golf_names():
    env = {"ITERATIONS": "123", "MATRIX_LR": "0.03", "TIE_EMBEDDINGS": "0", "TTT_ENABLED": "false",
           "VE_LAYERS": "0,2", "DATA_PATH": "/d", "GPTQ_CALIB_SAMPLES": "64", "UNRELATED": "x"}
    hp = Hyperparameters.from_env("smoke", env)
    assert (hp.iterations, hp.matrix_lr, hp.tie_embeddings, hp.ttt_enabled) == (123, 0.03, False, False)
    assert (hp.ve_layer_indices(), hp.data_path, hp.gptq_calib_seqs) == ((0, 2), "/d", 64)
    assert Hyperparameters.preset("smoke").iterations == 40  # presets are not mutated
    assert json.loads(json.dumps(hp.as_dict()))["iterations"] == 123


@pytest.mark.parametrize("env, name", [({"ITERATIONS": "abc"}, "ITERATIONS"), ({"MATRIX_LR": "fast"}, "MATRIX_LR"),
                                       ({"TTT_ENABLED": "maybe"}, "TTT_ENABLED"), ({"VE_LAYERS": "a,b"}, "VE_LAYERS"),
                                       ({"NUM_HEADS": "3"}, "NUM_HEADS")])
def test_malformed_overrides_raise_one_line_naming_the_variable(env, name):
    with pytest.raises(GolfError, match=name) as info:
        Hyperparameters.from_env("smoke", env)
    assert "\n" not in str(info.value)


def test_unknown_preset():
    with pytest.raises(GolfError, match="unknown preset 'huge'"):
        Hyperparameters.from_env("huge", {})


def test_cli_bad_inputs_exit_2_and_leave_the_disk_alone(demo, tmp_path, monkeypatch, capsys):
    data, _ = demo
    out = tmp_path / "run"
    assert main(["train", "--preset", "huge", "--data", str(data), "--out", str(out)]) == 2
    assert main(["train", "--preset", "smoke", "--data", str(tmp_path / "missing"), "--out", str(out)]) == 2
    monkeypatch.setenv("ITERATIONS", "abc")
    assert main(["train", "--preset", "smoke", "--data", str(data), "--out", str(out)]) == 2
    monkeypatch.delenv("ITERATIONS")
    err = capsys.readouterr().err
    assert "unknown preset" in err and "not found" in err and "ITERATIONS='abc'" in err
    assert "Traceback" not in err and not out.exists()
    out.mkdir()
    (out / "run.json").write_text("{}")
    assert main(["train", "--preset", "smoke", "--data", str(data), "--out", str(out)]) == 2
    assert (out / "run.json").read_text() == "{}" and "not empty" in capsys.readouterr().err


# --- training loop ----------------------------------------------------------------------------


def _hp(**changes) -> Hyperparameters:
    hp = Hyperparameters.preset("smoke")
    for key, value in changes.items():
        setattr(hp, key, value)
    return hp


def test_rolled_back_restores_weights_and_optimizer_state_after_real_steps():
    hp = _hp()
    torch.manual_seed(0)
    model = GPT(hp.model_config(64))
    opts = OptimizerSet(model, hp)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ids = torch.randint(0, 64, (2, 32))
    with rolled_back(model, opts):
        for _ in range(2):
            model(ids, ids).backward()
            opts.step()
        assert not all(torch.equal(before[k], v) for k, v in model.state_dict().items())
        assert len(opts.muon.state) > 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert len(opts.muon.state) == 0 and all(len(a.state) == 0 for a in opts.adams)


def test_compile_warmup_steps_leave_the_initial_weights(demo, tmp_path):
    layout = resolve_data(demo[0])
    result = train(_hp(iterations=0, warmup_steps=2), layout, tmp_path)
    torch.manual_seed(_hp().seed)
    fresh = GPT(_hp().model_config(layout.vocab_size))
    assert result.steps == 0
    assert all(torch.equal(v, fresh.state_dict()[k]) for k, v in result.model.state_dict().items())
    assert "warmup_step:2/2" in result.log_path.read_text()


def test_wallclock_cap_stops_the_loop_and_warms_down(demo, tmp_path):
    layout = resolve_data(demo[0])
    # every clock reading advances 1 s: the loop (cap 22 - 10 reserve = 12 s) stops well before 40 steps
    hp = _hp(iterations=40, warmup_steps=0, max_wallclock_seconds=22.0, gptq_reserve_seconds=10.0,
             warmdown_iters=5, train_log_every=1)
    result = train(hp, layout, tmp_path, clock=FakeClock(1.0))
    log = result.log_path.read_text()
    assert result.stopped_early and 0 < result.steps < 40
    assert result.train_seconds >= 12.0 and not result.budget.exceeded()
    assert "stopping_early: wallclock_cap" in log and "late_qat:enabled" in log


def test_training_budget_fails_at_its_limit(demo, tmp_path):
    layout = resolve_data(demo[0])
    hp = _hp(iterations=40, warmup_steps=0, max_wallclock_seconds=0.0, train_budget_seconds=12.0)
    with pytest.raises(BudgetExceeded, match="training budget exceeded"):
        train(hp, layout, tmp_path, clock=FakeClock(1.0))


def test_calibration_is_charged_to_the_training_budget(demo, tmp_path):
    layout = resolve_data(demo[0])
    hp = _hp()
    torch.manual_seed(0)
    model = GPT(hp.model_config(layout.vocab_size))
    log = RunLog(tmp_path / "train.log")
    hessians = calibrate(model, hp, layout, WallclockBudget("training", 600.0, clock=FakeClock(1.0)), torch.device("cpu"), log)
    assert len(hessians) == 3 * 6 + 2  # every block matrix + bigram.proj + ve_shared.proj
    assert hessians["blocks.0.attn.c_q.weight"].shape == (64, 64)
    spent = WallclockBudget("training", 600.0, clock=FakeClock(700.0))  # 700 s per reading
    with pytest.raises(BudgetExceeded, match="during calibration"):
        calibrate(model, hp, layout, spent, torch.device("cpu"), log)


# --- whole pipeline ---------------------------------------------------------------------------


@pytest.mark.slow
def test_smoke_pipeline_beats_the_unigram_baseline(demo, tmp_path):
    data, meta = demo
    out = tmp_path / "run"
    assert main(["train", "--preset", "smoke", "--data", str(data), "--out", str(out), "--seed", "7"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert set(run) == RUN_KEYS
    assert run["steps"] == 40 and run["seed"] == 7 and run["config"]["seed"] == 7
    assert run["artifact_bytes"] == run["code_bytes"] + run["model_bytes"] < 16_000_000
    assert run["model_bytes"] == (out / "final_model.int5.ptz").stat().st_size
    assert run["val_bpb"] < meta["unigram_val_bpb"] - 0.3
    for key in ("val_bpb_prequant", "val_bpb_sliding"):
        assert run[key] < meta["unigram_val_bpb"] - 0.3
    log = (out / "train.log").read_text()
    assert "\niterations: 40\n" in log and "class GPT(nn.Module)" in log  # hyperparameters + source
    assert len(TRAIN_LOSS.findall(log)) >= 10 and "final_ttt_s0_exact val_loss:" in log
    summary = parse_log(log)  # the auditor's log parser reads the same numbers back
    assert summary.val_bpb == pytest.approx(run["val_bpb"], abs=1e-7) and summary.steps == 40
    assert (summary.artifact_bytes, summary.code_bytes, summary.model_bytes) == (
        run["artifact_bytes"], run["code_bytes"], run["model_bytes"])
    assert summary.code_hash is not None and summary.config["iterations"] == "40"


@pytest.mark.slow
def test_two_rank_gloo_run_matches_one_rank_with_the_same_global_batch(demo, tmp_path, monkeypatch):
    data, _ = demo
    overrides = {"ITERATIONS": "6", "WARMDOWN_ITERS": "3", "TRAIN_LOG_EVERY": "1", "TTT_ENABLED": "0"}
    env = {**os.environ, **overrides, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    two = tmp_path / "two"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "golf", "train", "--preset", "smoke", "--data", str(data), "--out", str(two)],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for key, value in overrides.items():
        monkeypatch.setenv(key, value)
    one = tmp_path / "one"
    assert main(["train", "--preset", "smoke", "--data", str(data), "--out", str(one)]) == 0

    curves = [[float(x) for _, x in TRAIN_LOSS.findall((d / "train.log").read_text())] for d in (one, two)]
    assert len(curves[0]) == 6
    assert curves[1] == pytest.approx(curves[0], abs=2e-3)
    runs = [json.loads((d / "run.json").read_text()) for d in (one, two)]
    assert "world_size:2 grad_accum_steps:1" in (two / "train.log").read_text()
    for key in ("val_bpb_prequant", "val_bpb_sliding"):
        assert runs[1][key] == pytest.approx(runs[0][key], abs=2e-3)


@pytest.mark.gpu
def test_record_model_trains_compiled_in_bf16_and_late_qat_is_live_under_compile():
    hp = Hyperparameters.preset("record")
    torch.manual_seed(0)
    model = GPT(hp.model_config(1024)).cuda().train()
    opts = OptimizerSet(model, hp)
    compiled = torch.compile(model, dynamic=False)
    ids = torch.randint(0, 1024, (2, 2048), device="cuda")

    def loss() -> torch.Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            return compiled(ids, ids)

    losses = []
    for _ in range(3):
        opts.zero_grad()
        value = loss()
        value.backward()
        opts.step()
        losses.append(value.item())
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]
    with torch.no_grad():
        plain = loss().item()
        model.set_qat(True)  # the records' class flag was constant-folded by compile; ours must not be
        quantised = loss().item()
    assert abs(plain - quantised) > 1e-3
