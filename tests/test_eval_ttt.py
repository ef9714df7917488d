"""Score-first TTT legality (reference.md 5.2 and 8.4) with a ledger of every score and read."""

from collections import defaultdict

import numpy as np
import pytest
import torch

from eval_tiny_lm import fake_luts, patterned_tokens, tiny_model
from golf.budget import WallclockBudget
from golf.errors import BudgetExceeded, GolfError
from golf.eval.sliding import eval_sliding, sliding_windows
from golf.eval.ttt import adapted_parameters, cosine_lr, eval_score_first_ttt, windows_by_chunk

N_TARGETS, SEQ_LEN, STRIDE, CHUNK = 8192, 128, 32, 1024  # the smoke shape: 8 chunks
TTT = dict(seq_len=SEQ_LEN, stride=STRIDE, chunk_tokens=CHUNK, epochs=3, lr=1e-2, adapt_last_blocks=1,
           micro_batch_seqs=4, grad_clip=1.0)


class Ledger:
    """Counts how often each target is scored and checks every training read against the counts."""

    def __init__(self, n_targets):
        self.scored = np.zeros(n_targets + 1, dtype=np.int64)
        self.events = []  # ("score" | "train", chunk) in call order
        self.unscored_reads = []
        self.reads = defaultdict(set)
        self.chunk_nll = defaultdict(float)

    def on_score(self, chunk, target_positions, nll):
        assert target_positions.shape == nll.shape
        np.add.at(self.scored, target_positions.cpu().numpy(), 1)
        self.chunk_nll[chunk] += nll.double().sum().item()
        self.events.append(("score", chunk))

    def on_train_step(self, chunk, target_positions_read):
        read = np.arange(target_positions_read.start, target_positions_read.stop)
        self.unscored_reads.extend(read[self.scored[read] == 0].tolist())
        self.reads[chunk].update(read.tolist())
        self.events.append(("train", chunk))


@pytest.fixture(scope="module")
def data():
    return patterned_tokens(N_TARGETS + 1), fake_luts()


@pytest.fixture(scope="module")
def learned_run(data):
    """One TTT run on the smoke shape with a learning rate that moves the tiny model."""
    tokens, luts = data
    ledger = Ledger(N_TARGETS)
    return eval_score_first_ttt(tiny_model(), tokens, luts, observer=ledger, **TTT), ledger


def test_training_reads_only_scored_targets_and_skips_the_last_chunk(learned_run):
    result, ledger = learned_run
    assert ledger.unscored_reads == []
    assert ledger.scored[0] == 0 and (ledger.scored[1:] == 1).all()  # every target counted once
    assert result.n_tokens == N_TARGETS and result.chunks == 8 and result.trained_chunks == 7
    assert sorted(ledger.reads) == list(range(7))  # chunks 0..6 trained, chunk 7 never
    for c in range(7):  # chunk c trains on its own targets cC+1 .. (c+1)C and nothing else
        assert ledger.reads[c] == set(range(c * CHUNK + 1, (c + 1) * CHUNK + 1))
    # 8 sequences, micro-batches of 4, 3 epochs -> 6 steps per trained chunk
    assert result.optimizer_steps == 42 and sum(e == ("train", 0) for e in ledger.events) == 6
    # order: all of chunk c's scoring happens before its training, which happens before chunk c+1's scoring
    order = [(chunk, kind == "train") for kind, chunk in ledger.events]
    assert order == sorted(order)


def test_s0_of_a_chunk_ignores_later_tokens(data, learned_run):
    tokens, luts = data
    original = learned_run[1]
    c = 2
    altered = tokens.clone()
    later = torch.arange((c + 1) * CHUNK + 1, N_TARGETS + 1)
    altered[later] = torch.randint(4, 64, (len(later),), generator=torch.Generator().manual_seed(5))
    changed = Ledger(N_TARGETS)
    eval_score_first_ttt(tiny_model(), altered, luts, observer=changed, **TTT)
    for chunk in range(c + 1):
        assert original.chunk_nll[chunk] == changed.chunk_nll[chunk]
    assert original.chunk_nll[c + 1] != changed.chunk_nll[c + 1]


def test_lr_zero_equals_the_sliding_score(data, learned_run):
    tokens, luts = data
    model = tiny_model()
    sliding = eval_sliding(model, tokens, luts, SEQ_LEN, STRIDE)
    s0 = eval_score_first_ttt(model, tokens, luts, **{**TTT, "lr": 0.0, "epochs": 1})
    assert s0.n_tokens == sliding.n_tokens and s0.n_bytes == sliding.n_bytes
    assert s0.val_bpb_s0 == pytest.approx(sliding.val_bpb, rel=1e-7)
    # with learning switched on, the same stream scores differently (here: better)
    learned = learned_run[0]
    print(f"\ntiny model: sliding {sliding.val_bpb:.6f} -> s_0 {learned.val_bpb_s0:.6f}")
    assert learned.val_bpb_s0 < sliding.val_bpb - 0.01


def test_legal_when_stride_does_not_divide_the_chunk():
    # stride 48 and chunks of 700: windows straddle chunk edges and chunk 0 holds a short tail
    tokens, luts = patterned_tokens(3001), fake_luts()
    ledger = Ledger(3000)
    result = eval_score_first_ttt(tiny_model(), tokens, luts, observer=ledger, **{
        **TTT, "stride": 48, "chunk_tokens": 700, "micro_batch_seqs": 3, "epochs": 1})
    assert ledger.unscored_reads == [] and (ledger.scored[1:] == 1).all()
    assert result.chunks == 5 and result.trained_chunks == 4


def test_only_the_adapted_parameters_change_and_flags_are_restored(data):
    tokens, luts = data
    model = tiny_model(n_blocks=3)
    model.blocks[0].fc.weight.requires_grad_(False)  # a flag that must come back as it was
    adapted = {id(p) for p in adapted_parameters(model, 1)}
    names = {n for n, p in model.named_parameters() if id(p) in adapted}
    assert names == {n for n, _ in model.named_parameters() if n.startswith("blocks.2.") or "scale" in n}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    eval_score_first_ttt(model, tokens[: 3 * CHUNK + 1], luts, **TTT)
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]) != (name in names), name


def test_bad_ttt_settings_are_rejected(data):
    with pytest.raises(GolfError, match="last 3 blocks"):
        eval_score_first_ttt(tiny_model(), *data, **{**TTT, "adapt_last_blocks": 3})
    with pytest.raises(GolfError):
        eval_score_first_ttt(tiny_model(), *data, **{**TTT, "micro_batch_seqs": 0})


def test_chunks_hold_exactly_their_targets():
    windows = sliding_windows(N_TARGETS, SEQ_LEN, STRIDE)
    for c, chunk in enumerate(windows_by_chunk(windows, CHUNK, 8)):
        targets = set()
        for start, length, scored_from in chunk:
            targets.update(range(start + scored_from + 1, start + length + 1))
        assert targets == set(range(c * CHUNK + 1, (c + 1) * CHUNK + 1))


def test_cosine_lr_over_chunks():
    assert cosine_lr(1e-3, 0, 8) == 1e-3
    assert cosine_lr(1e-3, 7, 8) == pytest.approx(0.0, abs=1e-18)
    assert cosine_lr(1e-3, 3.5, 8) == pytest.approx(5e-4)


def test_budget_is_checked_per_chunk(data):
    tokens, luts = data
    ticks = iter(range(100))
    budget = WallclockBudget("evaluation", 3.5, clock=lambda: float(next(ticks)))  # one second per look
    ledger = Ledger(N_TARGETS)
    with pytest.raises(BudgetExceeded, match="TTT chunk 3"):
        eval_score_first_ttt(tiny_model(), tokens, luts, budget=budget, observer=ledger, **TTT)
    assert max(chunk for _, chunk in ledger.events) == 2  # nothing of chunk 3 was scored


@pytest.mark.slow
def test_with_the_smoke_gpt(data):
    from golf.config import Hyperparameters
    from golf.model import GPT

    tokens, luts = data
    hp = Hyperparameters.preset("smoke")
    torch.manual_seed(0)
    model = GPT(hp.model_config(64))
    stream = tokens[: 3 * CHUNK + 1]
    sliding = eval_sliding(model, stream, luts, SEQ_LEN, STRIDE)  # builds the RoPE cache in inference mode
    ledger = Ledger(3 * CHUNK)
    result = eval_score_first_ttt(model, stream, luts, observer=ledger, **{**TTT, "lr": 1e-3, "epochs": 1})
    assert ledger.unscored_reads == [] and (ledger.scored[1:] == 1).all() and result.trained_chunks == 2
    # the adapted set of reference.md 5.2: last block + every *scale* parameter
    adapted = {n for n, p in model.named_parameters() if id(p) in {id(q) for q in adapted_parameters(model, 1)}}
    assert {"bigram.scale", "ve_shared.scale", "ve_layer_scales.0", "blocks.0.attn_scale"} <= adapted
    assert not any(n.startswith(("blocks.0.attn.", "tok_emb")) for n in adapted)
    print(f"\nsmoke GPT (untrained): sliding {sliding.val_bpb:.6f} -> s_0 {result.val_bpb_s0:.6f}")
