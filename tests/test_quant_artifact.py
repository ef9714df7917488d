"""Packing rules, pruning through export, the compressed container round trip and the byte budget."""

import lzma

import pytest
import torch

from golf.errors import BudgetExceeded, GolfError
from golf.quant.artifact import (
    ARTIFACT_BUDGET_BYTES,
    ArtifactSize,
    check_artifact_budget,
    code_bytes,
    codec_of,
    compress,
    compressed_code_bytes,
    decompress,
    load_artifact,
    pack_artifact,
    self_extracting_code,
    serialize_state,
    shipped_code_bytes,
)
from golf.quant.pack import dequantize_state, quantize_state_dict, summarize
from golf.quant.prune import magnitude_prune_masks, zero_fraction


def smoke_like_state():
    """Shapes of the smoke GPT (reference.md 8.2/8.3) plus a non-float and a bf16 table."""
    gen = torch.Generator().manual_seed(0)
    sd = {
        "tok_emb.weight": (torch.randn(320, 64, generator=gen) * 0.02).to(torch.bfloat16),
        "bigram.embed.weight": torch.randn(128, 16, generator=gen) * 0.02,
        "bigram.proj.weight": torch.randn(64, 16, generator=gen),
        "blocks.0.attn.c_q.weight": torch.randn(64, 64, generator=gen) * 0.5,
        "blocks.0.attn.c_k.weight": torch.randn(32, 64, generator=gen) * 0.5,
        "blocks.0.mlp.fc.weight": torch.randn(224, 64, generator=gen) * 0.5,
        "blocks.0.mlp.proj.weight": torch.randn(64, 224, generator=gen) * 0.5,
        "blocks.0.attn.q_gain": torch.full((4,), 1.5),
        "bigram.scale": torch.tensor(0.05),
        "step": torch.tensor(40),
    }
    X64 = torch.randn(1000, 64, generator=gen)
    X224 = torch.relu(torch.randn(1000, 224, generator=gen))
    hessians = {n: X64.T @ X64 / 1000 for n in sd if n.startswith("blocks") and n.endswith(("c_q.weight", "c_k.weight", "fc.weight"))}
    hessians["blocks.0.mlp.proj.weight"] = X224.T @ X224 / 1000
    return sd, hessians


QUANT_ARGS = dict(passthrough_numel=1024, block_size=32)


@pytest.fixture(scope="module")
def packed():
    sd, hessians = smoke_like_state()
    return sd, quantize_state_dict(sd, hessians, prune_fraction=0.05, **QUANT_ARGS)


def test_each_entry_gets_its_kind_and_range(packed):
    sd, qs = packed
    kinds = {n: e.kind for n, e in qs.entries.items()}
    assert kinds == {
        "tok_emb.weight": "table", "bigram.embed.weight": "table", "bigram.proj.weight": "fp16",
        "blocks.0.attn.c_q.weight": "gptq", "blocks.0.attn.c_k.weight": "gptq",
        "blocks.0.mlp.fc.weight": "gptq", "blocks.0.mlp.proj.weight": "gptq",
        "blocks.0.attn.q_gain": "fp16", "bigram.scale": "fp16", "step": "raw",
    }
    for n, e in qs.entries.items():
        if e.kind == "gptq":
            assert e.q.dtype == torch.int8 and int(e.q.abs().max()) <= 15 and e.bits == 5
        if e.kind == "table":
            assert e.q.dtype == torch.int8 and int(e.q.abs().max()) <= 127
        if e.kind in ("gptq", "table"):
            assert e.scale.dtype == torch.float16 and e.scale.shape == (sd[n].shape[0],)


def test_pruning_survives_export(packed):
    sd, qs = packed
    masks = magnitude_prune_masks(sd, 0.05, 1024)
    assert set(masks) == {n for n, e in qs.entries.items() if e.kind in ("gptq", "table")}
    for name, keep in masks.items():
        assert abs((~keep).float().mean().item() - 0.05) < 0.001
        assert int((qs.entries[name].q[~keep] != 0).sum()) == 0, name
    assert zero_fraction(qs.integer_values()) >= 0.05
    summary = summarize(qs)
    assert summary["entries"] == {"raw": 1, "fp16": 3, "gptq": 4, "table": 2}
    assert summary["gptq_values"] == 64 * 64 + 32 * 64 + 2 * 224 * 64 and summary["gptq_rows"] == 384
    assert summary["gptq_zero_fraction"] >= 0.05 and summary["table_zero_fraction"] >= 0.05
    # a row whose max |w| is below 1 has every clip candidate below 1, so its scale is floored
    below_one = sum(int((sd[n].abs().amax(dim=1) < 1).sum()) for n, e in qs.entries.items() if e.kind == "gptq")
    assert 0 < below_one <= summary["gptq_rows_on_scale_floor"] < 384


def test_serialise_compress_decompress_dequantise_is_bit_identical(packed):
    sd, qs = packed
    evaluated = dequantize_state(qs)
    for codecs in (("zstd",), ("lzma",), ("zstd", "lzma")):
        blob = pack_artifact(qs, codecs)
        assert codec_of(blob) in codecs
        reloaded = dequantize_state(load_artifact(blob))
        assert list(reloaded) == list(sd)
        for name, t in evaluated.items():
            assert reloaded[name].dtype == sd[name].dtype and reloaded[name].shape == sd[name].shape
            assert torch.equal(reloaded[name].reshape(-1).view(torch.uint8), t.reshape(-1).view(torch.uint8))
    raw = serialize_state(qs)
    assert len(pack_artifact(qs)) == min(len(compress(raw, ("zstd",))), len(compress(raw, ("lzma",))))


def test_missing_hessian_and_corrupt_blobs_are_clear_errors(packed):
    sd, hessians = smoke_like_state()
    del hessians["blocks.0.mlp.fc.weight"]
    with pytest.raises(GolfError, match="blocks.0.mlp.fc.weight"):
        quantize_state_dict(sd, hessians, **QUANT_ARGS)
    blob = pack_artifact(packed[1], ("lzma",))
    with pytest.raises(GolfError, match="codec"):
        decompress(b"\x07" + blob[1:])
    with pytest.raises(GolfError, match="corrupt"):
        decompress(blob[:1] + blob[1:50])
    with pytest.raises(GolfError, match="format"):
        load_artifact(compress(b"\x02\x00\x00\x00{}"))


def test_budget_raises_naming_both_sizes():
    over = ArtifactSize(code_bytes=77_056, model_bytes=15_923_000)
    assert over.total == 16_000_056 and over.headroom == -56
    with pytest.raises(BudgetExceeded) as info:
        check_artifact_budget(over)
    message = str(info.value)
    assert "77,056" in message and "15,923,000" in message and "16,000,056" in message and "16,000,000" in message
    at_cap = ArtifactSize(code_bytes=77_056, model_bytes=ARTIFACT_BUDGET_BYTES - 77_056)
    assert check_artifact_budget(at_cap).headroom == 0  # "16,000,000 total bytes" is allowed
    assert check_artifact_budget(ArtifactSize(10, 20, budget=30)).total == 30


def test_code_sizes(tmp_path):
    source = 'print("naïve ✓")\n' + "x = [i * i for i in range(100)]\n" * 200
    main = tmp_path / "train_gpt.py"
    main.write_text(source, encoding="utf-8")
    helper = tmp_path / "helper.py"
    helper.write_text("y = 1\n", encoding="utf-8")
    assert code_bytes(main) == len(source.encode("utf-8")) == len(source) + 3  # ï takes 2 bytes, ✓ 3
    shim = self_extracting_code(source)
    assert compressed_code_bytes(main) == len(shim.encode("utf-8")) < code_bytes(main)
    assert shipped_code_bytes([main, helper]) == code_bytes(main) + 6
    scope = {}
    exec(self_extracting_code("x = [i * i for i in range(5)]\n"), scope)
    assert scope["x"] == [0, 1, 4, 9, 16]
    bad = tmp_path / "latin1.py"
    bad.write_bytes("é = 1\n".encode("latin-1"))
    with pytest.raises(GolfError, match="UTF-8"):
        code_bytes(bad)
    assert lzma  # the shim relies on the stdlib lzma module being importable
