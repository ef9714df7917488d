"""The `golf train` pipeline as a chain of stages (reference.md 4.1 and 5.3):

  train (timed) -> calibrate Hessians on train data (same timer, asserted <= the training budget)
  -> pre-quant val eval of the EMA model -> GPTQ int5 / int8 quantisation + compression, pruned
  to fit the artifact budget and asserted -> evaluation of the dequantised artifact read back from
  disk (timed from the artifact bytes read): sliding window, then score-first TTT (s_0) -> run.json.

Every rank runs every stage; rank 0 alone writes files. Each stage returns plain numbers that end
up in run.json (keys of design.md section 3).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist

from golf.budget import WallclockBudget
from golf.config import Hyperparameters
from golf.data.layout import DataLayout
from golf.eval.phase import run_evaluation
from golf.eval.sliding import synchronize
from golf.model import GPT
from golf.quant.artifact import check_artifact_budget, load_artifact
from golf.quant.calibration import calibration_batches
from golf.quant.fit import fit_to_budget
from golf.quant.gptq import collect_hessians
from golf.quant.pack import dequantize_state, quantize_state_dict, summarize
from golf.runlog import RunLog, loaded_source_files
from golf.train import TrainResult, autocast, evaluate_val, train, validation_data

ARTIFACT_NAME = "final_model.int5.ptz"


@dataclass
class QuantResult:
    artifact_path: Path
    code_bytes: int
    model_bytes: int
    seconds: float  # quantisation + compression

    @property
    def artifact_bytes(self) -> int:
        return self.code_bytes + self.model_bytes


def barrier(world: int) -> None:
    if world > 1:
        dist.barrier()


@torch.no_grad()
def calibrate(model: GPT, hp: Hyperparameters, layout: DataLayout, budget: WallclockBudget,
              device: torch.device, log: RunLog) -> dict[str, torch.Tensor]:
    """Hessians of every Linear input over the first `gptq_calib_seqs` training sequences, on the
    training timer: every rank computes them all (no sharding), as in PR #1004."""
    started = time.perf_counter()
    batches = calibration_batches(layout.train_pattern, hp.gptq_calib_seqs, hp.train_seq_len, device)

    def forward(m: GPT, batch) -> None:
        with autocast(device):
            m.forward_logits(batch[0])

    was_training = model.training
    model.eval()
    try:
        hessians = collect_hessians(model, batches, forward=forward)
    finally:
        model.train(was_training)
    synchronize(device)
    log(f"gptq:calibrated {len(hessians)} layers on {hp.gptq_calib_seqs} train sequences "
        f"in {time.perf_counter() - started:.1f}s")
    elapsed = budget.check("calibration")
    log(f"training_budget: loop+calibration {elapsed:.1f}s of {budget.limit_s:.1f}s")
    return hessians


def quantize(model: GPT, hessians: dict, hp: Hyperparameters, out_dir: Path, rank: int, world: int,
             log: RunLog) -> QuantResult:
    """GPTQ / int8 / fp16 per tensor, compress, zero the cheapest |q|=1 int5 entries if code + model
    bytes exceed the budget (golf.quant.fit), write the artifact."""
    started = time.perf_counter()
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    qstate = quantize_state_dict(
        state, hessians,
        bits=hp.quant_bits, embed_bits=hp.embed_quant_bits, passthrough_numel=hp.fp16_passthrough_numel,
        block_size=hp.gptq_block_size, damp=hp.gptq_damp, act_order=hp.gptq_act_order,
        mode=hp.gptq_mode, prune_fraction=hp.prune_fraction, device=next(model.parameters()).device,
    )
    log(f"quant_summary: {json.dumps(summarize(qstate))}")
    code = sum(path.stat().st_size for path in loaded_source_files())
    fit = fit_to_budget(qstate, code, hp.artifact_budget_bytes)
    if fit.n_zeroed:
        log(f"size_fit: zeroed {fit.n_zeroed} of {fit.n_candidates} |q|=1 entries to fit "
            f"{hp.artifact_budget_bytes} bytes")
    blob, size = fit.blob, fit.size
    path = out_dir / ARTIFACT_NAME
    if rank == 0:
        path.write_bytes(blob)
    log(f"Serialized model int{hp.quant_bits}: {len(blob)} bytes")
    log(f"Code size: {code} bytes")
    log(f"Total submission size: {size.total} bytes (code {code} + model {len(blob)}; {size.describe()})")
    check_artifact_budget(size)
    barrier(world)
    return QuantResult(path, code, len(blob), time.perf_counter() - started)


def load_eval_model(artifact: Path, hp: Hyperparameters, vocab_size: int, device: torch.device) -> GPT:
    """A fresh GPT holding the dequantised weights of the artifact on disk."""
    state = dequantize_state(load_artifact(artifact.read_bytes()), device)
    model = GPT(hp.model_config(vocab_size)).to(device)
    model.load_state_dict(state)
    return model


def evaluate_artifact(artifact: Path, hp: Hyperparameters, layout: DataLayout, rank: int, world: int,
                      device: torch.device, log: RunLog, clock: Callable[[], float]) -> dict:
    """Sliding-window and score-first TTT scores of the artifact on disk (golf.eval.phase), on the
    eval budget, which starts before the artifact bytes are read."""
    val_tokens, luts = validation_data(layout, hp.eval_seq_len, layout.vocab_size)
    budget = WallclockBudget("evaluation", hp.eval_budget_seconds, clock=clock)
    return run_evaluation(
        lambda: load_eval_model(artifact, hp, layout.vocab_size, device), val_tokens, luts, hp,
        rank=rank, world=world, device=device, budget=budget, log=log,
    )


def run_pipeline(hp: Hyperparameters, layout: DataLayout, out_dir: str | Path, rank: int = 0, world: int = 1,
                 clock: Callable[[], float] = time.monotonic) -> dict:
    """Every stage in order; returns the run.json dict (also written to OUT/run.json by rank 0)."""
    out_dir = Path(out_dir)
    log = RunLog(out_dir / "train.log", enabled=rank == 0)
    log.source_code()
    log(f"Running PyTorch {torch.__version__}", console=False)
    log.hyperparameters(hp.as_dict())

    trained: TrainResult = train(hp, layout, out_dir, rank, world, clock=clock, log=log)
    model = trained.model
    device = next(model.parameters()).device
    calibration_started = time.perf_counter()
    hessians = calibrate(model, hp, layout, trained.budget, device, log)
    calibration_seconds = time.perf_counter() - calibration_started

    val_tokens, luts = validation_data(layout, hp.train_seq_len, layout.vocab_size)
    prequant = evaluate_val(model, val_tokens, luts, hp.train_seq_len, hp.val_batch_seqs, rank, world, device)
    log(f"diagnostic post_ema_prequant val_loss:{prequant.val_loss:.4f} val_bpb:{prequant.val_bpb:.4f}")

    quant = quantize(model, hessians, hp, out_dir, rank, world, log)
    scores = evaluate_artifact(quant.artifact_path, hp, layout, rank, world, device, log, clock)

    result = {
        "val_bpb": scores["val_bpb"],
        "val_bpb_sliding": scores["val_bpb_sliding"],
        "val_bpb_prequant": prequant.val_bpb,
        "val_loss": scores["val_loss"],
        "artifact_bytes": quant.artifact_bytes,
        "code_bytes": quant.code_bytes,
        "model_bytes": quant.model_bytes,
        "train_seconds": trained.train_seconds,
        "quant_seconds": calibration_seconds + quant.seconds,
        "eval_seconds": scores["eval_seconds"],
        "steps": trained.steps,
        "params": sum(p.numel() for p in model.parameters()),
        "seed": hp.seed,
        "config": hp.as_dict(),
    }
    log(f"final val_bpb:{result['val_bpb']:.4f} (prequant {prequant.val_bpb:.4f}, "
        f"sliding {scores['val_bpb_sliding']:.4f}) artifact_bytes:{quant.artifact_bytes}")
    if rank == 0:
        write_json_atomic(out_dir / "run.json", result)
    return result


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
