"""Cutting the recorded scores into passes (audit.replay.ledger.split_passes) on hand-made ledgers."""

import numpy as np

from audit.replay.intervals import runs_of, table_from
from audit.replay.ledger import split_passes

MAIN = "/sub/train_gpt.py"


def _site(*calls):
    return tuple((MAIN, line, fn) for line, fn in calls)


def _ledger(events, n=100):
    scores = [dict(seq=i + 1, t=float(i), site=site, positions=np.asarray(pos, dtype=np.int64),
                   reduced=np.ones(len(pos), dtype=bool)) for i, (site, pos) in enumerate(events)]
    return dict(rank=0, stream_len=n, scores=scores)


def _shapes(passes):
    return sorted((len({e["site"] for _, e in p.events}), len(p.events)) for p in passes)


def test_batches_that_go_back_to_new_positions_are_one_pass_and_a_re_evaluation_is_another():
    site = _site((10, "main"), (20, "evaluate"), (30, "forward"))
    batches = [range(50, 60), range(1, 10), range(70, 80), range(10, 20)]  # shuffled, each position once
    again = [range(1, 40), range(40, 80)]  # the same positions scored again from the start
    passes = split_passes([_ledger([(site, list(b)) for b in batches + again])])
    assert [len(p.events) for p in passes] == [4, 2]


def test_one_loop_scoring_at_two_calls_is_also_one_pass_but_two_evaluations_are_not_merged():
    chunks, last = _site((10, "main"), (20, "ttt"), (31, "forward")), _site((10, "main"), (22, "ttt"), (31, "forward"))
    loop = [(chunks, list(range(1, 30))), (chunks, list(range(30, 60))), (last, list(range(60, 80)))]
    (union,) = [p for p in split_passes([_ledger(loop)]) if len(p.events) == 3]
    assert sorted(np.concatenate([e["positions"] for _, e in union.events]).tolist()) == list(range(1, 80))

    first, second = _site((12, "main"), (40, "evaluate"), (31, "forward")), _site((14, "main"), (40, "evaluate"), (31, "forward"))
    evals = [(first, list(range(1, 80))), (second, list(range(1, 80)))]
    assert _shapes(split_passes([_ledger(evals)])) == [(1, 1), (1, 1)]


def _full_ledger(scored, n=101, loss=1.0):
    """A one-rank ledger as the recorder writes it: one evaluation scoring `scored` positions."""
    pos = np.asarray(scored, dtype=np.int64)
    site = _site((10, "main"), (20, "evaluate"))
    score = dict(seq=1, t=1.0, site=site, positions=pos, losses=np.full(pos.size, loss), grad=False, kind="ce",
                 instance_base=0, reads=[])
    return dict(rank=0, world=1, stream_len=n, scores=[score], mutations=[], tagged=[(0, n, "from_numpy")],
                lookups=[], c2=[], network=[], untraced_losses=0, untraced_targets=0, opaque={}, emulation=[],
                gaps=[], bytes_per_position=2.0, first_update_seq=table_from([]), first_grad_update_seq=table_from([]),
                first_score_seq=table_from([(1, runs_of(pos))]))


def test_holes_in_the_reported_pass_are_an_error_and_in_a_merely_closest_pass_a_warning():
    import math

    from audit.replay.invariants import Locator, analyze
    from golf.eval.bpb import ByteLUTs

    luts = ByteLUTs(base_bytes=np.ones(8, dtype=np.int32), has_leading_space=np.zeros(8, dtype=bool),
                    is_boundary=np.zeros(8, dtype=bool))
    stream = np.arange(101) % 8
    ledger = _full_ledger([*range(1, 26), *range(76, 101)])  # a hole in the middle, one nat per token
    bpb = 1.0 / math.log(2.0)
    for scale, severity in ((1.0, "error"), (0.9, "warning")):  # the reported score, or one no pass gives
        log = f"final val_loss:{scale:.8f} val_bpb:{scale * bpb:.8f}\n"
        findings, _, _ = analyze([ledger], log, stream, luts, Locator("/sub", MAIN))
        (hole,) = [f for f in findings if f.code == "RP010"]
        assert hole.severity == severity, (log_bpb, [(f.code, f.severity) for f in findings])
