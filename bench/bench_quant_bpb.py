"""val_bpb cost of quantisation on a trained smoke model: canonical GPTQ, the seed's pr1004 GPTQ, and
round-to-nearest with the same scales, each evaluated after the artifact round trip.

Trains the smoke preset on a data folder (e.g. the one `golf data demo` writes), calibrates on its
training shards, then quantises the same EMA weights three ways and scores each reloaded model with
the non-sliding validation pass (golf.train.evaluate_val, bpb through golf.eval.bpb).

    python -m bench.bench_quant_bpb --data runs/demo-data [--out DIR]      # prints one JSON line
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

from golf.config import Hyperparameters
from golf.data.layout import resolve_data
from golf.model import GPT
from golf.pipeline import calibrate
from golf.quant.artifact import load_artifact, pack_artifact
from golf.quant.gptq import hessian_error
from golf.quant.pack import dequantize_state, quantize_state_dict, summarize
from golf.quant.rtn import dequantize, rtn_quantize
from golf.runlog import RunLog
from golf.train import evaluate_val, train, validation_data


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="data folder with train/val shards and the tokenizer")
    parser.add_argument("--out", default=None, help="folder for the training log (default: a temp dir)")
    args = parser.parse_args(argv)

    hp = Hyperparameters.preset("smoke")
    layout = resolve_data(args.data)
    out = args.out or tempfile.mkdtemp(prefix="bench_quant_bpb_")
    log = RunLog(f"{out}/train.log")
    trained = train(hp, layout, out, log=log)
    device = torch.device("cpu")
    hessians = calibrate(trained.model, hp, layout, trained.budget, device, log)
    state = {k: v.detach().cpu().clone() for k, v in trained.model.state_dict().items()}
    val_tokens, luts = validation_data(layout, hp.train_seq_len, layout.vocab_size)

    def score(weights: dict) -> float:
        model = GPT(hp.model_config(layout.vocab_size))
        model.load_state_dict(weights)
        return evaluate_val(model, val_tokens, luts, hp.train_seq_len, hp.val_batch_seqs).val_bpb

    result = {"bench": "quant_bpb", "steps": trained.steps, "val_bpb_prequant": score(state)}
    for mode in ("canonical", "pr1004"):
        started = time.perf_counter()
        qstate = quantize_state_dict(
            state, hessians, bits=hp.quant_bits, embed_bits=hp.embed_quant_bits,
            passthrough_numel=hp.fp16_passthrough_numel, block_size=hp.gptq_block_size, damp=hp.gptq_damp,
            act_order=hp.gptq_act_order, mode=mode, prune_fraction=hp.prune_fraction)
        blob = pack_artifact(qstate)
        reloaded = dequantize_state(load_artifact(blob))
        rtn, err_gptq, err_rtn = dict(reloaded), 0.0, 0.0
        for name, e in qstate.entries.items():
            if e.kind == "gptq":
                q_rtn = rtn_quantize(state[name], e.scale, e.bits)
                rtn[name] = dequantize(q_rtn, e.scale).to(state[name].dtype)
                err_gptq += hessian_error(state[name], dequantize(e.q, e.scale), hessians[name])
                err_rtn += hessian_error(state[name], dequantize(q_rtn, e.scale), hessians[name])
        result[mode] = {
            "val_bpb": score(reloaded),
            "val_bpb_rtn_same_scales": score(rtn),
            "hessian_error_gptq": err_gptq,
            "hessian_error_rtn": err_rtn,
            "model_bytes": len(blob),
            "seconds": round(time.perf_counter() - started, 2),
            **summarize(qstate),
        }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
