"""The smoke GPT through the whole quantisation path: calibration from training shards, GPTQ per
block matrix against round-to-nearest, artifact bytes on disk, and the loss of the reloaded model."""

import pytest
import torch

from golf.config import Hyperparameters
from golf.data.shards import write_shard
from golf.model import GPT
from golf.quant.artifact import load_artifact, pack_artifact
from golf.quant.calibration import calibration_batches
from golf.quant.gptq import GPTQ_MODES, collect_hessians, hessian_error
from golf.quant.pack import dequantize_state, quantize_state_dict
from golf.quant.rtn import dequantize, rtn_quantize

VOCAB = 320


def markov_tokens(n: int, seed: int) -> torch.Tensor:
    """A sparse first-order Markov chain over the vocabulary: structure a few steps can learn."""
    gen = torch.Generator().manual_seed(0)
    successors = torch.randint(0, VOCAB, (VOCAB, 4), generator=gen)
    probs = torch.tensor([0.55, 0.25, 0.15, 0.05])
    gen.manual_seed(seed)
    picks = torch.multinomial(probs, n, replacement=True, generator=gen)
    out = torch.empty(n, dtype=torch.long)
    out[0] = 1
    for t in range(1, n):
        out[t] = successors[out[t - 1], picks[t]]
    return out


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    torch.manual_seed(0)
    hp = Hyperparameters.preset("smoke")
    cfg = hp.model_config(vocab_size=VOCAB)
    data = tmp_path_factory.mktemp("shards")
    train_tokens = markov_tokens(16_384, seed=1)
    write_shard(data / "fineweb_train_000000.bin", train_tokens.numpy())
    model = GPT(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(15):
        span = train_tokens[step * 512: step * 512 + 513]
        loss = model(span[:-1].view(4, 128), span[1:].view(4, 128))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    batches = calibration_batches(data / "fineweb_train_*.bin", hp.gptq_calib_seqs, hp.train_seq_len)
    hessians = collect_hessians(model, batches, forward=lambda m, b: m.forward_logits(b[0]))
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    val = markov_tokens(1_025, seed=2)
    return hp, cfg, state, hessians, val


def val_loss(cfg, state, val) -> float:
    model = GPT(cfg)
    model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        return model(val[:-1].view(8, 128), val[1:].view(8, 128)).item()


def test_hessians_cover_every_linear_of_the_model(smoke):
    _, _, state, hessians, _ = smoke
    blocks = {n for n in state if (".attn." in n or ".mlp." in n) and n.endswith(".weight")}
    assert len(blocks) == 18
    assert set(hessians) == blocks | {"bigram.proj.weight", "ve_shared.proj.weight"}


def test_gptq_beats_rtn_per_matrix_and_in_the_reloaded_model(smoke, tmp_path):
    hp, cfg, state, hessians, val = smoke
    base = val_loss(cfg, state, val)
    losses, errors = {}, {}
    for mode in GPTQ_MODES:
        qstate = quantize_state_dict(
            state, hessians, bits=hp.quant_bits, passthrough_numel=hp.fp16_passthrough_numel,
            block_size=hp.gptq_block_size, mode=mode, prune_fraction=hp.prune_fraction)
        path = tmp_path / f"model_{mode}.ptz"
        path.write_bytes(pack_artifact(qstate))
        reloaded = dequantize_state(load_artifact(path.read_bytes()))
        rtn_state = dict(reloaded)
        errors[mode] = [0.0, 0.0]
        for name, e in qstate.entries.items():
            if e.kind != "gptq":
                continue
            W, H = state[name], hessians[name]
            assert int(e.q.abs().max()) <= 15
            q_rtn = rtn_quantize(W, e.scale, e.bits)
            e_gptq = hessian_error(W, dequantize(e.q, e.scale), H)
            e_rtn = hessian_error(W, dequantize(q_rtn, e.scale), H)
            if mode == "canonical":
                assert e_gptq < e_rtn, name
            errors[mode][0] += e_gptq
            errors[mode][1] += e_rtn
            rtn_state[name] = dequantize(q_rtn, e.scale)
        losses[mode] = val_loss(cfg, reloaded, val) - base
        losses[f"rtn_with_{mode}_scales"] = val_loss(cfg, rtn_state, val) - base
    print(f"\nval loss {base:.4f}; increase from quantisation: "
          + ", ".join(f"{k} {v:+.4f}" for k, v in losses.items())
          + "; Hessian-weighted error (gptq, rtn): "
          + ", ".join(f"{k} ({v[0]:.3f}, {v[1]:.3f})" for k, v in errors.items()))
    assert losses["canonical"] < losses["rtn_with_canonical_scales"]
    assert errors["canonical"][0] < errors["pr1004"][0]
