"""GPTQ seconds and artifact bytes for a record-size model on CPU (reference.md 2.9 and 4).

The tensor list is the real record GPT's (golf.model.GPT built on the meta device: d=512, 11
layers, 8/8 heads, MLP 1792, BigramHash 8192x128, VE128 on layers 9 and 10), filled with random
values: block matrices normal or Laplace with std weight_std, embedding tables ~ N(0, embed_std^2), control tensors
at their init values. Hessians come from random anisotropic activations, one per distinct layer
input (q/k/v share theirs, as in the model). The whole state dict goes through the artifact path:
prune -> GPTQ int5 / int8 tables / fp16 pass-through -> container -> zstd-22 vs lzma-9.
Random weights are not trained weights: the byte count shows the accounting and the scale of the
result, not the record's exact size.

    python -m bench.bench_gptq [--quick]      # prints one JSON line
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from golf.config import Hyperparameters
from golf.model import GPT
from golf.quant.artifact import (
    ARTIFACT_BUDGET_BYTES,
    compress,
    compressed_code_bytes,
    serialize_state,
    shipped_code_bytes,
)
from golf.quant.pack import default_is_block_matrix, quantize_state_dict, summarize

REPO = Path(__file__).resolve().parents[1]


def random_activations(n_rows: int, dim: int, gen: torch.Generator, relu_squared: bool) -> torch.Tensor:
    """Correlated activations with a decaying spectrum (relu^2 for the MLP projection's input)."""
    mix = torch.randn(dim, dim, generator=gen) * torch.logspace(0, -2, dim)[:, None]
    x = torch.randn(n_rows, dim, generator=gen) @ mix / dim**0.5
    return torch.relu(x).square() if relu_squared else x


def random_weights(shape, std: float, dist: str, gen: torch.Generator) -> torch.Tensor:
    """Normal, or Laplace (heavier tails, closer to trained weights' shape) with the same std."""
    if dist == "laplace":
        u = torch.rand(shape, generator=gen) - 0.5
        return -torch.sign(u) * torch.log1p(-2 * u.abs()) * (std / 2**0.5)
    return torch.randn(shape, generator=gen) * std


def record_state_and_hessians(num_layers: int, weight_std: float, weight_dist: str, embed_std: float,
                              calib_rows: int, seed: int) -> tuple[dict, dict]:
    hp = Hyperparameters.preset("record")
    hp.num_layers = num_layers
    hp.ve_layers = ",".join(str(i) for i in range(max(0, num_layers - 2), num_layers))
    with torch.device("meta"):
        shapes = {k: (v.shape, v.dtype) for k, v in GPT(hp.model_config(vocab_size=1024)).state_dict().items()}
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, (shape, dtype) in shapes.items():
        if default_is_block_matrix(name) and len(shape) == 2:
            state[name] = random_weights(shape, weight_std, weight_dist, gen)
        elif len(shape) == 2 and shape.numel() > hp.fp16_passthrough_numel:
            state[name] = torch.randn(shape, generator=gen) * embed_std
        else:
            state[name] = torch.ones(shape, dtype=dtype)
    hessians = {}
    for layer in range(num_layers):
        inputs = {"qkv": random_activations(calib_rows, 512, gen, False),
                  "o": random_activations(calib_rows, 512, gen, False),
                  "fc": random_activations(calib_rows, 512, gen, False),
                  "proj": random_activations(calib_rows, 1792, gen, True)}
        source = {"attn.c_q": "qkv", "attn.c_k": "qkv", "attn.c_v": "qkv", "attn.proj": "o",
                  "mlp.fc": "fc", "mlp.proj": "proj"}
        for module, key in source.items():
            X = inputs[key]
            hessians[f"blocks.{layer}.{module}.weight"] = X.T @ X / X.shape[0]
    return state, hessians


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 layers instead of 11")
    parser.add_argument("--mode", default="canonical", choices=("canonical", "pr1004"))
    parser.add_argument("--prune", type=float, default=0.05)
    parser.add_argument("--weight-std", type=float, default=0.5)
    parser.add_argument("--weight-dist", default="normal", choices=("normal", "laplace"))
    parser.add_argument("--embed-std", type=float, default=0.02)
    parser.add_argument("--calib-rows", type=int, default=4096)
    parser.add_argument("--seed", type=int, default=1337)
    args = parser.parse_args(argv)

    num_layers = 2 if args.quick else 11
    state, hessians = record_state_and_hessians(num_layers, args.weight_std, args.weight_dist,
                                                args.embed_std, args.calib_rows, args.seed)
    wall, cpu = time.perf_counter(), time.process_time()
    qstate = quantize_state_dict(state, hessians, mode=args.mode, prune_fraction=args.prune)
    quantize_wall, quantize_cpu = time.perf_counter() - wall, time.process_time() - cpu
    raw = serialize_state(qstate)
    sizes, compress_wall = {}, {}
    for codec in ("zstd", "lzma"):
        wall = time.perf_counter()
        sizes[codec] = len(compress(raw, (codec,)))
        compress_wall[codec] = round(time.perf_counter() - wall, 2)
    model_bytes = min(sizes.values())
    blob_codec = min(sizes, key=sizes.get)

    code_files = sorted((REPO / "golf").rglob("*.py"))
    code_raw = shipped_code_bytes(code_files)
    result = {
        "bench": "gptq",
        "layers": num_layers,
        "mode": args.mode,
        "weights": f"{args.weight_dist}(std={args.weight_std})",
        "params": sum(t.numel() for t in state.values()),
        "quantize_seconds": round(quantize_wall, 2),  # prune + GPTQ + int8 tables, wall clock
        "quantize_cpu_seconds": round(quantize_cpu, 2),  # summed over torch's threads
        "compress_seconds": compress_wall,
        "raw_container_bytes": len(raw),
        "zstd22_bytes": sizes["zstd"],
        "lzma9_bytes": sizes["lzma"],
        "codec": blob_codec,
        "model_bytes": model_bytes,
        **summarize(qstate),
        "budget": ARTIFACT_BUDGET_BYTES,
        "model_headroom": ARTIFACT_BUDGET_BYTES - model_bytes,
        "golf_code_bytes_raw": code_raw,
        "golf_code_files": len(code_files),
        "golf_code_bytes_lzma_shim": sum(compressed_code_bytes(p) for p in code_files),
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "load_average_1min": round(os.getloadavg()[0], 1),  # a shared machine slows the wall clock
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
