"""golf.optim: Newton-Schulz, Muon's update rule, parameter groups, schedules and EMA."""

import pytest
import torch

from golf.config import Hyperparameters
from golf.model import GPT
from golf.optim import EMA, Muon, OptimizerSet, lr_multiplier, muon_momentum_at, newton_schulz5, parameter_groups

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


@pytest.mark.parametrize("shape", [(64, 128), (128, 64), (224, 64)])
def test_newton_schulz5_orthogonalises_into_the_known_singular_value_band(shape):
    torch.manual_seed(0)
    G = torch.randn(*shape)
    X = newton_schulz5(G)
    assert X.dtype == torch.bfloat16 and X.shape == G.shape
    s = torch.linalg.svdvals(X.float())
    # the quintic's fixed band: every singular value lands in about [0.68, 1.14], not at exactly 1
    assert s.min() > 0.6 and s.max() < 1.2
    U, _, Vh = torch.linalg.svd(G, full_matrices=False)
    polar = U @ Vh
    cosine = (X.float() * polar).sum() / (X.float().norm() * polar.norm())
    assert cosine > 0.98


def test_muon_step_is_nesterov_ns5_with_aspect_scaling_and_decoupled_decay():
    torch.manual_seed(0)
    W = torch.nn.Parameter(torch.randn(32, 16))
    W0 = W.detach().clone()
    G = torch.randn(32, 16)
    opt = Muon([W], lr=0.1, momentum=0.9, backend_steps=5, weight_decay=0.5)
    W.grad = G.clone()
    opt.step()
    update = newton_schulz5(G + 0.9 * G).float() * 2 ** 0.5  # buf = G, Nesterov g = G + mu buf; sqrt(32/16)
    expected = W0 * (1 - 0.1 * 0.5) - 0.1 * update.bfloat16().float()
    assert torch.allclose(W.detach(), expected, atol=1e-6)
    W.grad = G.clone()
    opt.step()  # the momentum buffer carries over: buf = 0.9 G + G
    assert torch.allclose(opt.state[W]["momentum_buffer"], 1.9 * G)


def test_parameter_groups_of_the_record_model():
    record = Hyperparameters.preset("record").model_config(vocab_size=1024)
    with torch.device("meta"):
        model = GPT(record)
    groups = {k: [n for n, _ in v] for k, v in parameter_groups(model).items()}
    assert sorted(groups["token"]) == ["bigram.embed.weight", "tok_emb.weight", "ve_shared.embed.weight"]
    assert len(groups["matrix"]) == 11 * 6 + 2
    assert {"bigram.proj.weight", "ve_shared.proj.weight"} <= set(groups["matrix"])
    assert groups["head"] == []
    scalar = set(groups["scalar"])
    assert {"skip_weights", "smear.gate", "bigram.scale", "ve_shared.scale", "ve_layer_scales.0",
            "blocks.3.resid_mix", "blocks.3.attn.q_gain", "blocks.3.attn_scale"} <= scalar
    assert sum(len(v) for v in groups.values()) == len(list(model.parameters()))


def test_optimizer_set_scales_every_group_from_its_base_lr():
    hp = Hyperparameters.preset("smoke")
    torch.manual_seed(0)
    opts = OptimizerSet(GPT(hp.model_config(64)), hp)
    opts.set_lr_multiplier(0.5)
    lrs = sorted(g["lr"] for opt in opts.optimizers for g in opt.param_groups)
    assert lrs == pytest.approx(sorted([hp.tied_embed_lr / 2, hp.scalar_lr / 2, hp.matrix_lr / 2]))
    opts.set_muon_momentum(0.95)
    assert opts.muon.param_groups[0]["momentum"] == 0.95


def test_iteration_warmdown_goes_linearly_to_zero_over_the_last_steps():
    mult = [lr_multiplier(s, 0.0, iterations=40, warmdown_iters=15, cap_s=0.0) for s in range(40)]
    assert mult[:26] == [1.0] * 26
    assert mult[30] == pytest.approx(10 / 15) and mult[39] == pytest.approx(1 / 15)
    assert lr_multiplier(5, 0.0, iterations=40, warmdown_iters=0, cap_s=0.0) == 1.0


def test_wallclock_warmdown_with_a_fake_clock():
    # 1 s per step, cap 100 s, W = 10 steps: the warm-down covers the last 10 s before the cap
    def at(step):
        return lr_multiplier(step, elapsed_s=float(step), iterations=10_000, warmdown_iters=10, cap_s=100.0)

    assert at(0) == 1.0 and at(89) == 1.0
    assert at(95) == pytest.approx(0.5)
    assert at(99) == pytest.approx(0.1)
    assert at(100) == 0.0 and at(120) == 0.0
    # a slower run (2 s/step) starts its warm-down earlier in wallclock: 20 s before the cap
    assert lr_multiplier(45, 90.0, 10_000, 10, 100.0) == pytest.approx(0.5)


def test_muon_momentum_warmup():
    assert muon_momentum_at(0, 0.92, 0.99, 1500) == pytest.approx(0.92)
    assert muon_momentum_at(750, 0.92, 0.99, 1500) == pytest.approx(0.955)
    assert muon_momentum_at(5000, 0.92, 0.99, 1500) == pytest.approx(0.99)
    assert muon_momentum_at(3, 0.92, 0.99, 0) == 0.99


def test_ema_0997_matches_the_closed_form_and_starts_at_the_weights():
    layer = torch.nn.Linear(4, 3)
    w0 = layer.weight.detach().clone()
    ema = EMA(layer, decay=0.997)
    values = [torch.full_like(w0, float(k)) for k in range(1, 6)]
    for v in values:
        with torch.no_grad():
            layer.weight.copy_(v)
        ema.update(layer)
    expected = 0.997 ** 5 * w0 + sum(0.003 * 0.997 ** (5 - k) * v for k, v in enumerate(values, start=1))
    ema.copy_to(layer)
    assert torch.allclose(layer.weight, expected, atol=1e-6)


def test_ema_0_9_moves_in_a_few_steps_and_keeps_fp32_shadow():
    layer = torch.nn.Linear(2, 2).bfloat16()
    w0 = layer.weight.detach().float().clone()
    ema = EMA(layer, decay=0.9)
    assert all(s.dtype == torch.float32 for s in ema.shadow)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    for _ in range(40):
        ema.update(layer)
    expected = 0.9 ** 40 * w0 + (1 - 0.9 ** 40)
    assert torch.allclose(ema.shadow[ema.names.index("weight")], expected, atol=1e-5)
