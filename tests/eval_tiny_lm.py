"""A tiny causal LM with the scoring interface of golf.model.GPT, plus fake byte tables.

forward_logits(ids) gives raw logits before the soft-cap, forward(ids, targets) the mean training
CE, `logit_softcap` and `blocks` are attributes, and the per-block output scales are parameters
named "*scale". Used by the evaluation tests so they do not depend on the full model.
"""

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from golf.eval.bpb import ByteLUTs


class TinyBlock(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.attn_norm = nn.RMSNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)
        self.attn_scale = nn.Parameter(torch.ones(dim))
        self.mlp_norm = nn.RMSNorm(dim)
        self.fc = nn.Linear(dim, 2 * dim, bias=False)
        self.out = nn.Linear(2 * dim, dim, bias=False)
        self.mlp_scale = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.attn_norm(x)).view(b, t, 3, self.heads, d // self.heads).unbind(2)
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
        x = x + self.attn_scale * self.proj(y.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp_scale * self.out(F.relu(self.fc(self.mlp_norm(x))).square())


class TinyCausalLM(nn.Module):
    def __init__(self, vocab: int = 64, dim: int = 32, n_blocks: int = 2, heads: int = 2, logit_softcap: float = 30.0):
        super().__init__()
        self.logit_softcap = logit_softcap
        self.tok_emb = nn.Embedding(vocab, dim)
        self.blocks = nn.ModuleList(TinyBlock(dim, heads) for _ in range(n_blocks))
        self.final_norm = nn.RMSNorm(dim)
        nn.init.normal_(self.tok_emb.weight, std=0.1)

    def forward_logits(self, input_ids):
        x = self.tok_emb(input_ids)
        for block in self.blocks:
            x = block(x)
        return self.final_norm(x) @ self.tok_emb.weight.T

    def forward(self, input_ids, target_ids):
        z = self.forward_logits(input_ids).float()
        z = self.logit_softcap * torch.tanh(z / self.logit_softcap)
        return F.cross_entropy(z.reshape(-1, z.size(-1)), target_ids.reshape(-1))


def tiny_model(seed: int = 0, **kwargs) -> TinyCausalLM:
    torch.manual_seed(seed)
    return TinyCausalLM(**kwargs)


def fake_luts(vocab: int = 64, seed: int = 0) -> ByteLUTs:
    """Ids 0-3 are control/unknown (boundary, 0 bytes); the rest 1-4 bytes, half with a leading space."""
    rng = np.random.default_rng(seed)
    base = rng.integers(1, 5, vocab).astype(np.int16)
    space = rng.random(vocab) < 0.5
    boundary = np.zeros(vocab, dtype=bool)
    boundary[:4] = True
    base[:4] = 0
    space[:4] = False
    return ByteLUTs(base_bytes=base, has_leading_space=space, is_boundary=boundary)


def patterned_tokens(n_tokens: int, vocab: int = 64, seed: int = 0) -> torch.Tensor:
    """A learnable stream: BOS-led documents of a few repeated phrases, as int64."""
    rng = np.random.default_rng(seed)
    phrases = [rng.integers(4, vocab, rng.integers(3, 9)) for _ in range(12)]
    out = []
    while sum(map(len, out)) < n_tokens:
        out.append(np.array([1]))
        for _ in range(rng.integers(5, 30)):
            out.append(phrases[rng.integers(len(phrases))])
    return torch.from_numpy(np.concatenate(out)[:n_tokens].astype(np.int64))
