"""Stand-in FlashAttention modules (`flash_attn` with FA2's signatures, `flash_attn_interface` with
FA3's), installed only where the real ones cannot be imported.

They compute what FlashAttention computes, on (batch, seqlen, heads, head_dim) tensors: softmax of
q·kᵀ·softmax_scale (default head_dim^-0.5), optionally soft-capped (softcap·tanh(s/softcap)),
masked causally and/or to a local window (window_size=(left, right), -1 unbounded; with more keys
than queries both masks align the last query with the last key), keys and values shared by groups
of query heads (GQA/MQA: query head h reads kv head h // (heads_q // heads_kv)); the varlen
variants take packed (total, heads, head_dim) tensors cut by cu_seqlens. Return conventions: FA2
returns out, or (out, softmax_lse, None) with return_attn_probs; FA3 returns out, or
(out, softmax_lse) with return_attn_probs. softmax_lse is (batch, heads, seqlen_q) in fp32 (packed
(heads, total_q) for varlen). Computed by scaled_dot_product_attention where no softcap or lse is
asked for, else by the explicit softmax.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
import types

import torch
import torch.nn.functional as F


def _mask(tq: int, tk: int, causal: bool, window_size, device) -> torch.Tensor | None:
    """Allowed (query, key) pairs as a (tq, tk) bool tensor, or None when every pair is allowed."""
    left, right = (int(window_size[0]), int(window_size[1])) if window_size is not None else (-1, -1)
    if causal:
        right = 0
    if left < 0 and right < 0:
        return None
    qi = torch.arange(tq, device=device)[:, None] + (tk - tq)  # bottom-right alignment
    kj = torch.arange(tk, device=device)[None, :]
    allowed = torch.ones(tq, tk, dtype=torch.bool, device=device)
    if right >= 0:
        allowed &= kj <= qi + right
    if left >= 0:
        allowed &= kj >= qi - left
    return allowed


def attention(q, k, v, softmax_scale=None, causal=False, window_size=(-1, -1), softcap=0.0, want_lse=False):
    """FlashAttention's result on (B, T, H, D) tensors: out (B, Tq, Hq, D) and, if asked, lse (B, Hq, Tq)."""
    b, tq, hq, d = q.shape
    tk, hk = k.shape[1], k.shape[2]
    if hq % hk:
        raise ValueError(f"query heads {hq} are not a multiple of key/value heads {hk}")
    scale = d ** -0.5 if softmax_scale is None else float(softmax_scale)
    qh, kh, vh = (x.transpose(1, 2).to(q.dtype) for x in (q, k, v))  # one dtype (mixed under fp32 emulation)
    if hk != hq:
        kh, vh = kh.repeat_interleave(hq // hk, dim=1), vh.repeat_interleave(hq // hk, dim=1)
    allowed = _mask(tq, tk, causal, window_size, q.device)
    if not softcap and not want_lse:
        out = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=allowed, scale=scale)
        return out.transpose(1, 2), None
    scores = (qh.float() @ kh.float().transpose(-1, -2)) * scale
    if softcap:
        scores = softcap * torch.tanh(scores / softcap)
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    lse = torch.logsumexp(scores, dim=-1)
    probs = torch.exp(scores - lse[..., None]).nan_to_num(0.0)  # a fully masked row attends to nothing
    out = (probs @ vh.float()).to(q.dtype)
    return out.transpose(1, 2), lse


def varlen_attention(q, k, v, cu_seqlens_q, cu_seqlens_k, softmax_scale=None, causal=False, window_size=(-1, -1),
                     softcap=0.0, want_lse=False):
    """attention() on each sequence of packed (total, H, D) tensors; lse packed as (Hq, total_q)."""
    cq, ck = cu_seqlens_q.tolist(), cu_seqlens_k.tolist()
    outs, lses = [], []
    for i in range(len(cq) - 1):
        out, lse = attention(q[None, cq[i]:cq[i + 1]], k[None, ck[i]:ck[i + 1]], v[None, ck[i]:ck[i + 1]],
                             softmax_scale, causal, window_size, softcap, want_lse)
        outs.append(out[0])
        if want_lse:
            lses.append(lse[0])
    out = torch.cat(outs) if outs else q.new_zeros(q.shape)
    return out, (torch.cat(lses, dim=-1) if want_lse else None)


# ----- FA2 (module flash_attn) ------------------------------------------------------------------
def fa2_func(q, k, v, dropout_p=0.0, softmax_scale=None, causal=False, window_size=(-1, -1), softcap=0.0,
             alibi_slopes=None, deterministic=False, return_attn_probs=False):
    _unsupported(dropout_p, alibi_slopes)
    out, lse = attention(q, k, v, softmax_scale, causal, window_size, softcap, return_attn_probs)
    return (out, lse, None) if return_attn_probs else out


def fa2_varlen_func(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q=None, max_seqlen_k=None, dropout_p=0.0,
                    softmax_scale=None, causal=False, window_size=(-1, -1), softcap=0.0, alibi_slopes=None,
                    deterministic=False, return_attn_probs=False, block_table=None):
    _unsupported(dropout_p, alibi_slopes)
    out, lse = varlen_attention(q, k, v, cu_seqlens_q, cu_seqlens_k, softmax_scale, causal, window_size, softcap,
                                return_attn_probs)
    return (out, lse, None) if return_attn_probs else out


# ----- FA3 (module flash_attn_interface) ----------------------------------------------------------
def fa3_func(q, k, v, softmax_scale=None, causal=False, qv=None, q_descale=None, k_descale=None, v_descale=None,
             window_size=(-1, -1), attention_chunk=0, softcap=0.0, num_splits=1, pack_gqa=None, deterministic=False,
             sm_margin=0, return_attn_probs=False):
    _unsupported(0.0, qv if qv is not None else None, attention_chunk)
    out, lse = attention(q, k, v, softmax_scale, causal, window_size, softcap, return_attn_probs)
    return (out, lse) if return_attn_probs else out


def fa3_varlen_func(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q=None, max_seqlen_k=None, seqused_q=None,
                    seqused_k=None, softmax_scale=None, causal=False, qv=None, q_descale=None, k_descale=None,
                    v_descale=None, window_size=(-1, -1), attention_chunk=0, softcap=0.0, num_splits=1,
                    pack_gqa=None, deterministic=False, sm_margin=0, return_attn_probs=False):
    _unsupported(0.0, qv, attention_chunk, seqused_q, seqused_k)
    out, lse = varlen_attention(q, k, v, cu_seqlens_q, cu_seqlens_k, softmax_scale, causal, window_size, softcap,
                                return_attn_probs)
    return (out, lse) if return_attn_probs else out


def _unsupported(dropout_p, *others) -> None:
    if dropout_p:
        raise NotImplementedError("the replay's FlashAttention stand-in has no dropout")
    if any(o is not None and not (isinstance(o, (int, float)) and o == 0) for o in others):
        raise NotImplementedError("the replay's FlashAttention stand-in has no alibi/qv/chunked/seqused attention")


def _module(name: str, label: str, record, functions: dict) -> types.ModuleType:
    """A module of `functions`, each noting `label` in the record when the run first calls it."""
    mod = types.ModuleType(name, f"golf replay stand-in for {name} (audit.replay.emulation.flash_attn)")
    for key, fn in functions.items():
        setattr(mod, key, _noting(fn, label, record))
    return mod


def _noting(fn, label: str, record):
    @functools.wraps(fn)
    def called(*args, **kwargs):
        record.note(label)
        return fn(*args, **kwargs)

    return called


FA2 = dict(flash_attn_func=fa2_func, flash_attn_varlen_func=fa2_varlen_func)
FA3 = dict(flash_attn_func=fa3_func, flash_attn_varlen_func=fa3_varlen_func)
FA2_LABEL = "flash_attn stand-in (FA2 via sdpa)"
FA3_LABEL = "flash_attn_interface stand-in (FA3 via sdpa)"


def install(record) -> None:
    """Register the stand-in modules for the FlashAttention modules that cannot be imported."""
    if importlib.util.find_spec("flash_attn") is None:
        top = _module("flash_attn", FA2_LABEL, record, FA2)
        top.__path__ = []  # a package, for `from flash_attn.flash_attn_interface import ...`
        sys.modules["flash_attn"] = top
        sys.modules["flash_attn.flash_attn_interface"] = top.flash_attn_interface = _module(
            "flash_attn.flash_attn_interface", FA2_LABEL, record, FA2)
    if importlib.util.find_spec("flash_attn_interface") is None:
        sys.modules["flash_attn_interface"] = _module("flash_attn_interface", FA3_LABEL, record, FA3)
