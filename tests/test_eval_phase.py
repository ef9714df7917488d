"""The evaluation phase: its budget, what it reports and the log lines the run-log parser reads."""

import dataclasses

import pytest

from audit.runner.logs import parse_log
from eval_tiny_lm import fake_luts, patterned_tokens, tiny_model
from golf.budget import WallclockBudget
from golf.config import Hyperparameters
from golf.errors import BudgetExceeded
from golf.eval.phase import run_evaluation


@pytest.fixture
def hp():
    # the smoke preset's evaluation and TTT knobs (context 128, stride 32, 1,024-token chunks)
    return dataclasses.replace(Hyperparameters.preset("smoke"), ttt_epochs=1)


@pytest.fixture(scope="module")
def data():
    return patterned_tokens(4 * 1024 + 1), fake_luts()


def test_reports_s0_as_val_bpb_and_logs_it_last(hp, data):
    lines = []
    built = []
    result = run_evaluation(lambda: built.append(1) or tiny_model(), *data, hp, log=lines.append)
    assert built == [1]
    assert result["val_bpb"] != result["val_bpb_sliding"]
    assert result["ttt_chunks"] == 4 and result["ttt_trained_chunks"] == 3 and result["scored_tokens"] == 4096
    assert result["eval_seconds"] >= result["ttt_seconds"] > 0
    summary = parse_log("\n".join(lines))
    assert summary.val_bpb == pytest.approx(result["val_bpb"], abs=1e-8)
    assert summary.score_label == "final_ttt_s0_exact"


def test_without_ttt_the_sliding_score_is_reported(hp, data):
    lines = []
    result = run_evaluation(tiny_model(), *data, dataclasses.replace(hp, ttt_enabled=False), log=lines.append)
    assert result["val_bpb"] == result["val_bpb_sliding"]
    assert "ttt_seconds" not in result
    assert parse_log("\n".join(lines)).score_label == "final_sliding_window_exact"


def test_model_loading_is_charged_to_the_budget(hp, data):
    now = [0.0]
    budget = WallclockBudget("evaluation", 600.0, clock=lambda: now[0])

    def slow_load():
        now[0] += 601.0  # decompression + dequantisation that ate the whole budget
        return tiny_model()

    with pytest.raises(BudgetExceeded, match="model load"):
        run_evaluation(slow_load, *data, hp, budget=budget)


def test_budget_spent_during_ttt_fails_loudly(hp, data):
    ticks = iter(range(1000))
    budget = WallclockBudget("evaluation", 2.5, clock=lambda: float(next(ticks)))
    with pytest.raises(BudgetExceeded, match="TTT chunk 1"):
        run_evaluation(tiny_model(), *data, hp, budget=budget, sliding=False)
