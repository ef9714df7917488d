"""The ledger recorder in-process: shadows through data movement, scores, C2 sums, update attribution."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from audit.replay.boot import _is_loopback
from audit.replay.intervals import event_at
from audit.replay.tracker import Tracker

VOCAB = 11


@pytest.fixture
def stream():
    return np.random.default_rng(0).integers(4, VOCAB, size=300).astype(np.int64)


def _tracked(stream, capture=()):
    tracker = Tracker(stream, capture=capture)
    tracker.install_hooks()
    return tracker


def _embedding_lm():
    """A two-layer language model over the test vocabulary and its SGD optimizer."""
    model, head = torch.nn.Embedding(VOCAB, 4), torch.nn.Linear(4, VOCAB)
    return model, head, torch.optim.SGD(list(model.parameters()) + list(head.parameters()), lr=0.1)


def test_a_tensor_equal_to_a_stretch_of_the_stream_is_tagged(stream):
    tracker = _tracked(stream)
    try:
        whole = tracker.tag_if_validation(torch.from_numpy(stream.copy()))
        middle = tracker.tag_if_validation(torch.from_numpy(stream[100:180].copy()))
        other = tracker.tag_if_validation(torch.arange(50, dtype=torch.int64))
        assert tracker._shadow_of(whole).tolist() == list(range(300))
        assert tracker._shadow_of(middle).tolist() == list(range(100, 180))
        assert tracker._shadow_of(other) is None
    finally:
        tracker.remove_hooks()


def test_positions_follow_data_movement_into_a_cross_entropy(stream):
    tracker = _tracked(stream)
    try:
        with tracker:
            val = tracker.tag_if_validation(torch.from_numpy(stream.copy()))
            chunk = val[10:75].to(torch.int64)
            x, y = chunk[:-1].reshape(4, 16), chunk[1:].reshape(4, 16)
            batch = torch.zeros(5, 16, dtype=torch.int64)
            batch[1:] = y  # setitem into an untracked buffer
            keep = torch.ones(4, 16, dtype=torch.bool)
            batch[1:] = torch.where(keep, batch[1:], 0).masked_fill(~keep, -100)
            targets = torch.cat([batch[1:3], batch[3:]]).flatten()
            logits = torch.randn(64, VOCAB)
            loss = F.cross_entropy(logits, targets)
        (event,) = tracker.ledger.scores
        assert event["positions"].tolist() == list(range(11, 75))
        expected = F.cross_entropy(logits, torch.from_numpy(stream[11:75]), reduction="none").double().numpy()
        np.testing.assert_allclose(event["losses"], expected, rtol=1e-6)
        assert abs(event["losses"].mean() - loss.item()) < 1e-5
        assert event["grad"] is True
        del x
    finally:
        tracker.remove_hooks()


def test_gathered_probabilities_are_scored_and_checked_to_sum_to_one(stream):
    tracker = _tracked(stream, capture=(21,))
    try:
        with tracker, torch.no_grad():
            val = tracker.tag_if_validation(torch.from_numpy(stream.copy()))
            y = val[20:40]
            probs = torch.softmax(torch.randn(20, VOCAB), -1)
            good = -torch.log(probs.gather(-1, y[:, None]))
            bad = (probs * 1.5).gather(-1, y[:, None])
        first, second = tracker.ledger.scores
        assert first["positions"].tolist() == list(range(20, 40))
        np.testing.assert_allclose(first["losses"], good[:, 0].double().numpy(), rtol=1e-6)
        assert first["grad"] is False and second["grad"] is False
        (c2,) = tracker.ledger.c2
        assert c2["rows"] == 20 and abs(c2["worst"] - 1.5) < 1e-4
        (seq, dist), _ = tracker.ledger.dists[21]
        np.testing.assert_allclose(np.exp(dist).sum(), 1.0, rtol=1e-6)
        del bad
    finally:
        tracker.remove_hooks()


def test_only_the_losses_that_reach_a_sum_are_counted(stream):
    tracker = _tracked(stream)
    try:
        with tracker, torch.inference_mode():
            val = tracker.tag_if_validation(torch.from_numpy(stream.copy()))
            x = torch.stack([val[0:8], val[4:12]])
            y = torch.stack([val[1:9], val[5:13]])
            nll = F.cross_entropy(torch.randn(16, VOCAB), y.reshape(-1), reduction="none").reshape(2, 8)
            total = nll[0].double().sum() + nll[1, 4:].to(torch.float64).sum()  # windows overlap: score once
            mask = torch.zeros(2, 8)
            mask[1, 7] = 1.0
            _ = (nll * mask).sum().item()  # a masked sum counts what the mask keeps
            mean = F.cross_entropy(torch.randn(8, VOCAB), val[20:28])  # reduced inside the loss op
        ledger = tracker.finish()
        first, second = ledger.scores
        assert first["positions"].tolist() == list(range(1, 9)) + list(range(5, 13))
        assert first["reduced"].tolist() == [True] * 8 + [False] * 4 + [True] * 4
        assert second["reduced"].all()
        del x, total, mean
    finally:
        tracker.remove_hooks()


def test_an_optimizer_step_is_attributed_the_positions_its_gradients_came_from(stream):
    tracker = _tracked(stream)
    model, head, opt = _embedding_lm()
    try:
        with tracker:
            val = tracker.tag_if_validation(torch.from_numpy(stream.copy()))
            with torch.no_grad():  # score positions 1..32
                F.cross_entropy(head(model(val[0:32])), val[1:33])
            loss = F.cross_entropy(head(model(val[32:64])), val[33:65])  # train on 32..64, unscored
            loss.backward()
            opt.step()
        (step,) = [m for m in tracker.ledger.mutations if m["kind"] == "optimizer"]
        assert (step["fed_min"], step["fed_max"]) == (32, 64)
        assert step["grad_fed"] and step["unscored"] == 0  # the training loss itself scored 33..64 first
        first_grad_update = tracker.finish().first_grad_update_seq
        assert event_at(first_grad_update, 40) == step["seq"]
        assert event_at(first_grad_update, 20) == -1
    finally:
        tracker.remove_hooks()


def test_a_direct_write_to_a_parameter_is_an_update(stream):
    tracker = _tracked(stream)
    lin = torch.nn.Linear(3, 3)
    emb = torch.nn.Embedding(VOCAB, 3)
    try:
        with tracker, torch.no_grad():
            val = tracker.tag_if_validation(torch.from_numpy(stream.copy()))
            lin(emb(val[100:140]))  # a calibration forward on unscored tokens
            lin.weight.copy_(torch.zeros(3, 3))
        (write,) = [m for m in tracker.ledger.mutations if m["kind"] == "write"]
        assert write["name"] == "copy_" and write["unscored"] == 40 and write["first_unscored"] == 100
    finally:
        tracker.remove_hooks()


def test_metadata_reads_do_not_count_as_uses(stream):
    tracker = _tracked(stream)
    lin = torch.nn.Linear(2, 2)
    try:
        with tracker:
            val = tracker.tag_if_validation(torch.from_numpy(stream.copy()))
            _ = val.numel(), val.shape, val.size(0), val.dtype, len(val)
            lin.weight.data.mul_(1.0)
            with torch.no_grad():
                lin.weight.add_(1.0)
        assert all(m["fed"] == 0 for m in tracker.ledger.mutations)
    finally:
        tracker.remove_hooks()


def test_loopback_is_the_only_network_a_replay_allows():
    assert _is_loopback("127.0.0.1") and _is_loopback("::1") and _is_loopback("localhost")
    assert not _is_loopback("example.com") and not _is_loopback("10.0.0.1")


def test_toggling_autograd_flags_of_a_parameter_is_not_a_write(stream):
    tracker = _tracked(stream)
    lin = torch.nn.Linear(3, 3)
    emb = torch.nn.Embedding(VOCAB, 3)
    try:
        with tracker:
            val = tracker.tag_if_validation(torch.from_numpy(stream.copy()))
            lin(emb(val[100:140]))  # tokens read, not yet scored
            for p in list(lin.parameters()) + list(emb.parameters()):
                p.requires_grad_(False)  # freezing the base model before adapting it
            lin.weight.detach_()
            lin.weight.requires_grad_(True)
            lin.weight.retain_grad()
            with torch.no_grad():
                lin.weight.mul_(2.0)  # a real write still counts
        (write,) = tracker.ledger.mutations
        assert write["name"] == "mul_" and write["unscored"] == 40
    finally:
        tracker.remove_hooks()


def test_integer_work_on_the_tokens_under_autograd_does_not_feed_an_optimizer_step(stream):
    tracker = _tracked(stream)
    model, head, opt = _embedding_lm()
    try:
        with tracker:
            val = tracker.tag_if_validation(torch.from_numpy(stream.copy()))
            starts = (val == 5).nonzero().flatten().tolist()  # document starts, autograd on
            loss = F.cross_entropy(head(model(val[0:32])), val[1:33])  # scores 1..32, then trains on them
            loss.backward()
            opt.step()
        (step,) = [m for m in tracker.ledger.mutations if m["kind"] == "optimizer"]
        assert (step["fed_min"], step["fed_max"], step["unscored"]) == (0, 32, 1)  # position 0 is never a target
        assert event_at(tracker.finish().first_grad_update_seq, 100) == -1
        del starts
    finally:
        tracker.remove_hooks()


def test_masking_the_targets_of_a_clone_leaves_the_validation_tokens_marked(stream):
    # the records' masked sliding window: y = window[1:].clone(); y[:context] = -100. A clone is a
    # copy: masking it must not unmark those positions in the validation tensor the next window reads
    tracker = _tracked(stream)
    try:
        with tracker:
            val = tracker.tag_if_validation(torch.from_numpy(stream.copy()))
            for start in (0, 16, 32):
                window = val[start : start + 33].to(dtype=torch.int64)
                y = window[1:].clone()
                if start:
                    y[:16] = -100
                F.cross_entropy(torch.randn(32, VOCAB), y, ignore_index=-100)
            view = val[40:50]
            view[0] = int(stream[40])  # a write through a view does reach the tensor it views
        assert [e["positions"].tolist() for e in tracker.ledger.scores] == [
            list(range(1, 33)), list(range(33, 49)), list(range(49, 65))]
        assert tracker._shadow_of(val)[:40].tolist() == list(range(40)) and tracker._shadow_of(val)[40] == -1
    finally:
        tracker.remove_hooks()
