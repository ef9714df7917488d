"""GPTQ (Frantar et al., 2022) for one weight matrix, and Hessian calibration through forward hooks.

For a Linear layer y = x W^T (W: out x in) and calibration inputs X (rows = tokens), the layer's
output error for a quantised W_hat is tr((W - W_hat) H (W - W_hat)^T) with H = X^T X / n. GPTQ
quantises the columns of W one at a time and pushes each column's rounding error onto the columns
not yet quantised, weighted by the inverse Hessian, which lowers that error below round-to-nearest.

Two modes (reference.md sections 0 and 4.3):
* "canonical": dead columns zeroed, damping, act-order by diag(H) DESCENDING, error feedback through
  the upper Cholesky factor U of H^-1 (equivalent to down-dating H^-1 after every column), blocks
  with lazy batched updates. The row scales come from a clip search that runs GPTQ once per clip
  candidate (all candidates batched as extra rows: rows are independent given U) and keeps, per
  row, the candidate with the smallest Hessian-weighted error of that row.
* "pr1004": the seed's variant, kept to measure the difference: per-row scales chosen beforehand by
  round-to-nearest MSE, act-order ASCENDING, error feedback through the static inverse H^-1 (never
  down-dated), inverse fallback 1/diag(H).

A mask (True = keep) makes pruned entries quantise to 0 while their error is still propagated, so
pruning survives the error feedback (the seed prunes before GPTQ without a mask and GPTQ refills
the zeros).
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import Tensor, nn

from golf.quant.rtn import (
    CLIP_PERCENTILES,
    candidate_row_scales,
    qmax_for_bits,
    rtn_clip_search,
    rtn_quantize,
)

GPTQ_MODES = ("canonical", "pr1004")
_SUB_BLOCK = 16  # columns per rank-1-updated sub-block inside a lazy block


def _default_forward(model: nn.Module, batch) -> None:
    if isinstance(batch, (tuple, list)):
        model(*batch)
    else:
        model(batch)


@torch.no_grad()
def collect_hessians(
    model: nn.Module,
    batches: Iterable,
    module_filter: Callable[[str, nn.Module], bool] | None = None,
    forward: Callable[[nn.Module, object], None] = _default_forward,
) -> dict[str, Tensor]:
    """H = X^T X / n (fp32, on the activations' device) for the input X of every nn.Linear.

    Keys are the weights' state-dict names ("<module>.weight"). n counts every row (token) the
    layer saw over all batches; a module called twice per forward contributes both calls. The
    scale of H does not change GPTQ's result (damping is relative to mean(diag H)), so 1/n is
    used as in reference.md 4.2 rather than the paper's 2/n.
    The caller owns timing: calibration reads training data, so it must run inside the training
    wallclock budget.
    """
    sums: dict[str, Tensor] = {}
    rows: dict[str, int] = {}

    def make_hook(key: str):
        def hook(_module, inputs):
            x = inputs[0].detach()
            x = x.reshape(-1, x.shape[-1]).float()
            if key not in sums:
                sums[key] = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float32, device=x.device)
                rows[key] = 0
            sums[key].addmm_(x.T, x)
            rows[key] += x.shape[0]
        return hook

    handles = [
        module.register_forward_pre_hook(make_hook(f"{name}.weight"))
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and (module_filter is None or module_filter(name, module))
    ]
    try:
        for batch in batches:
            forward(model, batch)
    finally:
        for handle in handles:
            handle.remove()
    return {key: total / rows[key] for key, total in sums.items()}


def hessian_error(W: Tensor, W_hat: Tensor, H: Tensor) -> float:
    """tr((W - W_hat) H (W - W_hat)^T) in float64: the layer-output squared error on calibration data."""
    D = (W.detach().double() - W_hat.detach().double())
    return float(((D @ H.detach().double().to(D.device)) * D).sum())


def _propagation_matrix(H: Tensor, mode: str) -> Tensor | None:
    """The matrix whose rows carry each column's error forward (None: no usable factor)."""
    if mode == "pr1004":
        Hinv, info = torch.linalg.inv_ex(H)
        return Hinv if int(info) == 0 else torch.diag(1.0 / torch.diag(H))
    L, info = torch.linalg.cholesky_ex(H)
    if int(info) != 0:
        return None
    U, info = torch.linalg.cholesky_ex(torch.cholesky_inverse(L), upper=True)
    return U if int(info) == 0 else None


def _gptq_columns(W: Tensor, scale: Tensor, P: Tensor, qmax: int, block_size: int,
                  keep: Tensor | None) -> Tensor:
    """The GPTQ loop over the (permuted) columns of W; returns the integer values as float.

    Works on W transposed so that every column is a contiguous row. Error feedback is lazy at two
    levels: inside a sub-block of _SUB_BLOCK columns by rank-1 updates, onto the rest of the
    block_size block after each sub-block, and onto the remaining columns after each block, by
    matrix products. In exact arithmetic the result does not depend on either block size.
    """
    Wt = W.T.contiguous()
    keep_t = None if keep is None else keep.T.contiguous()
    cols, rows = Wt.shape
    Qt = torch.zeros_like(Wt)
    for i1 in range(0, cols, block_size):
        i2 = min(i1 + block_size, cols)
        err_t = torch.empty(i2 - i1, rows, dtype=Wt.dtype, device=Wt.device)
        for j1 in range(i1, i2, _SUB_BLOCK):
            j2 = min(j1 + _SUB_BLOCK, i2)
            for j in range(j1, j2):
                w = Wt[j]
                q = torch.clamp(torch.round(w / scale), -qmax, qmax)
                if keep_t is not None:
                    q.mul_(keep_t[j])
                Qt[j] = q
                err = torch.sub(w, q * scale).div_(P[j, j])
                if j + 1 < j2:
                    Wt[j + 1:j2].addr_(P[j, j + 1:j2], err, alpha=-1.0)
                err_t[j - i1] = err
            if j2 < i2:
                Wt[j2:i2].addmm_(P[j1:j2, j2:i2].T, err_t[j1 - i1:j2 - i1], alpha=-1.0)
        if i2 < cols:
            Wt[i2:].addmm_(P[i1:i2, i2:].T, err_t, alpha=-1.0)
    return Qt.T


@torch.no_grad()
def gptq_quantize(
    W: Tensor,
    H: Tensor,
    bits: int = 5,
    block_size: int = 128,
    damp: float = 0.01,
    act_order: bool = True,
    mask: Tensor | None = None,
    mode: str = "canonical",
    scale: Tensor | None = None,
    percentiles=CLIP_PERCENTILES,
) -> tuple[Tensor, Tensor]:
    """Quantise W (out x in) against the input Hessian H (in x in).

    Returns (q int8 in [-q_max, q_max], scale fp16 per row), W ~= q * scale[:, None].
    `scale` fixes the row scales (no clip search). `mask` (bool, W's shape, True = keep) forces
    pruned entries to 0. If H cannot be factorised (canonical mode) the result is round-to-nearest
    with the RTN clip search.
    """
    if mode not in GPTQ_MODES:
        raise ValueError(f"GPTQ mode must be one of {GPTQ_MODES}, got {mode!r}")
    qmax = qmax_for_bits(bits)
    Wf = W.detach().float().clone()
    rows, cols = Wf.shape
    H_obj = H.detach().float().to(Wf.device)
    keep = None if mask is None else mask.to(Wf.device, torch.float32)

    Hd = H_obj.clone()
    dead = torch.nonzero(torch.diag(Hd) == 0).squeeze(1)
    Hd[dead, dead] = 1.0
    Wf[:, dead] = 0.0
    Hd += damp * torch.diag(Hd).mean() * torch.eye(cols, dtype=Hd.dtype, device=Hd.device)

    if scale is not None:
        cands = scale.to(Wf.device, torch.float16)[None]
    elif mode == "pr1004":
        cands = rtn_clip_search(Wf, bits, keep)[None]
    else:
        cands = candidate_row_scales(Wf, qmax, percentiles)

    if act_order:
        perm = torch.argsort(torch.diag(Hd), descending=(mode == "canonical"), stable=True)
    else:
        perm = torch.arange(cols, device=Wf.device)
    P = _propagation_matrix(Hd[perm][:, perm], mode)
    if P is None:
        s = cands[0] if scale is not None else rtn_clip_search(Wf, bits, keep)
        return rtn_quantize(Wf, s, bits, keep), s

    n_cand = cands.shape[0]
    W_all = Wf[:, perm].repeat(n_cand, 1)
    keep_all = None if keep is None else keep[:, perm].repeat(n_cand, 1)
    s_all = cands.reshape(-1).float()
    Q_all = torch.empty_like(W_all)
    Q_all[:, perm] = _gptq_columns(W_all, s_all, P, qmax, block_size, keep_all)
    if n_cand == 1:
        return Q_all.to(torch.int8), cands[0]

    D = Wf.repeat(n_cand, 1) - Q_all * s_all[:, None]
    row_err = ((D @ H_obj) * D).sum(dim=1).view(n_cand, rows)
    best = row_err.argmin(dim=0)
    picked = torch.arange(rows, device=Wf.device)
    q = Q_all.view(n_cand, rows, cols)[best, picked]
    return q.to(torch.int8), cands[best, picked]
