"""golf.model: the PR #1004 architecture component by component, on small CPU configs."""

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from golf.config import Hyperparameters
from golf.model import (
    GPT,
    QAT_QMAX,
    QAT_QMIN,
    BlockLinear,
    ModelConfig,
    Rotary,
    exclude_self_value,
    fake_quantize_rows,
    ntk_rope_base,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py

SMALL = Hyperparameters.preset("smoke").model_config(vocab_size=96)


def small_model(**changes) -> GPT:
    torch.manual_seed(0)
    return GPT(dataclasses.replace(SMALL, **changes))


def test_record_config_has_33_580_124_parameters_and_6144_bucket_variant():
    record = Hyperparameters.preset("record").model_config(vocab_size=1024)
    with torch.device("meta"):
        assert sum(p.numel() for p in GPT(record).parameters()) == 33_580_124
        b6 = dataclasses.replace(record, bigram_vocab_size=6144)
        assert sum(p.numel() for p in GPT(b6).parameters()) == 33_317_980
        block = GPT(record).blocks[0]
    assert sum(p.numel() for p in block.parameters()) == 2_885_640


def test_xsa_removes_the_component_along_the_own_value_per_kv_group():
    torch.manual_seed(0)
    B, T, H, Hkv, h = 2, 5, 4, 2, 8
    y, v = torch.randn(B, T, H, h), torch.randn(B, T, Hkv, h)
    out = exclude_self_value(y, v)
    v_hat = F.normalize(v, dim=-1).repeat_interleave(H // Hkv, dim=2)  # head g -> kv group g // 2
    assert torch.allclose((out * v_hat).sum(-1), torch.zeros(B, T, H), atol=1e-5)
    # only that one component is removed: the orthogonal part of y is untouched
    assert torch.allclose(out, y - (y * v_hat).sum(-1, keepdim=True) * v_hat, atol=1e-6)


def test_ntk_rope_base_at_2048_with_16_rope_dims_and_train_length_1024():
    assert ntk_rope_base(10000.0, 2048, 1024, 16) == pytest.approx(22082, abs=1.0)
    assert ntk_rope_base(10000.0, 1024, 1024, 16) == 10000.0
    assert ntk_rope_base(10000.0, 128, 1024, 8) == 10000.0
    rotary = Rotary(rope_dims=16, base=10000.0, train_seq_len=1024)
    cos, _ = rotary.cos_sin(2048, torch.device("cpu"))
    # position 1, frequency j = 1: angle = base_eff^(-2/16)
    assert cos[0, 1, 0, 1].item() == pytest.approx(math.cos(22082.0 ** (-2 / 16)), abs=1e-5)


def test_partial_rope_rotates_only_the_first_dims_and_keeps_their_norm():
    torch.manual_seed(0)
    rotary = Rotary(rope_dims=8, base=10000.0, train_seq_len=1024)
    x = torch.randn(2, 12, 3, 32)
    out = rotary(x)
    assert torch.equal(out[..., 8:], x[..., 8:])
    assert torch.allclose(out[..., :8].norm(dim=-1), x[..., :8].norm(dim=-1), atol=1e-5)
    assert torch.equal(out[:, 0], x[:, 0])  # position 0: angle 0
    assert not torch.allclose(out[:, 1:, :, :8], x[:, 1:, :, :8])


@pytest.mark.parametrize("kv_heads", [2, 4])  # the GQA path of XSA and plain multi-head attention
def test_perturbing_a_later_token_leaves_earlier_logits_unchanged(kv_heads):
    model = small_model(num_kv_heads=kv_heads).eval()
    # give the zero-initialised parts weight so that every component carries signal
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ids = torch.randint(0, 96, (2, 40))
    changed = ids.clone()
    changed[:, 25] = (changed[:, 25] + 7) % 96
    with torch.no_grad():
        a, b = model.forward_logits(ids), model.forward_logits(changed)
    assert torch.allclose(a[:, :25], b[:, :25], atol=1e-5)
    assert not torch.allclose(a[:, 25:], b[:, 25:], atol=1e-3)


def test_bigram_hash_bucket_formula():
    bigram = small_model(bigram_vocab_size=128).bigram
    ids = torch.tensor([[5, 17, 1000, 17, 0]])
    expected = [127] + [((36313 * t) ^ (27191 * p)) % 127 for p, t in zip([5, 17, 1000, 17], [17, 1000, 17, 0])]
    assert bigram.bucket_ids(ids).tolist() == [expected]
    # the table and so the bigram's contribution start at zero
    assert torch.count_nonzero(bigram(ids)) == 0


def test_unet_skips_are_last_in_first_out():
    model = small_model(num_layers=5, ve_layers=()).eval()  # 2 encoder, 3 decoder blocks
    with torch.no_grad():
        model.skip_weights[0].fill_(2.0)
        model.skip_weights[1].fill_(3.0)
    inputs, outputs = {}, {}
    for i, block in enumerate(model.blocks):
        block.register_forward_pre_hook(lambda m, args, i=i: inputs.__setitem__(i, args[0]))
        block.register_forward_hook(lambda m, args, out, i=i: outputs.__setitem__(i, out))
    with torch.no_grad():
        model.forward_logits(torch.randint(0, 96, (1, 16)))
    assert torch.allclose(inputs[2], outputs[1] + 2.0 * outputs[1])  # decoder 0 <- encoder 1
    assert torch.allclose(inputs[3], outputs[2] + 3.0 * outputs[0])  # decoder 1 <- encoder 0
    assert torch.equal(inputs[4], outputs[3])  # decoder 2: stack empty


def test_initialisation_rules():
    model = small_model()
    n = model.config.num_layers
    assert model.tok_emb.weight.std().item() == pytest.approx(0.005, rel=0.1)
    for block in model.blocks:
        assert torch.count_nonzero(block.attn.proj.weight) == 0
        assert torch.count_nonzero(block.mlp.proj.weight) == 0
        w = block.attn.c_q.weight
        assert torch.allclose(w @ w.T, torch.eye(w.shape[0]), atol=1e-5)
    p = model.bigram.proj.weight  # (64, 16): orthogonal columns, times 1/sqrt(2L)
    assert torch.allclose(p.T @ p, torch.eye(16) / (2 * n), atol=1e-5)
    assert model.blocks[0].attn.q_gain.tolist() == [1.5] * 4
    assert model.bigram.scale.item() == pytest.approx(0.05) and model.ve_shared.scale.item() == pytest.approx(0.1)
    # the record rule (both dims >= 64) leaves the 16-wide projection at zero
    assert torch.count_nonzero(small_model(ortho_init_min_dim=64).bigram.proj.weight) == 0


def test_forward_is_the_mean_cross_entropy_of_soft_capped_logits():
    model = small_model()
    ids, targets = torch.randint(0, 96, (2, 16)), torch.randint(0, 96, (2, 16))
    z = model.forward_logits(ids)
    capped = 30.0 * torch.tanh(z / 30.0)
    assert model.logit_softcap == 30.0
    assert torch.allclose(model(ids, targets), F.cross_entropy(capped.flatten(0, 1), targets.flatten()), atol=1e-6)
    assert torch.allclose(model.token_nll(ids, targets).mean(), model(ids, targets), atol=1e-6)


def test_late_qat_changes_the_training_forward_only_and_passes_gradients_straight_through():
    model = small_model()
    with torch.no_grad():
        for block in model.blocks:  # non-zero output projections so that every matrix matters
            block.attn.proj.weight.normal_(std=0.05)
            block.mlp.proj.weight.normal_(std=0.05)
    ids, targets = torch.randint(0, 96, (2, 16)), torch.randint(0, 96, (2, 16))
    model.train()
    plain = model(ids, targets)
    model.set_qat(True)
    quantised = model(ids, targets)
    assert abs(plain.item() - quantised.item()) > 1e-4
    quantised.backward()
    assert all(block.attn.c_q.weight.grad.abs().sum() > 0 for block in model.blocks)
    model.eval()
    assert torch.allclose(model(ids, targets), plain, atol=1e-6)


def test_fake_quant_grid_is_int5_with_row_scales():
    torch.manual_seed(0)
    w = torch.randn(6, 300) * torch.tensor([0.001, 0.1, 1.0, 3.0, 10.0, 0.5])[:, None]
    w[3, 0] = -100.0  # an outlier beyond the 0.9995 row quantile is clipped to the grid's end
    wq = fake_quantize_rows(w)
    delta = (torch.quantile(w.abs(), 0.9995, dim=1) / QAT_QMAX).clamp_min(1 / QAT_QMAX)
    codes = wq / delta[:, None]
    assert torch.allclose(codes, codes.round(), atol=1e-4)
    assert codes.min() >= QAT_QMIN - 1e-4 and codes.max() <= QAT_QMAX + 1e-4
    assert codes[3, 0] == QAT_QMIN
    assert torch.all(codes[0] == 0)  # tiny rows: the 1/15 floor on the step rounds them to 0


def test_every_component_can_be_switched_off():
    bare = dataclasses.replace(
        SMALL, bigram_vocab_size=0, smear_gate=False, xsa_last_n=0, ve_layers=(), unet_skips=False,
        resid_mix=False, rope_dims=0, qk_norm=False, ln_scale=False, negative_slope=0.5, tie_embeddings=False,
    )
    torch.manual_seed(0)
    model = GPT(bare)
    names = {n for n, _ in model.named_parameters()}
    assert not any(k in n for n in names for k in ("bigram", "smear", "ve_", "skip", "resid_mix"))
    assert "lm_head.weight" in names
    assert not any(b.attn.xsa for b in model.blocks) and model.blocks[0].attn.rotary is None
    ids = torch.randint(0, 96, (2, 16))
    assert torch.isfinite(model(ids, ids))
    assert [b.attn.xsa for b in small_model(xsa_last_n=1).blocks] == [False, False, True]


def test_block_matrices_and_scale_names_match_what_ttt_and_quant_select():
    model = small_model()
    names = [n for n, _ in model.named_parameters()]
    scales = sorted(n for n in names if "scale" in n)
    assert scales == sorted(
        [f"blocks.{i}.{s}" for i in range(3) for s in ("attn_scale", "mlp_scale")]
        + ["bigram.scale", "ve_shared.scale", "ve_layer_scales.0", "ve_layer_scales.1"]
    )
    block_linears = [n for n, m in model.named_modules() if isinstance(m, BlockLinear)]
    assert block_linears == [f"blocks.{i}.{k}" for i in range(3)
                             for k in ("attn.c_q", "attn.c_k", "attn.c_v", "attn.proj", "mlp.fc", "mlp.proj")]


def test_model_config_rejects_value_embedding_layers_outside_the_model():
    with pytest.raises(ValueError, match="value-embedding layers"):
        GPT(dataclasses.replace(SMALL, ve_layers=(5,)))


def test_model_config_defaults_are_the_record_model():
    assert ModelConfig().mlp_hidden == 1792 and ModelConfig().head_dim == 64
    assert ModelConfig().xsa_layers() == tuple(range(11))


@pytest.mark.slow
def test_record_model_runs_forward_and_backward_at_its_real_shapes():
    torch.manual_seed(0)
    model = GPT(Hyperparameters.preset("record").model_config(vocab_size=1024))
    assert [model.blocks[i].attn.c_k.weight.shape for i in (0, 10)] == [(512, 512)] * 2
    ids = torch.randint(0, 1024, (1, 64))
    loss = model(ids, torch.roll(ids, -1, dims=1))
    assert abs(loss.item() - math.log(1024)) < 1.0  # near uniform at init (zero output projections)
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is not None for g in grads.values())  # every parameter is in the graph
    # the zero-initialised output projections learn first; behind them (q/k/v, VE) nothing moves yet
    assert grads["blocks.10.attn.proj.weight"].abs().sum() > 0 and grads["tok_emb.weight"].abs().sum() > 0
    assert grads["blocks.10.attn.c_q.weight"].abs().sum() == 0 and grads["ve_shared.embed.weight"].abs().sum() == 0


def test_smear_gate_does_not_cross_a_document_boundary():
    from golf.model import SmearGate

    torch.manual_seed(0)
    gate = SmearGate(8, bos_id=1)
    x = torch.randn(1, 5, 8)
    ids = torch.tensor([[1, 7, 9, 1, 4]])
    out = gate(x, ids)
    # BOS positions keep only their own (gated) input; others mix in their predecessor
    g = torch.sigmoid(gate.gate)
    assert torch.allclose(out[0, 3], (1 - g) * x[0, 3])
    assert torch.allclose(out[0, 2], (1 - g) * x[0, 2] + g * x[0, 1])
    unmasked = SmearGate(8, bos_id=None)
    unmasked.load_state_dict(gate.state_dict())
    assert not torch.allclose(unmasked(x, ids)[0, 3], out[0, 3])
