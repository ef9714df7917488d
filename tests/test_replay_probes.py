"""The perturbation probe's data and its comparison, on real shards and hand-made ledgers."""

import numpy as np

from audit.replay import ledger as L
from audit.replay.invariants import Locator
from audit.replay.probes import compare, probe_position, write_perturbed
from golf.data.shards import read_shard, write_shard

BOS = 1
ORDINARY = np.arange(4, 50)


def test_the_perturbed_stream_differs_from_k_on_and_keeps_document_boundaries(tmp_path):
    rng = np.random.default_rng(0)
    stream = rng.choice(ORDINARY, size=3000)
    stream[::97] = BOS
    data = tmp_path / "data"
    data.mkdir()
    write_shard(data / "fineweb_val_000000.bin", stream[:1800])
    write_shard(data / "fineweb_val_000001.bin", stream[1800:])
    write_shard(data / "fineweb_train_000000.bin", stream[:100])
    k = probe_position(stream, ORDINARY)
    assert k >= int(0.55 * stream.size) and stream[k] != BOS
    out = write_perturbed(data, str(data / "fineweb_val_*.bin"), tmp_path / "probe", k, ORDINARY)
    changed = np.concatenate([read_shard(out / "fineweb_val_000000.bin"), read_shard(out / "fineweb_val_000001.bin")])
    assert np.array_equal(changed[:k], stream[:k]) and changed[k] != stream[k]
    assert np.array_equal(changed == BOS, stream == BOS)
    assert (changed[k:] != stream[k:]).mean() > 0.5
    assert (out / "fineweb_train_000000.bin").resolve() == (data / "fineweb_train_000000.bin").resolve()


def _ledger(losses, fingerprint):
    site = (("train_gpt.py", 10, "main"),)
    event = dict(seq=1, t=1.0, positions=np.arange(1, 11), losses=np.asarray(losses, dtype=np.float64), grad=False,
                 kind="ce", site=site, reduced=np.ones(10, dtype=bool))
    return {"rank": 0, "stream_len": 11, "scores": [event], "dists": {}, "fingerprint": fingerprint}


def _counted(ledgers):
    (p,) = L.split_passes(ledgers)
    return L.candidates(p, np.ones(11))[0]


def test_an_earlier_score_that_moves_is_a_c1_finding():
    base = [_ledger(np.ones(10), 5.0)]
    probe = [_ledger([1, 1, 1, 1, 1.5, 1, 1, 1, 1, 1], 5.0)]
    findings, result = compare(_counted(base), probe, base, 8, Locator(".", "train_gpt.py"))
    assert [f.rule for f in findings] == ["C1"] and result["changed_positions"] == 1


def test_runs_that_trained_different_models_are_inconclusive():
    base = [_ledger(np.ones(10), 5.0)]
    probe = [_ledger(np.full(10, 2.0), 5.5)]
    findings, result = compare(_counted(base), probe, base, 8, Locator(".", "train_gpt.py"))
    assert findings == [] and "inconclusive" in result
