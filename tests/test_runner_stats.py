"""Seed statistics and the two significance rules, against scipy and hand-computed values."""

import json
import math

import pytest
from scipy import stats as scipy_stats

from audit.runner.stats import Sample, record_sample, significance, summarize
from golf.errors import GolfError


def _t_cdf_df2(t: float) -> float:
    """Student t CDF with 2 degrees of freedom in closed form: 1/2 + t / (2 sqrt(2 + t^2))."""
    return 0.5 + t / (2 * math.sqrt(2 + t * t))


def test_mean_and_sample_std():
    s = Sample("x", [1.10, 1.11, 1.12])
    assert s.mean() == pytest.approx(1.11)
    assert s.std() == pytest.approx(0.01)  # n - 1 in the denominator
    assert Sample("x", [1.2]).std() is None


def test_against_a_single_number_matches_hand_values():
    # val_loss = 2 * val_bpb: one bpb is worth 2 nats per token, so 0.005 nats = 0.0025 bpb
    new = Sample("new", [1.10, 1.11, 1.12], [2.20, 2.22, 2.24])
    readme, frontier = significance(new, Sample("rec", [1.13]))
    se = 0.01 / math.sqrt(3)
    assert frontier.test == "one-sample" and frontier.margin_bpb == 0
    assert frontier.statistic == pytest.approx((1.11 - 1.13) / se)
    assert frontier.p_value == pytest.approx(_t_cdf_df2((1.11 - 1.13) / se))  # 0.0371
    assert frontier.passed is True  # p < 0.25
    assert readme.margin_bpb == pytest.approx(0.0025)
    assert readme.p_value == pytest.approx(_t_cdf_df2((1.11 - 1.1275) / se))  # 0.0469
    assert readme.passed is False  # not p < 0.01


def test_welch_against_seed_sample_matches_scipy_and_formula():
    new = Sample("new", [1.0800, 1.0815, 1.0790, 1.0805], [2.79, 2.794, 2.787, 2.791])
    rec = Sample("rec", [1.0850, 1.0870, 1.0840])
    readme, frontier = significance(new, rec)
    factor = sum(l / b for l, b in zip(new.val_loss, new.bpb)) / 4
    margin = 0.005 / factor
    expected = scipy_stats.ttest_ind([b + margin for b in new.bpb], rec.bpb, equal_var=False, alternative="less")
    assert readme.test == "welch" and readme.p_value == pytest.approx(expected.pvalue)
    # Welch by hand: t = (m1 - m2) / sqrt(v1/n1 + v2/n2), Welch-Satterthwaite degrees of freedom
    v1, v2 = new.std() ** 2 / 4, rec.std() ** 2 / 3
    t = (new.mean() - rec.mean()) / math.sqrt(v1 + v2)
    df = (v1 + v2) ** 2 / (v1**2 / 3 + v2**2 / 2)
    assert frontier.statistic == pytest.approx(t)
    assert frontier.p_value == pytest.approx(scipy_stats.t.cdf(t, df))
    assert frontier.passed is True


def test_a_worse_candidate_fails_both_and_one_seed_has_no_test():
    worse = significance(Sample("n", [1.20, 1.21, 1.22]), Sample("r", [1.13]))
    assert [s.passed for s in worse] == [False, False]
    assert worse[1].p_value > 0.99
    single = significance(Sample("n", [1.0]), Sample("r", [1.13]))
    assert [s.passed for s in single] == [None, None] and "2 seeds" in single[0].note


def test_summary_states_the_conversion():
    out = summarize(Sample("n", [1.10, 1.11, 1.12]), Sample("r", [1.13]))
    assert out["nats_per_bpb"] == pytest.approx(math.log(2)) and "ln 2" in out["conversion"]
    assert out["improvement_bpb"] == pytest.approx(0.02)
    assert out["improvement_nats"] == pytest.approx(0.02 * math.log(2))
    assert len(out["significance"]) == 2


def test_record_sample_from_number_folder_and_errors(tmp_path):
    assert record_sample("1.1147").bpb == [1.1147]
    (tmp_path / "submission.json").write_text(json.dumps(
        {"val_bpb": 1.1, "seed_results": {"1": {"val_bpb": 1.09}, "2": {"val_bpb": 1.11}}}))
    assert record_sample(str(tmp_path)).bpb == [1.09, 1.11]
    with pytest.raises(GolfError):
        record_sample(str(tmp_path / "missing"))
