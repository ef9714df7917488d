"""The evaluation phase of a run, inside its own wallclock budget (reference.md 5.3).

Everything from reading the artifact bytes to the final score is charged to one budget: the
caller passes a `load_model` callable that reads, decompresses and dequantises the artifact and
builds the model, and it runs on the budget's clock. Then the sliding-window pass (diagnostic
val_bpb_sliding) and the score-first TTT (the reported s_0 val_bpb) follow. A phase that
finds the budget spent raises BudgetExceeded on every rank together; nothing is reported then.
"""

from __future__ import annotations

from typing import Callable

import torch

from golf.budget import WallclockBudget
from golf.eval.bpb import ByteLUTs
from golf.eval.sliding import eval_sliding
from golf.eval.ttt import TTTObserver, check_budget, eval_score_first_ttt


def run_evaluation(
    load_model: Callable[[], torch.nn.Module] | torch.nn.Module,
    val_tokens: torch.Tensor,
    luts: ByteLUTs,
    hp,
    *,
    rank: int = 0,
    world: int = 1,
    device: torch.device | str = "cpu",
    budget: WallclockBudget | None = None,
    sliding: bool = True,
    log: Callable[[str], None] | None = None,
    observer: TTTObserver | None = None,
) -> dict:
    """Evaluate under `hp` (a golf.config.Hyperparameters; eval_* and ttt_* fields are read).

    `budget` defaults to a fresh `hp.eval_budget_seconds` budget started now; pass one started at
    the moment the artifact bytes were read when `load_model` is an already built model. The
    sliding pass runs when `sliding` is set or TTT is off. Returns the run.json evaluation keys.
    """
    device = torch.device(device)
    def say(message: str) -> None:
        if log is not None and rank == 0:
            log(message)

    if budget is None:
        budget = WallclockBudget("evaluation", hp.eval_budget_seconds)
    model = load_model if isinstance(load_model, torch.nn.Module) else load_model()
    if device.type == "cuda" and hp.compile:
        # one compiled scoring graph for every window batch (the TTT loss goes through it as well)
        model.forward_logits = torch.compile(model.forward_logits, dynamic=False)
    check_budget(budget, world, "model load")
    results: dict = {"val_bpb_sliding": None, "val_loss_sliding": None}
    if sliding or not hp.ttt_enabled:
        s = eval_sliding(
            model, val_tokens, luts, hp.eval_seq_len, hp.eval_stride, batch_windows=hp.eval_batch_seqs,
            records_compat=hp.records_compat, rank=rank, world=world, device=device,
        )
        # with TTT on, the sliding score is a side measurement: the log parser skips "diagnostic" lines
        label = ("diagnostic_" if hp.ttt_enabled else "final_") + (
            "sliding_window_records_compat" if hp.records_compat else "sliding_window_exact"
        )
        say(f"{label} val_loss:{s.val_loss:.8f} val_bpb:{s.val_bpb:.8f} "
            f"stride:{hp.eval_stride} scored_tokens:{s.n_tokens} eval_time:{1000 * s.seconds:.0f}ms")
        results.update(val_bpb_sliding=s.val_bpb, val_loss_sliding=s.val_loss, sliding_seconds=s.seconds,
                       val_bpb=s.val_bpb, val_loss=s.val_loss, scored_tokens=s.n_tokens, scored_bytes=s.n_bytes)
        check_budget(budget, world, "sliding evaluation")
    if hp.ttt_enabled:
        t = eval_score_first_ttt(
            model, val_tokens, luts, seq_len=hp.eval_seq_len, stride=hp.eval_stride,
            chunk_tokens=hp.ttt_chunk_tokens, epochs=hp.ttt_epochs, lr=hp.ttt_lr,
            adapt_last_blocks=hp.ttt_last_blocks, micro_batch_seqs=hp.ttt_batch_seqs,
            grad_clip=hp.ttt_grad_clip, batch_windows=hp.eval_batch_seqs, rank=rank, world=world,
            device=device, budget=budget, observer=observer, log=say,
        )
        say(f"final_ttt_s0_exact val_loss:{t.val_loss_s0:.8f} val_bpb:{t.val_bpb_s0:.8f} "
            f"chunks:{t.chunks} trained_chunks:{t.trained_chunks} steps:{t.optimizer_steps} "
            f"adapted_params:{t.adapted_params} eval_time:{1000 * t.seconds:.0f}ms")
        results.update(val_bpb=t.val_bpb_s0, val_loss=t.val_loss_s0, ttt_seconds=t.seconds,
                       ttt_chunks=t.chunks, ttt_trained_chunks=t.trained_chunks,
                       ttt_optimizer_steps=t.optimizer_steps, ttt_adapted_params=t.adapted_params,
                       scored_tokens=t.n_tokens, scored_bytes=t.n_bytes)
    check_budget(budget, world, "evaluation")
    results["eval_seconds"] = budget.elapsed()
    say(f"total_eval_time:{results['eval_seconds']:.1f}s budget:{budget.limit_s:.0f}s")
    return results
