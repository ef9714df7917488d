"""Size-targeted pruning (golf.quant.fit): the real compressed artifact meets the budget, only the
cheapest |q| == 1 int5 entries are zeroed, a met budget changes nothing, an impossible one fails."""

import pytest
import torch

from golf.errors import BudgetExceeded
from golf.quant.artifact import compress, load_artifact, serialize_state
from golf.quant.fit import fit_to_budget, prune_candidates, zero_cheapest
from golf.quant.pack import quantize_state_dict

CODE_BYTES = 5_000


@pytest.fixture(scope="module")
def qstate():
    gen = torch.Generator().manual_seed(3)
    sd = {
        "blocks.0.attn.c_q.weight": torch.randn(64, 64, generator=gen) * 0.5,
        "blocks.0.mlp.fc.weight": torch.randn(128, 64, generator=gen) * 0.5,
        "tok_emb.weight": torch.randn(96, 32, generator=gen) * 0.02,
        "blocks.0.attn.q_gain": torch.full((4,), 1.5),
    }
    X = torch.randn(500, 64, generator=gen)
    H = X.T @ X / 500
    hessians = {"blocks.0.attn.c_q.weight": H, "blocks.0.mlp.fc.weight": H}
    return quantize_state_dict(sd, hessians, passthrough_numel=1024, block_size=32)


def real_total(qs) -> int:
    return CODE_BYTES + len(compress(serialize_state(qs)))


def test_fits_a_budget_just_below_the_size_by_zeroing_the_cheapest_unit_entries(qstate):
    before = {n: e.q.clone() for n, e in qstate.entries.items() if e.q is not None}
    budget = real_total(qstate) - 150
    calls = []

    def counted_compress(data: bytes) -> bytes:
        calls.append(len(data))
        return compress(data)

    fit = fit_to_budget(qstate, CODE_BYTES, budget, compress_fn=counted_compress)

    assert fit.size.total == real_total(fit.qstate) <= budget
    assert fit.size.code_bytes == CODE_BYTES and fit.size.model_bytes == len(fit.blob)
    back = load_artifact(fit.blob)
    assert all(torch.equal(back.entries[n].q, fit.qstate.entries[n].q) for n in before)
    assert len(calls) <= 4, "the search must steer with the proxy, checking candidates only"
    assert 0 < fit.n_zeroed < fit.n_candidates
    assert all(torch.equal(qstate.entries[n].q, q) for n, q in before.items()), "input left unchanged"

    zeroed_costs, kept_costs = [], []
    for name, q in before.items():
        e = fit.qstate.entries[name]
        changed = e.q != q
        if e.kind != "gptq":
            assert not changed.any()
            continue
        assert (q[changed].abs() == 1).all() and (e.q[changed] == 0).all()
        row_cost = e.scale.double()[:, None].expand_as(q) ** 2
        zeroed_costs.append(row_cost[changed])
        kept_costs.append(row_cost[(e.q.abs() == 1)])
    zeroed, kept = torch.cat(zeroed_costs), torch.cat(kept_costs)
    assert len(zeroed) == fit.n_zeroed
    assert zeroed.max() <= kept.min(), "zeroed in order of the smallest Δ_row²"


def test_a_met_budget_zeroes_nothing(qstate):
    budget = real_total(qstate)
    fit = fit_to_budget(qstate, CODE_BYTES, budget)
    assert fit.n_zeroed == 0 and fit.size.total == budget
    assert fit.blob == compress(serialize_state(qstate))
    assert all(fit.qstate.entries[n].q is e.q for n, e in qstate.entries.items() if e.q is not None)


def test_candidates_are_the_unit_int5_entries_cheapest_first(qstate):
    cands = prune_candidates(qstate)
    assert len(cands) == sum(int((e.q.abs() == 1).sum()) for e in qstate.entries.values() if e.kind == "gptq")
    assert set(cands.names) == {n for n, e in qstate.entries.items() if e.kind == "gptq"}
    assert (cands.cost[1:] >= cands.cost[:-1]).all()


def test_an_impossible_budget_names_both_sizes(qstate):
    budget = CODE_BYTES + 200
    cands = prune_candidates(qstate)
    all_zeroed = real_total(zero_cheapest(qstate, cands, len(cands)))
    with pytest.raises(BudgetExceeded) as err:
        fit_to_budget(qstate, CODE_BYTES, budget)
    message = str(err.value)
    assert f"{all_zeroed:,}" in message and f"{budget:,}" in message
    assert f"all {len(cands):,} |q|=1" in message
