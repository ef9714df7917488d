"""Cutting the recorded scores into passes (audit.replay.ledger.split_passes) on hand-made ledgers."""

import numpy as np

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
