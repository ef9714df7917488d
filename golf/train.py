"""The training loop of reference.md section 3, single process or DDP under torchrun.

Order: build the model (seeded), compile warm-up steps whose weight and optimiser changes are
rolled back, then the timed loop: per step `micro_batches / world` micro-steps of the shared token
stream, global grad-norm clip, Muon + AdamW at the warm-down LR multiplier, EMA update. The loop
stops at ITERATIONS or at the wallclock cap (MAX_WALLCLOCK_SECONDS minus the GPTQ reserve), and
the hard training budget (loop + calibration, one timer) raises BudgetExceeded when spent. In-loop
validation (every VAL_LOSS_EVERY steps and at the last step) and the warm-up are left out of the
timer, as in the records. The EMA weights are
applied to the model that is returned.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from golf.budget import WallclockBudget
from golf.config import Hyperparameters
from golf.data.layout import DataLayout
from golf.data.shards import DistributedTokenLoader, load_validation_tokens
from golf.data.tokenizer import build_byte_luts, load_tokenizer
from golf.errors import BudgetExceeded
from golf.eval.bpb import BpbAccumulator, ByteLUTs
from golf.eval.sliding import synchronize
from golf.model import GPT
from golf.optim import EMA, OptimizerSet, lr_multiplier, muon_momentum_at
from golf.runlog import RunLog


@dataclass
class TrainResult:
    model: GPT  # EMA weights applied, QAT off, on the training device
    steps: int
    train_seconds: float  # the loop on the training timer (validation and warm-up excluded)
    log_path: Path
    budget: WallclockBudget  # the training timer, still running: calibration is charged to it
    stopped_early: bool  # the wallclock cap ended the loop before ITERATIONS


@dataclass(frozen=True)
class ValResult:
    val_loss: float
    val_bpb: float


class PausableClock:
    """A clock that leaves out the intervals spent inside `paused()` (in-loop validation)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.excluded = 0.0

    def __call__(self) -> float:
        return self.clock() - self.excluded

    @contextlib.contextmanager
    def paused(self):
        start = self.clock()
        try:
            yield
        finally:
            self.excluded += self.clock() - start


def training_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def autocast(device: torch.device):
    """bf16 autocast on CUDA; plain fp32 on CPU."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()


def all_ranks_mean(value: torch.Tensor, world: int) -> float:
    if world > 1:
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= world
    return float(value)


def any_rank(flags: list[bool], world: int, device: torch.device) -> list[bool]:
    """Element-wise OR of boolean flags over ranks, so every rank takes the same branch."""
    if world == 1:
        return flags
    t = torch.tensor([float(f) for f in flags], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]


def validation_data(layout: DataLayout, seq_len: int, vocab_size: int) -> tuple[torch.Tensor, ByteLUTs]:
    luts = build_byte_luts(load_tokenizer(layout.tokenizer_path), vocab_size)
    return load_validation_tokens(layout.val_pattern, seq_len), luts


@torch.no_grad()
def evaluate_val(model: GPT, val_tokens: torch.Tensor, luts: ByteLUTs, seq_len: int, batch_seqs: int,
                 rank: int = 0, world: int = 1, device: torch.device | str = "cpu") -> ValResult:
    """Non-sliding val_loss / val_bpb: consecutive sequences of seq_len, split over ranks."""
    device = torch.device(device)
    n_seqs = (val_tokens.numel() - 1) // seq_len
    first, last = n_seqs * rank // world, n_seqs * (rank + 1) // world
    acc = BpbAccumulator(device)
    was_training = model.training
    model.eval()
    try:
        for start in range(first, last, batch_seqs):
            end = min(start + batch_seqs, last)
            chunk = val_tokens[start * seq_len : end * seq_len + 1].to(device=device, dtype=torch.int64)
            x, y = chunk[:-1].view(-1, seq_len), chunk[1:].view(-1, seq_len)
            with autocast(device):
                nll = model.token_nll(x, y)
            acc.add(nll, x, y, luts)
    finally:
        model.train(was_training)
    acc.all_reduce()
    return ValResult(acc.val_loss, acc.val_bpb)


@contextlib.contextmanager
def rolled_back(model: torch.nn.Module, optimizers: OptimizerSet):
    """Whatever happens inside (compile warm-up steps) leaves weights and optimiser state as before."""
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    states = optimizers.state_dict()
    try:
        yield
    finally:
        model.load_state_dict(weights)
        optimizers.load_state_dict(states)
        optimizers.zero_grad()


class _Stepper:
    """One optimiser step: micro-steps over the shared stream, clip, step."""

    def __init__(self, hp: Hyperparameters, model: GPT, runner, ddp, optimizers: OptimizerSet,
                 world: int, device: torch.device):
        self.hp, self.model, self.runner, self.ddp = hp, model, runner, ddp
        self.optimizers, self.device = optimizers, device
        self.accum = hp.grad_accum_steps(world)

    def __call__(self, loader: DistributedTokenLoader) -> torch.Tensor:
        hp = self.hp
        self.optimizers.zero_grad()
        total = torch.zeros((), device=self.device)
        for micro in range(self.accum):
            x, y = loader.next_batch(hp.train_batch_tokens, hp.train_seq_len, self.accum)
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            # DDP averages gradients only on the last micro-step
            sync = self.ddp.no_sync() if self.ddp is not None and micro < self.accum - 1 else contextlib.nullcontext()
            with sync:
                with autocast(self.device):
                    loss = self.runner(x, y)
                (loss / self.accum).backward()
            total += loss.detach()
        if hp.grad_clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), hp.grad_clip_norm)
        self.optimizers.step()
        return total / self.accum


def train(hp: Hyperparameters, data_layout: DataLayout, out_dir: str | Path, rank: int = 0, world: int = 1,
          clock: Callable[[], float] = time.monotonic, log: RunLog | None = None) -> TrainResult:
    """Train a GPT on the layout's train shards; see the module docstring for the order of things."""
    out_dir = Path(out_dir)
    log = log or RunLog(out_dir / "train.log", enabled=rank == 0)
    device = training_device()
    torch.manual_seed(hp.seed)
    model = GPT(hp.model_config(data_layout.vocab_size)).to(device)
    distributed = world > 1
    ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) if distributed else None
    runner = ddp if ddp is not None else model
    compiled = hp.compile and device.type == "cuda"
    if compiled:
        runner = torch.compile(runner, dynamic=False)
    optimizers = OptimizerSet(model, hp)
    stepper = _Stepper(hp, model, runner, ddp, optimizers, world, device)
    log(f"model_params:{sum(p.numel() for p in model.parameters())}")
    log(f"world_size:{world} grad_accum_steps:{stepper.accum} device:{device.type}")
    log(f"xsa_layers:{list(model.config.xsa_layers())} ve_layers:{list(model.ve_layers)}")
    # the last step is always validated (raw weights, off the timer), as in the records
    validation = validation_data(data_layout, hp.train_seq_len, data_layout.vocab_size)
    log(f"tokenizer:{data_layout.tokenizer_path} vocab_size:{data_layout.vocab_size}")
    log(f"train_loader:{data_layout.train_pattern}")
    log(f"val_loader:{data_layout.val_pattern} tokens:{validation[0].numel() - 1}")

    model.train()
    if hp.warmup_steps > 0:
        with rolled_back(model, optimizers):
            warmup_loader = DistributedTokenLoader(data_layout.train_pattern, rank, world)
            for i in range(hp.warmup_steps):
                # with compilation, the last warm-up step also primes the graph of late QAT
                late_qat_primer = compiled and hp.late_qat_threshold > 0 and i == hp.warmup_steps - 1
                model.set_qat(hp.qat_enabled or late_qat_primer)
                stepper(warmup_loader)
                log(f"warmup_step:{i + 1}/{hp.warmup_steps}")

    synchronize(device)  # the warm-up's queued work is not the timed loop's
    timer = PausableClock(clock)
    budget = WallclockBudget("training", hp.train_budget_seconds, clock=timer)
    loop_cap = hp.max_wallclock_seconds - hp.gptq_reserve_seconds if hp.max_wallclock_seconds > 0 else 0.0
    if loop_cap > 0:
        log(f"wallclock_cap:{loop_cap:.1f}s (max_wallclock {hp.max_wallclock_seconds:.1f}s - gptq reserve "
            f"{hp.gptq_reserve_seconds:.1f}s) hard_budget:{budget.limit_s:.1f}s")
    loader = DistributedTokenLoader(data_layout.train_pattern, rank, world)
    ema = EMA(model, hp.ema_decay) if hp.ema_enabled else None
    model.set_qat(hp.qat_enabled)
    qat_on = hp.qat_enabled
    step, stop_after = 0, None
    while True:
        last = step == hp.iterations or (stop_after is not None and step >= stop_after)
        if step > 0 and (last or (hp.val_loss_every > 0 and step % hp.val_loss_every == 0)):
            synchronize(device)
            with timer.paused():
                val = evaluate_val(model, *validation, hp.train_seq_len, hp.val_batch_seqs, rank, world, device)
            elapsed = budget.elapsed()
            log(f"step:{step}/{hp.iterations} val_loss:{val.val_loss:.4f} val_bpb:{val.val_bpb:.4f} "
                f"train_time:{1000 * elapsed:.0f}ms step_avg:{1000 * elapsed / step:.2f}ms")
        if last:
            break
        scale = lr_multiplier(step, budget.elapsed(), hp.iterations, hp.warmdown_iters, loop_cap)
        if not qat_on and hp.late_qat_threshold > 0 and scale < hp.late_qat_threshold:
            model.set_qat(True)
            qat_on = True
            log(f"late_qat:enabled step:{step} scale:{scale:.4f}")
        optimizers.set_lr_multiplier(scale)
        optimizers.set_muon_momentum(muon_momentum_at(
            step, hp.muon_momentum_warmup_start, hp.muon_momentum, hp.muon_momentum_warmup_steps))
        train_loss = stepper(loader)
        if ema is not None:
            ema.update(model)
        step += 1
        elapsed = budget.elapsed()
        if hp.train_log_every > 0 and (step <= 10 or step % hp.train_log_every == 0 or step == hp.iterations):
            loss = all_ranks_mean(train_loss, world)
            log(f"step:{step}/{hp.iterations} train_loss:{loss:.4f} train_time:{1000 * elapsed:.0f}ms "
                f"step_avg:{1000 * elapsed / step:.2f}ms")
        reached_cap, over_budget = any_rank([loop_cap > 0 and elapsed >= loop_cap, budget.exceeded()], world, device)
        if over_budget:
            raise BudgetExceeded(f"training budget exceeded at step {step}: "
                                 f"{budget.elapsed():.1f} s > {budget.limit_s:.1f} s")
        if reached_cap and stop_after is None:
            stop_after = step
    synchronize(device)
    train_seconds = budget.elapsed()
    stopped_early = step < hp.iterations
    if stopped_early:
        log(f"stopping_early: wallclock_cap train_time:{1000 * train_seconds:.0f}ms step:{step}/{hp.iterations}")
    model.set_qat(False)
    if ema is not None:
        log("ema:applying EMA weights")
        ema.copy_to(model)
    return TrainResult(model=model, steps=step, train_seconds=train_seconds, log_path=log.path,
                       budget=budget, stopped_early=stopped_early)
