"""Finding the shards and tokenizer in a data folder, in either layout the toolkit produces.

* demo layout (`golf data demo`): DIR/fineweb_{train,val}_*.bin and DIR/tokenizer.model;
* challenge layout (`golf data download`, parameter-golf's data/ folder):
  DIR/datasets/fineweb10B_sp<V>/fineweb_{train,val}_*.bin and DIR/tokenizers/fineweb_<V>_bpe.model;
* parameter-golf's run variables: DATA_PATH a shard folder and TOKENIZER_PATH a model file anywhere
  (`resolve_data(shards, tokenizer=model)`); a shard folder DIR/datasets/fineweb10B_sp<V> given
  alone finds DIR/tokenizers/fineweb_<V>_bpe.model.

The tokenizer is checked against the val shards: every id there must be inside its vocabulary.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from golf.data.shards import list_shards, read_shard, shard_token_count
from golf.data.tokenizer import load_tokenizer
from golf.errors import GolfError

DEMO_TOKENIZER = "tokenizer.model"
VARIANT_FOLDER = re.compile(r"fineweb10B_sp(\d+)")


@dataclass(frozen=True)
class DataLayout:
    train_pattern: str
    val_pattern: str
    tokenizer_path: Path
    vocab_size: int


def _shard_folder_and_tokenizer(root: Path) -> tuple[Path, Path]:
    if (root / DEMO_TOKENIZER).exists() or any(root.glob("fineweb_*.bin")):
        variant = VARIANT_FOLDER.fullmatch(root.name)
        if not (root / DEMO_TOKENIZER).exists() and variant and root.parent.name == "datasets":
            return root, root.parent.parent / "tokenizers" / f"fineweb_{variant.group(1)}_bpe.model"
        return root, root / DEMO_TOKENIZER
    variants = sorted(p for p in (root / "datasets").glob("fineweb10B_sp*") if VARIANT_FOLDER.fullmatch(p.name))
    if not variants:
        raise GolfError(f"{root} holds no shards (expected fineweb_*.bin or datasets/fineweb10B_sp<V>/)")
    if len(variants) > 1:
        names = ", ".join(p.name for p in variants)
        raise GolfError(f"{root}/datasets holds several variants ({names}); point --data at a folder with one")
    vocab = VARIANT_FOLDER.fullmatch(variants[0].name).group(1)
    return variants[0], root / "tokenizers" / f"fineweb_{vocab}_bpe.model"


def resolve_data(data_dir: str | os.PathLike, tokenizer: str | os.PathLike | None = None) -> DataLayout:
    """The train/val shard patterns, tokenizer and vocabulary size of a data folder (GolfError if unusable).

    `tokenizer`, when given, is the model file to use wherever it lies (TOKENIZER_PATH)."""
    root = Path(data_dir)
    if not root.is_dir():
        raise GolfError(f"data folder {root} not found")
    shard_folder, tokenizer_path = _shard_folder_and_tokenizer(root)
    if tokenizer is not None:
        tokenizer_path = Path(tokenizer)
    train_pattern = str(shard_folder / "fineweb_train_*.bin")
    val_pattern = str(shard_folder / "fineweb_val_*.bin")
    list_shards(train_pattern)
    val_files = list_shards(val_pattern)
    vocab_size = load_tokenizer(tokenizer_path).vocab_size()
    largest_id = max((int(np.max(t)) for t in map(read_shard, val_files) if t.size), default=-1)
    if largest_id >= vocab_size:
        raise GolfError(
            f"tokenizer vocabulary does not match the shards: {tokenizer_path.name} has {vocab_size} ids, "
            f"the val shards use id {largest_id}"
        )
    return DataLayout(train_pattern, val_pattern, tokenizer_path, vocab_size)


def count_tokens(layout: DataLayout) -> dict[str, dict[str, int]]:
    """Shard and token counts per split, validating every shard's header and size on the way."""
    counts = {}
    for split, pattern in (("train", layout.train_pattern), ("val", layout.val_pattern)):
        files = list_shards(pattern)
        counts[split] = {"shards": len(files), "tokens": sum(shard_token_count(p) for p in files)}
    return counts
