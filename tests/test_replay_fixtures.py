"""Replays of the fixture submissions (tests/fixtures/replay/*): the legal one passes, every illegal one
fails with its rule id at the line its `# <- EXPECT RULE` comment marks.

A fixture folder holds either a whole train_gpt.py or only its variant.py; a run gets one file,
train_gpt.py = variant.py followed by tests/fixtures/replay/_shared.py, and the expected lines are
those of that assembled file.

Each replay runs the fixture's train_gpt.py in a subprocess on small shards in the real format
(golf.data.corpus, vocab 384), training included; the probe run (C1) is made only where it is the
mechanism under test, to keep the suite short.
"""

import json
import re
from pathlib import Path

import pytest
from replay_fixture_kit import FixtureFamily

from audit.finding import verdict_of
from audit.replay import run_replay
from audit.replay.invariants import Locator, analyze
from audit.replay.ledger import load_ledgers
from audit.replay.run import SYNTHETIC
from golf.data.tokenizer import build_byte_luts, load_tokenizer

FIXTURES = FixtureFamily(Path(__file__).parent / "fixtures" / "replay")
source = FIXTURES.source
EXPECT = re.compile(r"# <- EXPECT (\S+)")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from golf.data.corpus import build_demo

    out = tmp_path_factory.mktemp("replay") / "data"
    meta = build_demo(out, **SYNTHETIC)
    assert meta["tokens"]["val"] > 6 * 1024  # several TTT chunks of the fixtures (1024 tokens each)
    return out


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    """The folder of one fixture submission, its train_gpt.py assembled (replay_fixture_kit)."""
    return FIXTURES.folders(tmp_path_factory.mktemp("fixtures"))


def expected(name: str) -> set[tuple[str, int]]:
    lines = source(name).splitlines()
    return {(m.group(1), i + 1) for i, line in enumerate(lines) if (m := EXPECT.search(line))}


def errors(outcome) -> set[tuple[str, int]]:
    return {(f.rule, f.line) for f in outcome.findings if f.severity == "error"}


def test_legal_score_first_ttt_passes_with_its_score_recomputed(data, fixture, tmp_path):
    folder = fixture("legal_ttt")
    outcome = run_replay(folder, data=data, keep=tmp_path / "work")
    s = outcome.summary
    assert verdict_of(outcome.findings) == "PASS", [f.message for f in outcome.findings]
    assert abs(s["recomputed_val_bpb"] - s["reported_val_bpb"]) <= 1e-6 * s["reported_val_bpb"]
    assert s["counted_exactly_once"] == s["positions_counted"] == s["positions_scored"]
    assert s["never_counted"] == s["truncated_tail"] < 2048
    assert s["updates_using_val"] == 6 and s["first_violation"] is None
    (probe,) = s["probes"]
    assert probe["passed"] and probe["compared_positions"] > 1000 and probe["distributions_compared"] == 5
    assert [e["kind"] for e in s["timeline"]][:4] == ["score", "score", "update", "score"]
    assert s["network_attempts"] == 0 and 0 < s["eval_seconds"] < 600
    json.dumps(s)  # goes into the audit JSON as it is

    # the same ledger judged against a budget it cannot meet
    ledgers = load_ledgers(tmp_path / "work" / "run" / "ledgers")
    luts = build_byte_luts(load_tokenizer(data / "tokenizer.model"))
    log = (tmp_path / "work" / "run" / "stdout.txt").read_text()
    import numpy as np
    from golf.data.shards import read_shard

    stream = np.asarray(read_shard(data / "fineweb_val_000000.bin")).astype(np.int64)
    locator = Locator(str(folder), str(folder / "train_gpt.py"))
    findings, _, _ = analyze(ledgers, log, stream, luts, locator, eval_budget_s=0.0)
    assert {f.rule for f in findings} == {"BUD-E"}


def test_records_style_sliding_windows_count_each_position_once(data, fixture):
    findings, summary = run_replay(fixture("legal_sliding"), data=data, probes=False)
    assert verdict_of(findings) == "PASS", [f.message for f in findings]
    assert summary["counted_pass"]["variant"] == "reduced"  # each window sums only its last rows
    assert summary["counted_exactly_once"] == summary["positions_counted"] == summary["positions_scored"]
    assert abs(summary["recomputed_val_bpb"] - summary["reported_val_bpb"]) <= 1e-6 * summary["reported_val_bpb"]


def test_per_document_ttt_over_shuffled_batches_is_one_pass(data, fixture):
    # each batch starts again before the previous one: still one evaluation, scored before each step
    outcome = run_replay(fixture("legal_batched_doc_ttt"), data=data, probes=False)
    s = outcome.summary
    assert verdict_of(outcome.findings) == "PASS", [f.message for f in outcome.findings]
    assert s["counted_pass"]["match"] == "match" and s["first_violation"] is None
    assert s["counted_exactly_once"] == s["positions_counted"] == s["positions_scored"]
    assert s["updates_using_val"] >= 2  # one step per batch (the demo data holds a few long documents)


@pytest.mark.parametrize("name", [
    "rescore_s1", "temperature_rescore", "ttt_before_score", "adapt_after_diagnostic_eval", "calib_on_val", "skip_tokens", "count_twice",
    "wrong_byte_lut", "ngram_unnormalised", "ngram_target_only", "numpy_blend_after_warmup", "network_call",
    "batched_doc_ttt_train_first", "warmup_trains_the_model",
])
def test_each_illegal_fixture_fails_with_its_rule_at_its_line(data, fixture, name):
    outcome = run_replay(fixture(name), data=data, probes=False)
    assert verdict_of(outcome.findings) == "FAIL"
    without_probe = {(rule, line) for rule, line in expected(name) if rule != "C1"}
    assert without_probe and without_probe <= errors(outcome), [(f.rule, f.line, f.message) for f in outcome.findings]
    if name == "network_call":  # a socket and a download tool started as a child process
        assert outcome.summary["network_attempts"] == 2


def test_non_causal_attention_fails_the_perturbation_probe(data, fixture):
    outcome = run_replay(fixture("noncausal_attention"), data=data)
    assert expected("noncausal_attention") <= errors(outcome)
    (probe,) = outcome.summary["probes"]
    assert not probe["passed"] and probe["changed_positions"] > 0 and probe["distributions_changed"] > 0


def test_two_rank_torchrun_replay_merges_every_ranks_ledger(data, fixture):
    outcome = run_replay(fixture("legal_ttt_ddp"), data=data, nproc=2, probes=False)
    s = outcome.summary
    assert verdict_of(outcome.findings) == "PASS", [f.message for f in outcome.findings]
    assert s["ranks"] == 2 and s["counted_exactly_once"] == s["positions_counted"] == s["positions_scored"]
    assert abs(s["recomputed_val_bpb"] - s["reported_val_bpb"]) <= 1e-6 * s["reported_val_bpb"]
    assert s["updates_using_val"] == 12  # 6 TTT steps on each rank


def test_bad_inputs_and_a_crashing_submission_are_one_line_errors(data, fixture, tmp_path):
    from golf.errors import GolfError

    with pytest.raises(GolfError, match="no train_gpt.py"):
        run_replay(tmp_path, data=data)
    with pytest.raises(GolfError, match="not found"):
        run_replay(fixture("legal_ttt"), data=tmp_path / "missing")
    (tmp_path / "train_gpt.py").write_text("raise RuntimeError('no GPU here')\n")
    with pytest.raises(GolfError, match="failed \\(exit code 1\\): RuntimeError: no GPU here"):
        run_replay(tmp_path, data=data, probes=False)
    (tmp_path / "train_gpt.py").write_text("import a_package_nobody_installed.ops\n")
    with pytest.raises(GolfError, match="imports a_package_nobody_installed, which is not installed here"):
        run_replay(tmp_path, data=data, probes=False)


def test_rescore_after_score_first_ttt_is_ttt2_and_after_an_adaptation_phase_is_ttt1(data, fixture):
    # both report a pass scored after the model trained on its tokens; what differs is whether the
    # training came inside a pass that scored each chunk first (s_1, TTT-2) or in a phase of its own
    # after a diagnostic evaluation had ended (training on unscored tokens, TTT-1)
    s1 = run_replay(fixture("rescore_s1"), data=data, probes=False)
    adapted = run_replay(fixture("adapt_after_diagnostic_eval"), data=data, probes=False)
    assert {f.code for f in s1.findings if f.severity == "error"} == {"RP021"}
    assert {f.code for f in adapted.findings if f.severity == "error"} == {"RP022"}
    assert adapted.summary["first_violation"]["rule"] == "TTT-1"


def test_sliding_windows_leaving_the_first_window_unscored_warn(data, fixture):
    outcome = run_replay(fixture("sliding_first_window_head"), data=data, probes=False)
    s = outcome.summary
    assert verdict_of(outcome.findings) == "WARN", [(f.code, f.severity, f.message) for f in outcome.findings]
    assert [f.code for f in outcome.findings if f.severity == "warning"] == ["RP010"]
    assert s["unscored_head"] == 64 - 16 and 0 < s["truncated_tail"] < 64


def test_a_warm_up_on_a_throw_away_adapter_is_a_ttt4_warning_not_ttt1(data, fixture):
    outcome = run_replay(fixture("warmup_throwaway_adapter"), data=data, probes=False)
    s = outcome.summary
    assert verdict_of(outcome.findings) == "WARN", [(f.code, f.severity, f.message) for f in outcome.findings]
    (warning,) = [f for f in outcome.findings if f.severity == "warning"]
    line = next(i + 1 for i, text in enumerate(source("warmup_throwaway_adapter").splitlines()) if "EXPECT-WARNING TTT-4" in text)
    assert (warning.code, warning.rule, warning.line) == ("RP023", "TTT-4", line)
    assert s["discarded_updates"] == 2 and s["first_violation"] is None


def test_a_byte_level_model_replays_on_byte_data_with_one_byte_per_token(fixture):
    outcome = run_replay(fixture("byte_level"), probes=False)
    s = outcome.summary
    assert s["data"] == {"vocab_size": 256, "synthetic": True, "caseops": False}
    assert verdict_of(outcome.findings) == "PASS", [(f.code, f.message) for f in outcome.findings]
    assert abs(s["recomputed_val_bpb"] - s["reported_val_bpb"]) <= 1e-6 * s["reported_val_bpb"]
    assert s["canonical_bytes"] == s["positions_counted"] == s["positions_in_stream"]
