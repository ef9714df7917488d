"""Hyperparameters of every stage (data, model, optimiser, schedule, EMA, QAT, quantisation, eval,
TTT, budgets), the `smoke` and `record` presets, and overrides from parameter-golf's env vars.

`Hyperparameters.from_env("record", os.environ)` reads the same variable names as the records'
train_gpt.py (ITERATIONS, MODEL_DIM, TTT_LR, ...); every field can be overridden by the upper-case
form of its name unless `_ENV_NAMES` maps it to the name the records use. A malformed value raises
GolfError naming the variable. This module does not import torch.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Mapping

from golf.errors import GolfError


@dataclass
class Hyperparameters:
    # --- data -------------------------------------------------------------------------------
    data_path: str = ""  # folder with the shards and the tokenizer (golf.data.layout)
    tokenizer_path: str = ""  # empty: the tokenizer found in data_path
    vocab_size: int = 0  # 0: the tokenizer's vocabulary size
    seed: int = 1337

    # --- model (reference.md section 2) ---------------------------------------------------------
    num_layers: int = 11
    model_dim: int = 512
    num_heads: int = 8
    num_kv_heads: int = 8
    mlp_mult: float = 3.5
    negative_slope: float = 0.0  # 0: ReLU^2 (PR #1004); 0.5: LeakyReLU(0.5)^2 (merged records)
    tie_embeddings: bool = True
    tied_embed_init_std: float = 0.005
    logit_softcap: float = 30.0
    rope_base: float = 10000.0
    rope_dims: int = 16
    rope_train_seq_len: int = 1024  # NTK base rule: hard-coded 1024 in the records; 0 disables it
    qk_norm: bool = True
    qk_gain_init: float = 1.5
    ln_scale: bool = True
    resid_mix: bool = True
    unet_skips: bool = True
    smear_gate: bool = True
    smear_bos_mask: bool = True  # DOC-1: no smearing across a document boundary (PR #1004 had none)
    bigram_vocab_size: int = 8192  # 0 disables BigramHash
    bigram_dim: int = 128
    xsa_last_n: int = -1  # -1: every layer; 0: off; n: the last n layers
    ve_dim: int = 128
    ve_layers: str = "9,10"  # empty disables the value embeddings
    ortho_init_min_dim: int = 64  # Linear layers with both dims >= this get orthogonal init

    # --- optimiser (section 3.1-3.3) -------------------------------------------------------------
    matrix_lr: float = 0.025
    scalar_lr: float = 0.025
    tied_embed_lr: float = 0.035
    head_lr: float = 0.008
    muon_momentum: float = 0.99
    muon_momentum_warmup_start: float = 0.92
    muon_momentum_warmup_steps: int = 1500
    muon_backend_steps: int = 5
    muon_wd: float = 0.04
    adam_wd: float = 0.04
    beta1: float = 0.9
    beta2: float = 0.95
    adam_eps: float = 1e-8
    grad_clip_norm: float = 0.3

    # --- schedule and batch (sections 1.4, 3.3, 3.4) -------------------------------------------
    iterations: int = 20000
    warmdown_iters: int = 3500
    warmup_steps: int = 20  # compile warm-up steps, rolled back afterwards
    train_batch_tokens: int = 786_432
    train_seq_len: int = 2048
    micro_batches: int = 8  # the global batch is split into this many (rank x grad-accum) pieces
    max_wallclock_seconds: float = 600.0  # loop cap of the LR schedule (minus the GPTQ reserve); 0: none
    val_loss_every: int = 4000  # in-loop validation every n steps (0: only the last), outside the timer
    val_batch_seqs: int = 32
    train_log_every: int = 500
    compile: bool = True  # torch.compile on CUDA (never on CPU)

    # --- weight averaging and QAT (sections 3.5, 3.6) ------------------------------------------
    ema_enabled: bool = True
    ema_decay: float = 0.997
    qat_enabled: bool = False  # fake-quantise from step 0
    late_qat_threshold: float = 0.5  # enable fake-quant once the LR multiplier drops below this

    # --- quantisation and artifact (section 4) -------------------------------------------------
    quant_bits: int = 5
    embed_quant_bits: int = 8
    gptq_block_size: int = 128
    gptq_damp: float = 0.01
    gptq_act_order: bool = True
    gptq_mode: str = "canonical"  # canonical | pr1004
    prune_fraction: float = 0.05
    fp16_passthrough_numel: int = 65_536
    gptq_calib_seqs: int = 256
    gptq_reserve_seconds: float = 10.0
    artifact_budget_bytes: int = 16_000_000

    # --- evaluation (section 5.1) --------------------------------------------------------------
    eval_seq_len: int = 2048
    eval_stride: int = 64
    eval_batch_seqs: int = 32
    records_compat: bool = False

    # --- score-first TTT (section 5.2) ---------------------------------------------------------
    ttt_enabled: bool = True
    ttt_chunk_tokens: int = 131_072
    ttt_epochs: int = 3
    ttt_lr: float = 1e-4
    ttt_last_blocks: int = 2
    ttt_batch_seqs: int = 32
    ttt_grad_clip: float = 1.0

    # --- hard budgets (section 5.3) ------------------------------------------------------------
    train_budget_seconds: float = 600.0  # training loop + calibration
    eval_budget_seconds: float = 600.0

    @classmethod
    def preset(cls, name: str) -> "Hyperparameters":
        """A fresh copy of preset `name` (smoke | record)."""
        if name not in PRESETS:
            raise GolfError(f"unknown preset {name!r} (choose from: {', '.join(sorted(PRESETS))})")
        return dataclasses.replace(PRESETS[name])

    @classmethod
    def from_env(cls, preset: str, environ: Mapping[str, str]) -> "Hyperparameters":
        """Preset `preset` with the parameter-golf env vars in `environ` applied on top."""
        hp = cls.preset(preset)
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            env_name = _ENV_NAMES.get(f.name, f.name.upper())
            if env_name in environ:
                setattr(hp, f.name, _parse(env_name, environ[env_name], hints[f.name]))
        hp.validate()
        return hp

    def validate(self) -> None:
        """Reject combinations that cannot run, with one line naming the knob."""
        checks = [
            (self.model_dim % self.num_heads == 0, "MODEL_DIM must be divisible by NUM_HEADS"),
            (self.num_heads % self.num_kv_heads == 0, "NUM_HEADS must be divisible by NUM_KV_HEADS"),
            ((self.model_dim // self.num_heads) % 2 == 0, "head dim (MODEL_DIM / NUM_HEADS) must be even"),
            (self.rope_dims % 2 == 0 and self.rope_dims <= self.model_dim // self.num_heads,
             "ROPE_DIMS must be even and at most the head dim"),
            (self.logit_softcap > 0, "LOGIT_SOFTCAP must be positive"),
            (self.micro_batches > 0, "MICRO_BATCHES must be positive"),
            (self.train_seq_len > 0 and self.train_batch_tokens % (self.micro_batches * self.train_seq_len) == 0,
             "TRAIN_BATCH_TOKENS must be a multiple of MICRO_BATCHES * TRAIN_SEQ_LEN"),
            (self.iterations >= 0 and self.warmdown_iters >= 0 and self.warmup_steps >= 0,
             "ITERATIONS, WARMDOWN_ITERS and WARMUP_STEPS must not be negative"),
            (0.0 <= self.ema_decay < 1.0, "EMA_DECAY must be in [0, 1)"),
            (self.gptq_mode in ("canonical", "pr1004"), "GPTQ_MODE must be canonical or pr1004"),
            (0.0 <= self.prune_fraction < 1.0, "PRUNE_FRACTION must be in [0, 1)"),
        ]
        for ok, message in checks:
            if not ok:
                raise GolfError(message)
        try:
            self.ve_layer_indices()
        except ValueError:
            raise GolfError(f"VE_LAYERS must be comma-separated integers, got {self.ve_layers!r}") from None

    def ve_layer_indices(self) -> tuple[int, ...]:
        return tuple(int(x) for x in self.ve_layers.split(",") if x.strip())

    def grad_accum_steps(self, world_size: int) -> int:
        """Micro-steps per optimiser step on each rank; world x accum = micro_batches, as in the records."""
        if self.micro_batches % world_size != 0:
            raise GolfError(f"world size {world_size} must divide MICRO_BATCHES={self.micro_batches}")
        return self.micro_batches // world_size

    def model_config(self, vocab_size: int | None = None):
        """The golf.model.ModelConfig of these hyperparameters (imports torch)."""
        from golf.model import ModelConfig

        vocab = vocab_size if vocab_size is not None else self.vocab_size
        if vocab <= 0:
            raise GolfError("VOCAB_SIZE is unknown: set it or load the tokenizer first")
        return ModelConfig(
            vocab_size=vocab,
            num_layers=self.num_layers,
            model_dim=self.model_dim,
            num_heads=self.num_heads,
            num_kv_heads=self.num_kv_heads,
            mlp_mult=self.mlp_mult,
            negative_slope=self.negative_slope,
            tie_embeddings=self.tie_embeddings,
            tied_embed_init_std=self.tied_embed_init_std,
            logit_softcap=self.logit_softcap,
            rope_base=self.rope_base,
            rope_dims=self.rope_dims,
            rope_train_seq_len=self.rope_train_seq_len,
            qk_norm=self.qk_norm,
            qk_gain_init=self.qk_gain_init,
            ln_scale=self.ln_scale,
            resid_mix=self.resid_mix,
            unet_skips=self.unet_skips,
            smear_gate=self.smear_gate,
            smear_bos_mask=self.smear_bos_mask,
            bigram_vocab_size=self.bigram_vocab_size,
            bigram_dim=self.bigram_dim,
            xsa_last_n=self.xsa_last_n,
            ve_dim=self.ve_dim,
            ve_layers=self.ve_layer_indices(),
            ortho_init_min_dim=self.ortho_init_min_dim,
        )

    def as_dict(self) -> dict:
        """Plain JSON-able dict of every knob (run.json "config" and the log)."""
        return dataclasses.asdict(self)


# Fields whose env var in the records' train_gpt.py is not simply the upper-case field name.
_ENV_NAMES = {
    "ttt_grad_clip": "TTT_GRAD_CLIP",
    "ttt_batch_seqs": "TTT_BATCH_SEQS",
    "gptq_calib_seqs": "GPTQ_CALIB_SAMPLES",
    "val_batch_seqs": "VAL_BATCH_SEQS",
}


def _parse(env_name: str, raw: str, kind) -> object:
    text = raw.strip()
    try:
        if kind is bool:
            lowered = text.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if kind is int:
            return int(text.replace("_", ""))
        if kind is float:
            return float(text)
        return text
    except ValueError:
        expected = {bool: "0 or 1", int: "an integer", float: "a number"}.get(kind, "a string")
        raise GolfError(f"environment variable {env_name}={raw!r} is not {expected}") from None


RECORD = Hyperparameters()

SMOKE = dataclasses.replace(
    RECORD,
    num_layers=3,
    model_dim=64,
    num_heads=4,
    num_kv_heads=2,
    rope_dims=8,
    bigram_vocab_size=128,
    bigram_dim=16,
    ve_dim=16,
    ve_layers="1,2",
    ortho_init_min_dim=16,  # so that the small projections are not left at zero (dead bigram)
    iterations=40,
    warmdown_iters=15,
    warmup_steps=2,
    train_batch_tokens=8 * 128,
    train_seq_len=128,
    micro_batches=2,
    max_wallclock_seconds=0.0,  # iteration-driven schedule; the hard 600 s budget still applies
    muon_momentum_warmup_steps=10,
    val_loss_every=0,
    train_log_every=10,
    ema_decay=0.9,
    gptq_block_size=32,
    fp16_passthrough_numel=1024,
    gptq_calib_seqs=8,
    eval_seq_len=128,
    eval_stride=32,
    eval_batch_seqs=32,
    ttt_chunk_tokens=1024,
    ttt_lr=1e-3,
    ttt_last_blocks=1,
    ttt_batch_seqs=4,
)

PRESETS: dict[str, Hyperparameters] = {"record": RECORD, "smoke": SMOKE}
