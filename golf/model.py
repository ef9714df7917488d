"""The GPT of PR #1004 (shared/spec/reference.md section 2), every component switchable by config.

Stem: tied token embedding + BigramHash -> RMSNorm -> SmearGate (= x0). Blocks: resid_mix of x and
x0, pre-norm attention (QK-norm, partial RoPE with the NTK base rule, q-gain, XSA, value embeddings)
and ReLU^2 MLP with per-channel output scales and the 1/sqrt(l+1) LN scale; U-Net skips from the
encoder half to the decoder half (LIFO). Head: final RMSNorm, tied logits, soft-cap 30.

Attention goes through torch's scaled_dot_product_attention, which picks flash kernels on GPU and the
math path on CPU. Late QAT is a per-layer switch on the block matrices (`GPT.set_qat`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Late-QAT fake-quant grid (section 3.5): int5 codes in [-16, 15], row scale from the 0.9995 quantile.
QAT_QMIN, QAT_QMAX = -16, 15
QAT_ROW_QUANTILE = 0.9995


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int = 1024
    num_layers: int = 11
    model_dim: int = 512
    num_heads: int = 8
    num_kv_heads: int = 8
    mlp_mult: float = 3.5
    negative_slope: float = 0.0  # 0: ReLU^2; > 0: LeakyReLU(slope)^2
    tie_embeddings: bool = True
    tied_embed_init_std: float = 0.005
    logit_softcap: float = 30.0
    rope_base: float = 10000.0
    rope_dims: int = 16  # rotated dims per head (0: no RoPE)
    rope_train_seq_len: int = 1024  # NTK base rule above this length (0: off)
    qk_norm: bool = True
    qk_gain_init: float = 1.5
    ln_scale: bool = True
    resid_mix: bool = True
    unet_skips: bool = True
    smear_gate: bool = True
    smear_bos_mask: bool = True  # a BOS token does not take in the previous document's last token
    bos_id: int = 1  # the challenge tokenizer's BOS id (golf.data.tokenizer.BOS_ID)
    bigram_vocab_size: int = 8192  # 0: no BigramHash
    bigram_dim: int = 128
    xsa_last_n: int = -1  # -1: all layers; 0: none; n: the last n
    ve_dim: int = 128
    ve_layers: tuple[int, ...] = (9, 10)  # empty: no value embeddings
    ortho_init_min_dim: int = 64

    @property
    def head_dim(self) -> int:
        return self.model_dim // self.num_heads

    @property
    def kv_dim(self) -> int:
        return self.num_kv_heads * self.head_dim

    @property
    def mlp_hidden(self) -> int:
        return int(self.mlp_mult * self.model_dim)

    @property
    def num_encoder_layers(self) -> int:
        return self.num_layers // 2 if self.unet_skips else 0

    def xsa_layers(self) -> tuple[int, ...]:
        n = self.num_layers if self.xsa_last_n < 0 else min(self.xsa_last_n, self.num_layers)
        return tuple(range(self.num_layers - n, self.num_layers))


def rms_norm(x: Tensor) -> Tensor:
    """RMSNorm over the last dim, no gain, eps = dtype machine epsilon (PyTorch default)."""
    return F.rms_norm(x, (x.size(-1),))


def ntk_rope_base(base: float, seq_len: int, train_seq_len: int, rope_dims: int) -> float:
    """NTK-style base: base * (T / T_train)^(r / (r - 2)) for T > T_train, else base."""
    if train_seq_len <= 0 or seq_len <= train_seq_len:
        return base
    return base * (seq_len / train_seq_len) ** (rope_dims / (rope_dims - 2))


def fake_quantize_rows(w: Tensor) -> Tensor:
    """Late-QAT int5 fake-quant: clamp(round(w / d), -16, 15) * d, d_row = max(q_0.9995(|w_row|) / 15, 1/15)."""
    w32 = w.detach().float()
    delta = (torch.quantile(w32.abs(), QAT_ROW_QUANTILE, dim=1) / QAT_QMAX).clamp_min(1.0 / QAT_QMAX)
    return (torch.clamp(torch.round(w32 / delta[:, None]), QAT_QMIN, QAT_QMAX) * delta[:, None]).to(w.dtype)


class BlockLinear(nn.Linear):
    """A bias-free block matrix; with `qat` set, the training forward sees the int5 fake-quantised
    weight through a straight-through estimator."""

    def __init__(self, in_features: int, out_features: int, zero_init: bool = False):
        super().__init__(in_features, out_features, bias=False)
        self.zero_init = zero_init
        self.qat = False

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight
        if self.qat and self.training:
            w = w + (fake_quantize_rows(w) - w).detach()
        return F.linear(x, w)


class Rotary(nn.Module):
    """Partial RoPE on the first `rope_dims` dims of each head, non-interleaved halves."""

    def __init__(self, rope_dims: int, base: float, train_seq_len: int):
        super().__init__()
        self.rope_dims = rope_dims
        self.base = base
        self.train_seq_len = train_seq_len
        self._cache: tuple[int, torch.device, Tensor, Tensor] | None = None

    def cos_sin(self, seq_len: int, device: torch.device) -> tuple[Tensor, Tensor]:
        if self._cache is None or self._cache[0] != seq_len or self._cache[1] != device:
            r = self.rope_dims
            base = ntk_rope_base(self.base, seq_len, self.train_seq_len, r)
            # a cache first built while scoring under inference_mode must still serve training
            # (score-first TTT trains right after scoring): inference tensors cannot enter autograd
            with torch.inference_mode(False):
                inv_freq = base ** (-torch.arange(0, r, 2, dtype=torch.float32, device=device) / r)
                angles = torch.outer(torch.arange(seq_len, dtype=torch.float32, device=device), inv_freq)
                self._cache = (seq_len, device, angles.cos()[None, :, None, :], angles.sin()[None, :, None, :])
        return self._cache[2], self._cache[3]

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, T, heads, head_dim]."""
        cos, sin = self.cos_sin(x.size(1), x.device)
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
        half = self.rope_dims // 2
        a, b, rest = x[..., :half], x[..., half : self.rope_dims], x[..., self.rope_dims :]
        return torch.cat((a * cos + b * sin, b * cos - a * sin, rest), dim=-1)


def exclude_self_value(y: Tensor, v: Tensor) -> Tensor:
    """XSA: remove from each head's output its component along the token's own normalised value.

    y: [B, T, H, h], v: [B, T, H_kv, h]; heads are grouped by reshaping, not repeat_interleave."""
    B, T, H, h = y.shape
    groups = v.size(2)
    y_g = y.reshape(B, T, groups, H // groups, h)
    v_hat = F.normalize(v, dim=-1).unsqueeze(3)
    return (y_g - (y_g * v_hat).sum(-1, keepdim=True) * v_hat).reshape(B, T, H, h)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, xsa: bool):
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        self.qk_norm = cfg.qk_norm
        self.xsa = xsa
        self.c_q = BlockLinear(cfg.model_dim, cfg.model_dim)
        self.c_k = BlockLinear(cfg.model_dim, cfg.kv_dim)
        self.c_v = BlockLinear(cfg.model_dim, cfg.kv_dim)
        self.proj = BlockLinear(cfg.model_dim, cfg.model_dim, zero_init=True)
        self.q_gain = nn.Parameter(torch.full((cfg.num_heads,), cfg.qk_gain_init))
        self.rotary = Rotary(cfg.rope_dims, cfg.rope_base, cfg.rope_train_seq_len) if cfg.rope_dims else None

    def forward(self, x: Tensor, ve: Tensor | None) -> Tensor:
        B, T, d = x.shape
        q = self.c_q(x).view(B, T, self.num_heads, self.head_dim)
        k = self.c_k(x).view(B, T, self.num_kv_heads, self.head_dim)
        v = self.c_v(x)
        if ve is not None:
            v = v + ve
        v = v.view(B, T, self.num_kv_heads, self.head_dim)
        if self.qk_norm:
            q, k = rms_norm(q), rms_norm(k)
        if self.rotary is not None:
            q, k = self.rotary(q), self.rotary(k)
        q = q * self.q_gain.to(q.dtype)[None, None, :, None]
        y = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
            is_causal=True, enable_gqa=self.num_kv_heads != self.num_heads,
        ).transpose(1, 2)
        if self.xsa:
            y = exclude_self_value(y, v)
        return self.proj(y.reshape(B, T, d))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.negative_slope = cfg.negative_slope
        self.fc = BlockLinear(cfg.model_dim, cfg.mlp_hidden)
        self.proj = BlockLinear(cfg.mlp_hidden, cfg.model_dim, zero_init=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(F.leaky_relu(self.fc(x), self.negative_slope).square())


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int):
        super().__init__()
        d = cfg.model_dim
        self.attn = Attention(cfg, xsa=layer in cfg.xsa_layers())
        self.mlp = MLP(cfg)
        self.attn_scale = nn.Parameter(torch.ones(d))
        self.mlp_scale = nn.Parameter(torch.ones(d))
        self.resid_mix = nn.Parameter(torch.stack((torch.ones(d), torch.zeros(d)))) if cfg.resid_mix else None
        self.ln_factor = 1.0 / math.sqrt(layer + 1) if cfg.ln_scale else 1.0

    def forward(self, x: Tensor, x0: Tensor, ve: Tensor | None) -> Tensor:
        if self.resid_mix is not None:
            mix = self.resid_mix.to(x.dtype)
            x = mix[0] * x + mix[1] * x0
        x = x + self.attn_scale.to(x.dtype) * self.attn(rms_norm(x) * self.ln_factor, ve)
        return x + self.mlp_scale.to(x.dtype) * self.mlp(rms_norm(x) * self.ln_factor)


class BigramHash(nn.Module):
    """Hashed embedding of (previous, current) token pairs; bucket K-1 means "no previous token"."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.buckets = cfg.bigram_vocab_size
        self.embed = nn.Embedding(cfg.bigram_vocab_size, cfg.bigram_dim)
        nn.init.zeros_(self.embed.weight)
        self.proj = nn.Linear(cfg.bigram_dim, cfg.model_dim, bias=False)
        nn.init.zeros_(self.proj.weight)  # re-initialised by GPT's init pass
        self.scale = nn.Parameter(torch.tensor(0.05))

    def bucket_ids(self, ids: Tensor) -> Tensor:
        """idx_0 = K-1; idx_i = ((36313 t_i) XOR (27191 t_{i-1})) mod (K-1), in int32."""
        t = ids.to(torch.int32)
        mod = self.buckets - 1
        out = torch.full_like(t, mod)
        out[..., 1:] = torch.bitwise_xor(36313 * t[..., 1:], 27191 * t[..., :-1]) % mod
        return out.long()

    def forward(self, ids: Tensor) -> Tensor:
        return self.scale * self.proj(self.embed(self.bucket_ids(ids)))


class SmearGate(nn.Module):
    """x_i <- (1 - sigmoid(g)) x_i + sigmoid(g) x_{i-1}, with x_{-1} = 0.

    With `bos_id` set, x_{i-1} is taken as 0 where token i is BOS, so that packed documents do not
    leak into each other (the DOC-1 ruling on PR #1797).
    """

    def __init__(self, dim: int, bos_id: int | None = None):
        super().__init__()
        self.gate = nn.Parameter(torch.zeros(dim))
        self.bos_id = bos_id

    def forward(self, x: Tensor, input_ids: Tensor) -> Tensor:
        g = torch.sigmoid(self.gate.to(x.dtype))
        prev = F.pad(x[:, :-1], (0, 0, 1, 0))
        if self.bos_id is not None:
            prev = prev.masked_fill((input_ids == self.bos_id).unsqueeze(-1), 0.0)
        return (1 - g) * x + g * prev


class ValueEmbedding(nn.Module):
    """One shared table E_ve projected to the KV width, scaled by s_ve (per-layer scales live in GPT)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.embed = nn.Embedding(cfg.vocab_size, cfg.ve_dim)
        nn.init.normal_(self.embed.weight, std=0.01)
        self.proj = nn.Linear(cfg.ve_dim, cfg.kv_dim, bias=False)
        nn.init.zeros_(self.proj.weight)  # re-initialised by GPT's init pass
        self.scale = nn.Parameter(torch.tensor(0.1))

    def forward(self, ids: Tensor) -> Tensor:
        return self.scale * self.proj(self.embed(ids))


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.logit_softcap = cfg.logit_softcap
        d = cfg.model_dim
        self.tok_emb = nn.Embedding(cfg.vocab_size, d)
        self.bigram = BigramHash(cfg) if cfg.bigram_vocab_size > 0 else None
        self.smear = SmearGate(d, cfg.bos_id if cfg.smear_bos_mask else None) if cfg.smear_gate else None
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.num_layers))
        n_enc = cfg.num_encoder_layers
        n_skips = min(n_enc, cfg.num_layers - n_enc)
        self.skip_weights = nn.Parameter(torch.ones(n_skips, d)) if n_skips else None
        self.ve_layers = tuple(cfg.ve_layers)
        if any(not 0 <= i < cfg.num_layers for i in self.ve_layers):
            raise ValueError(f"value-embedding layers {self.ve_layers} outside 0..{cfg.num_layers - 1}")
        self.ve_shared = ValueEmbedding(cfg) if self.ve_layers else None
        self.ve_layer_scales = nn.ParameterList(nn.Parameter(torch.ones(1)) for _ in self.ve_layers)
        self.lm_head = None if cfg.tie_embeddings else nn.Linear(d, cfg.vocab_size, bias=False)
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self) -> None:
        """Section 2.9: E_tok ~ N(0, 0.005^2); zero-init flagged matrices; orthogonal for the other
        Linear layers with both dims >= ortho_init_min_dim, scaled by 1/sqrt(2L) for names ending in
        ".proj". Skipped on the meta device (parameter counting without memory)."""
        if self.tok_emb.weight.is_meta:
            return
        cfg = self.config
        nn.init.normal_(self.tok_emb.weight, std=cfg.tied_embed_init_std)
        if self.lm_head is not None:
            nn.init.zeros_(self.lm_head.weight)
        proj_scale = 1.0 / math.sqrt(2 * cfg.num_layers)
        for name, module in self.named_modules():
            if not isinstance(module, nn.Linear) or module is self.lm_head:
                continue
            if getattr(module, "zero_init", False):
                nn.init.zeros_(module.weight)
            elif min(module.weight.shape) >= cfg.ortho_init_min_dim:
                nn.init.orthogonal_(module.weight)
                if name.endswith(".proj"):
                    module.weight.mul_(proj_scale)

    def set_qat(self, enabled: bool) -> None:
        """Switch late-QAT fake-quantisation of every block matrix on or off."""
        for module in self.blocks.modules():
            if isinstance(module, BlockLinear):
                module.qat = enabled

    def hidden_states(self, input_ids: Tensor) -> Tensor:
        """Final-normed hidden states [B, T, d]."""
        x = self.tok_emb(input_ids)
        if self.bigram is not None:
            x = x + self.bigram(input_ids)
        x = rms_norm(x)
        if self.smear is not None:
            x = self.smear(x, input_ids)
        x0 = x
        ve_base = self.ve_shared(input_ids) if self.ve_shared is not None else None
        n_enc = self.config.num_encoder_layers
        skips: list[Tensor] = []
        for i, block in enumerate(self.blocks):
            if i >= n_enc and skips:
                x = x + self.skip_weights[i - n_enc].to(x.dtype) * skips.pop()
            ve = None
            if i in self.ve_layers:
                ve = self.ve_layer_scales[self.ve_layers.index(i)].to(ve_base.dtype) * ve_base
            x = block(x, x0, ve)
            if i < n_enc:
                skips.append(x)
        return rms_norm(x)

    def forward_logits(self, input_ids: Tensor) -> Tensor:
        """Raw logits [B, T, V] before the soft-cap."""
        x = self.hidden_states(input_ids)
        head = self.tok_emb.weight if self.lm_head is None else self.lm_head.weight
        return F.linear(x, head.to(x.dtype))

    def capped_logits(self, input_ids: Tensor) -> Tensor:
        """fp32 logits after the soft-cap c * tanh(z / c): what the loss and the scores use."""
        z = self.forward_logits(input_ids).float()
        return self.logit_softcap * torch.tanh(z / self.logit_softcap)

    def token_nll(self, input_ids: Tensor, target_ids: Tensor) -> Tensor:
        """Per-token NLL in nats [B, T] (fp32)."""
        logits = self.capped_logits(input_ids)
        return F.cross_entropy(logits.flatten(0, 1), target_ids.flatten(), reduction="none").view_as(target_ids)

    def forward(self, input_ids: Tensor, target_ids: Tensor) -> Tensor:
        """Mean cross-entropy of the soft-capped fp32 logits."""
        logits = self.capped_logits(input_ids)
        return F.cross_entropy(logits.flatten(0, 1), target_ids.flatten())
