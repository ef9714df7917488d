"""CUDA-style submissions (tests/fixtures/replay_cuda) replayed end to end on the CPU through the
CUDA emulation: written for H100s (CUDA required, NCCL, FlashAttention 3, bf16 autocast, fused
AdamW, Triton kernels, a 3.12 f-string, a loader thread), judged like any other replay.

A fixture's train_gpt.py is its variant.py followed by tests/fixtures/replay_cuda/_shared.py.
"""

from pathlib import Path

import pytest
from replay_fixture_kit import FixtureFamily

from audit.finding import verdict_of
from audit.replay import run_replay
from audit.replay.run import SYNTHETIC
from golf.errors import GolfError

FIXTURES = FixtureFamily(Path(__file__).parent / "fixtures" / "replay_cuda")
source = FIXTURES.source

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from golf.data.corpus import build_demo

    out = tmp_path_factory.mktemp("replay-cuda") / "data"
    build_demo(out, **SYNTHETIC)
    return out


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    """The folder of one fixture submission, its train_gpt.py assembled (replay_fixture_kit)."""
    return FIXTURES.folders(tmp_path_factory.mktemp("cuda-fixtures"))


def line_of(name: str, marker: str) -> int:
    return next(i + 1 for i, line in enumerate(source(name).splitlines()) if marker in line)


SHIMS = {"torch.cuda.is_available() true for the submission", "cuda-device-map", "autocast-cuda->cpu-fp32",
         "optimizer fused=True dropped", "flash_attn_interface stand-in (FA3 via sdpa)", "inference_mode->no_grad",
         "function modes entered in every thread", "Tensor.pin_memory as identity", "nvidia-smi stand-in on PATH",
         "f-string rewrite (2 sites)"}


def test_a_legal_cuda_style_submission_passes_with_every_shim_listed(data, fixture, tmp_path):
    outcome = run_replay(fixture("legal_ttt"), data=data, keep=tmp_path / "work")
    s = outcome.summary
    assert verdict_of(outcome.findings) == "PASS", [f.message for f in outcome.findings]
    assert abs(s["recomputed_val_bpb"] - s["reported_val_bpb"]) <= 1e-6 * s["reported_val_bpb"]
    assert s["counted_exactly_once"] == s["positions_counted"] == s["positions_scored"]
    assert SHIMS <= set(s["emulation"]), s["emulation"]
    # the eval's softcapped CE ran as a Triton kernel identified by its source; the fp32 one interpreted
    assert any(e.startswith("triton kernel") and e.endswith("-> torch softcapped CE forward") for e in s["emulation"])
    (interpreted,) = [k for k in s["opaque_calls"] if k.startswith("triton kernel")]
    assert f"{interpreted} interpreted (fp32)" in s["emulation"]
    (probe,) = s["probes"]
    assert probe["passed"] and probe["compared_positions"] > 1000
    assert s["network_attempts"] == 0
    # a 16-bit stream and the toy stream's full 4-gram index (8 + 4 bytes): the first-event tables are runs
    assert 14 <= s["ledger_bytes_per_position"] < 15
    log = (tmp_path / "work" / "run" / "stdout.txt").read_text()
    assert "gpus:1" in log and "emulated CUDA device" in log and "replay" in log  # the 3.12 f-string's value


@pytest.mark.parametrize("unpack, nproc", [
    ("exec(L.decompress(B.b85decode(P)))", 1),
    # compiled under a file name of its own first, at module level: exec's namespace is the module's
    ("S=L.decompress(B.b85decode(P)).decode()\nF=__file__+'.__decompressed__.py'\nexec(compile(S,F,'exec'))", 1),
    # every rank unpacks to the same file, so the ranks' scoring sites are one pass
    ("exec(L.decompress(B.b85decode(P)))", 2),
])
def test_a_self_unpacking_submission_is_replayed_from_the_source_it_execs(data, tmp_path, unpack, nproc):
    import base64
    import lzma

    packed = base64.b85encode(lzma.compress(source("legal_ttt").encode())).decode()
    (tmp_path / "train_gpt.py").write_text(f'import lzma as L,base64 as B\nP="{packed}"\n{unpack}\n')
    outcome = run_replay(tmp_path, data=data, probes=False, nproc=nproc)
    s = outcome.summary
    assert verdict_of(outcome.findings) == "PASS", [f.message for f in outcome.findings]
    assert s["ranks"] == nproc and s["counted_exactly_once"] == s["positions_counted"] == s["positions_scored"]
    assert abs(s["recomputed_val_bpb"] - s["reported_val_bpb"]) <= 1e-6 * s["reported_val_bpb"]
    assert {"exec'd source unpacked to train_gpt.exec1.py", "f-string rewrite in train_gpt.exec1.py (2 sites)"} <= set(s["emulation"])
    assert "train_gpt.exec1.py" in s["counted_pass"]["site"]


def test_an_illegal_cuda_style_submission_still_fails_with_its_rule(data, fixture):
    outcome = run_replay(fixture("ttt_before_score"), data=data, probes=False)
    assert verdict_of(outcome.findings) == "FAIL"
    errors = {(f.rule, f.line) for f in outcome.findings if f.severity == "error"}
    assert ("TTT-1", line_of("ttt_before_score", "# <- TRAIN STEP")) in errors, errors


def test_two_ranks_under_torchrun_with_nccl_served_by_gloo(data, fixture):
    outcome = run_replay(fixture("legal_ttt"), data=data, nproc=2, probes=False)
    s = outcome.summary
    assert verdict_of(outcome.findings) == "PASS", [f.message for f in outcome.findings]
    assert s["ranks"] == 2 and "nccl->gloo" in s["emulation"]
    assert s["counted_exactly_once"] == s["positions_counted"] == s["positions_scored"]


def test_a_half_precision_triton_kernel_without_equivalent_is_a_finding(data, fixture):
    outcome = run_replay(fixture("triton_half"), data=data, probes=False)
    (gap,) = [f for f in outcome.findings if f.code == "RP071"]
    assert "half_scale_kernel" in gap.message and gap.severity == "warning"


def test_syntax_this_python_cannot_compile_is_a_finding(data, fixture):
    outcome = run_replay(fixture("syntax_312"), data=data, probes=False)
    (gap,) = [f for f in outcome.findings if f.code == "RP070"]
    assert "line 2" in gap.message
    assert outcome.summary["emulation"] == [s for s in outcome.summary["emulation"] if "stand-in" in s]  # nothing ran


def test_without_emulation_the_submission_sees_the_machine_as_it_is(data, fixture):
    # GOLF_REPLAY_EMULATE=0 is the CUDA machine's path: no shim, so here the FlashAttention import stops it
    with pytest.raises(GolfError, match="imports flash_attn_interface, which is not installed here"):
        run_replay(fixture("legal_ttt"), data=data, probes=False, env={"GOLF_REPLAY_EMULATE": "0"})
