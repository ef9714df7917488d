"""Optimisers and schedules of reference.md section 3.

* Muon for the block matrices (+ bigram/VE projections): Nesterov momentum, Newton-Schulz-5
  orthogonalisation, sqrt(max(1, rows/cols)) scaling, decoupled weight decay; parameters are split
  round-robin over ranks and the updates shared with one all-reduce of a flat bf16 buffer.
* AdamW for the token group (embedding tables) and the scalar group (scales, gains, mixes, skips).
* The warm-down LR multiplier (iteration- and wallclock-driven), Muon momentum warm-up, and an EMA
  of the weights.
"""

from __future__ import annotations

import copy

import torch
import torch.distributed as dist
from torch import Tensor, nn

NS5_COEFFS = (3.4445, -4.7750, 2.0315)


def newton_schulz5(G: Tensor, steps: int = 5, eps: float = 1e-7) -> Tensor:
    """Approximate the orthogonal polar factor U V^T of G (bf16), as in the records' Muon."""
    a, b, c = NS5_COEFFS
    X = G.bfloat16()
    transposed = X.size(0) > X.size(1)
    if transposed:
        X = X.T
    X = X / (X.norm() + eps)
    for _ in range(steps):
        A = X @ X.T
        X = a * X + (b * A + c * (A @ A)) @ X
    return X.T if transposed else X


def _rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class Muon(torch.optim.Optimizer):
    """MomentUm Orthogonalized by Newton-Schulz, with decoupled weight decay.

    theta <- theta (1 - lr wd) - lr sqrt(max(1, rows/cols)) NS5(G + mu buf), buf <- mu buf + G."""

    def __init__(self, params, lr: float, momentum: float, backend_steps: int = 5,
                 nesterov: bool = True, weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, backend_steps=backend_steps,
                                      nesterov=nesterov, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        rank, world = _rank_world()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            # Each rank orthogonalises its round-robin share; one all-reduce shares every update.
            updates = torch.zeros(sum(p.numel() for p in params), dtype=torch.bfloat16, device=params[0].device)
            offset = 0
            for i, p in enumerate(params):
                if i % world == rank:
                    updates[offset : offset + p.numel()] = self._update(p, group).flatten()
                offset += p.numel()
            if world > 1:
                dist.all_reduce(updates, op=dist.ReduceOp.SUM)
            offset = 0
            for p in params:
                p.mul_(1.0 - group["lr"] * group["weight_decay"])
                p.add_(updates[offset : offset + p.numel()].view_as(p).to(p.dtype), alpha=-group["lr"])
                offset += p.numel()

    def _update(self, p: Tensor, group: dict) -> Tensor:
        state = self.state[p]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(p.grad)
        buf = state["momentum_buffer"]
        buf.mul_(group["momentum"]).add_(p.grad)
        g = p.grad.add(buf, alpha=group["momentum"]) if group["nesterov"] else buf
        update = newton_schulz5(g, steps=group["backend_steps"])
        return update * max(1.0, p.size(0) / p.size(1)) ** 0.5


def parameter_groups(model: nn.Module) -> dict[str, list[tuple[str, nn.Parameter]]]:
    """Section 3.1: token (embedding tables), matrix (Linear weights except an untied head),
    head (untied head), scalar (everything else)."""
    head = getattr(model, "lm_head", None)
    owner = {}
    for module_name, module in model.named_modules():
        for param_name, p in module.named_parameters(recurse=False):
            if isinstance(module, nn.Embedding):
                owner[id(p)] = "token"
            elif isinstance(module, nn.Linear):
                owner[id(p)] = "head" if module is head else "matrix"
    groups: dict[str, list[tuple[str, nn.Parameter]]] = {"token": [], "matrix": [], "scalar": [], "head": []}
    for name, p in model.named_parameters():
        groups[owner.get(id(p), "scalar")].append((name, p))
    return groups


class OptimizerSet:
    """The Muon + AdamW optimisers of one model, stepped and scheduled together."""

    def __init__(self, model: nn.Module, hp):
        groups = parameter_groups(model)
        fused = next(model.parameters()).is_cuda
        adam = dict(betas=(hp.beta1, hp.beta2), eps=hp.adam_eps, weight_decay=hp.adam_wd, fused=fused)
        self.muon = Muon([p for _, p in groups["matrix"]], lr=hp.matrix_lr, momentum=hp.muon_momentum,
                         backend_steps=hp.muon_backend_steps, weight_decay=hp.muon_wd)
        self.adams = [
            torch.optim.AdamW([p for _, p in groups[name]], lr=lr, **adam)
            for name, lr in (("token", hp.tied_embed_lr), ("scalar", hp.scalar_lr), ("head", hp.head_lr))
            if groups[name]
        ]
        self.optimizers: list[torch.optim.Optimizer] = [*self.adams, self.muon]
        for opt in self.optimizers:
            for group in opt.param_groups:
                group["base_lr"] = group["lr"]

    def set_lr_multiplier(self, multiplier: float) -> None:
        for opt in self.optimizers:
            for group in opt.param_groups:
                group["lr"] = group["base_lr"] * multiplier

    def set_muon_momentum(self, momentum: float) -> None:
        for group in self.muon.param_groups:
            group["momentum"] = momentum

    def step(self) -> None:
        for opt in self.optimizers:
            opt.step()

    def zero_grad(self) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)

    def state_dict(self) -> list[dict]:
        return [copy.deepcopy(opt.state_dict()) for opt in self.optimizers]

    def load_state_dict(self, states: list[dict]) -> None:
        for opt, state in zip(self.optimizers, states, strict=True):
            opt.load_state_dict(state)


def muon_momentum_at(step: int, start: float, end: float, warmup_steps: int) -> float:
    """Linear momentum warm-up start -> end over `warmup_steps` steps."""
    frac = min(step / warmup_steps, 1.0) if warmup_steps > 0 else 1.0
    return (1.0 - frac) * start + frac * end


def lr_multiplier(step: int, elapsed_s: float, iterations: int, warmdown_iters: int, cap_s: float) -> float:
    """Warm-down LR multiplier: goes linearly to 0 over the last `warmdown_iters` steps.

    With a wallclock cap (cap_s > 0), the steps left are estimated from the mean step time so far
    (parameter-golf's rule: s = remaining / (W * tau) once remaining <= W * tau); the iteration rule
    min(1, (iterations - step) / W) applies too, and the smaller multiplier wins."""
    if warmdown_iters <= 0:
        return 1.0
    multiplier = min(1.0, max(iterations - step, 0) / warmdown_iters)
    if cap_s > 0:
        warmdown_s = warmdown_iters * elapsed_s / max(step, 1)
        remaining_s = max(cap_s - elapsed_s, 0.0)
        if remaining_s <= warmdown_s:
            multiplier = min(multiplier, remaining_s / max(warmdown_s, 1e-9))
    return multiplier


class EMA:
    """fp32 exponential moving average of a model's floating-point state, starting at its weights."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.names = [k for k, v in model.state_dict().items() if v.is_floating_point()]
        state = model.state_dict()
        self.shadow = [state[k].detach().float().clone() for k in self.names]

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        state = model.state_dict()
        current = [state[k].detach().float() for k in self.names]
        torch._foreach_lerp_(self.shadow, current, 1.0 - self.decay)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        state = model.state_dict()
        for name, avg in zip(self.names, self.shadow):
            state[name].copy_(avg.to(state[name].dtype))
