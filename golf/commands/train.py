"""`golf train --preset smoke|record --data DIR --out RUN [--seed S]`: the reference pipeline.

Hyperparameters come from the preset with parameter-golf's env vars on top (ITERATIONS=..., etc.).
Under torchrun (RANK / WORLD_SIZE / LOCAL_RANK set) every rank runs the pipeline in one process
group (NCCL on GPU, gloo on CPU); rank 0 writes RUN/train.log, the artifact and RUN/run.json.
RUN must be new or empty, so that an earlier run is never overwritten; `--replace` (what `make demo`
uses, so that the README's command works every time) replaces RUN only when it holds an earlier run
(its train.log or run.json), never a folder with anything else in it. On CPU without
OMP_NUM_THREADS set, the run uses one intra-op thread.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from golf.errors import GolfError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", required=True, help="hyperparameter preset: smoke or record")
    parser.add_argument("--data", required=True, type=Path, help="data folder (golf data demo / download)")
    parser.add_argument("--out", required=True, type=Path, help="run folder to create (must be new or empty)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: SEED or 1337)")
    parser.add_argument("--replace", action="store_true",
                        help="replace RUN if it holds an earlier run (train.log / run.json); nothing else is replaced")


RUN_MARKERS = ("train.log", "run.json")  # what every run writes first / last


def _check_out_dir(out: Path, replace: bool = False) -> bool:
    """Whether `out` holds an earlier run to replace; raises when it may not be written."""
    if not out.exists():
        return False
    if not out.is_dir():
        raise GolfError(f"run folder {out} exists and is not a folder; choose a new --out")
    if not any(out.iterdir()):
        return False
    if not replace:
        raise GolfError(f"run folder {out} already exists and is not empty; choose a new --out "
                        "(or --replace to replace an earlier run there)")
    if not any((out / name).is_file() for name in RUN_MARKERS):
        raise GolfError(f"run folder {out} does not hold an earlier run (no {' or '.join(RUN_MARKERS)}); "
                        "--replace replaces only a run folder")
    return True


def run(args: argparse.Namespace) -> int:
    from golf.config import Hyperparameters
    from golf.data.layout import resolve_data

    hp = Hyperparameters.from_env(args.preset, os.environ)
    if args.seed is not None:
        hp.seed = args.seed
    hp.data_path = str(args.data)
    layout = resolve_data(args.data)
    if hp.vocab_size and hp.vocab_size != layout.vocab_size:
        raise GolfError(f"VOCAB_SIZE={hp.vocab_size} does not match the tokenizer's {layout.vocab_size} ids")
    hp.vocab_size = layout.vocab_size
    hp.tokenizer_path = str(layout.tokenizer_path)
    earlier_run = _check_out_dir(args.out, args.replace)

    import torch

    from golf.distributed import process_group
    from golf.pipeline import run_pipeline

    threads = torch.get_num_threads()
    if not torch.cuda.is_available() and "OMP_NUM_THREADS" not in os.environ:
        # CPU runs use small matrices: a second OpenMP thread gains little, and on shared cores
        # spinning threads wait on each other (measured: smoke 51 s with 1 thread, 8.8 min with 2)
        torch.set_num_threads(1)
    try:
        with process_group() as (rank, world):
            if rank == 0:
                if earlier_run:
                    shutil.rmtree(args.out)
                    print(f"replacing the earlier run in {args.out}", file=sys.stderr)
                args.out.mkdir(parents=True, exist_ok=True)
            result = run_pipeline(hp, layout, args.out, rank, world)
    finally:
        torch.set_num_threads(threads)
    if rank == 0:
        print(f"val_bpb {result['val_bpb']:.4f}  artifact {result['artifact_bytes']:,} bytes  "
              f"-> {args.out / 'run.json'}")
    return 0
