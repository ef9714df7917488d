"""The entry point of the bundled train_gpt.py: `golf train` configured from environment variables,
the way parameter-golf's scripts are.

* PRESET: smoke or record; unset, `record` when CUDA is available and `smoke` on CPU. So
  `python train_gpt.py` trains the smoke settings on a CPU, and
  `torchrun --standalone --nproc_per_node=8 train_gpt.py` the record settings on 8 GPUs.
* DATA_PATH: the data folder in either layout golf reads (golf.data.layout): `golf data demo`'s
  folder, or parameter-golf's `data/` root (datasets/fineweb10B_sp<V>/ + tokenizers/); default ./data.
  parameter-golf's own DATA_PATH (data/datasets/fineweb10B_sp<V>) is accepted and means its root.
* TOKENIZER_PATH: optional; golf takes the tokenizer from the data folder, and a TOKENIZER_PATH
  naming another file is an error rather than silently ignored.
* OUT_DIR: where the run log, artifact and run.json go (must be new or empty); default
  runs/<RUN_ID> (RUN_ID defaulting to seed_<SEED>), or runs/<RUN_ID>-2, -3, ... when taken, so that
  running the file again never overwrites an earlier run.
* SEED and every other hyperparameter: the env vars `golf train` reads (ITERATIONS, TTT_LR, ...).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Mapping

from golf.commands.train import run as run_train
from golf.errors import GolfError


def preset_from_env(env: Mapping[str, str]) -> str:
    if env.get("PRESET"):
        return env["PRESET"]
    import torch

    return "record" if torch.cuda.is_available() else "smoke"


def default_out_dir(run_id: str) -> Path:
    """runs/<run_id>, or the first runs/<run_id>-<n> that is free."""
    out, n = Path("runs") / run_id, 1
    while out.exists() and any(out.iterdir()):
        n += 1
        out = Path("runs") / f"{run_id}-{n}"
    return out


def data_folder(env: Mapping[str, str]) -> Path:
    """DATA_PATH as golf's data folder (a parameter-golf dataset folder maps to its data root)."""
    from golf.data.layout import VARIANT_FOLDER, resolve_data

    data = Path(env.get("DATA_PATH") or "data")
    if VARIANT_FOLDER.fullmatch(data.name) and data.parent.name == "datasets":
        data = data.parent.parent
    if env.get("TOKENIZER_PATH"):
        expected = resolve_data(data).tokenizer_path
        if Path(env["TOKENIZER_PATH"]).resolve() != expected.resolve():
            raise GolfError(f"TOKENIZER_PATH={env['TOKENIZER_PATH']} is not the tokenizer of {data} ({expected})")
    return data


def train_args_from_env(env: Mapping[str, str]) -> argparse.Namespace:
    run_id = env.get("RUN_ID") or f"seed_{env.get('SEED', '1337')}"
    return argparse.Namespace(
        preset=preset_from_env(env),
        data=data_folder(env),
        out=Path(env["OUT_DIR"]) if env.get("OUT_DIR") else default_out_dir(run_id),
        seed=None,  # SEED is read with the other hyperparameters
        replace=False,  # a submission's run never replaces an earlier run folder
    )


def main() -> int:
    try:
        return run_train(train_args_from_env(os.environ))
    except GolfError as exc:
        print(f"train_gpt.py: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
