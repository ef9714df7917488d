"""`golf data demo`: the bundled public-domain corpus turned into a tokenizer and real-format shards.

The corpus (golf/data/corpus/, see SOURCE.md) is a frozen shuffled list of documents. As in the
challenge's FineWeb export, validation is the first documents and training the rest; the tokenizer
is trained on the training documents only; each document is written as [BOS] + tokens, and the
split is cut into shards of a fixed token count (a document may span two shards).

meta.json also records a baseline any trained model must beat: the bits per byte of the validation
targets under the training set's unigram token frequencies (add-one smoothing).
"""

from __future__ import annotations

import json
import lzma
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from golf.data.shards import write_shard
from golf.data.tokenizer import build_byte_luts, encode_documents, load_tokenizer, train_tokenizer
from golf.errors import GolfError
from golf.eval.bpb import BpbAccumulator, ByteLUTs

CORPUS_FILE = Path(__file__).resolve().parent / "corpus" / "kjv_chapters.jsonl.xz"
CORPUS_SOURCE = "King James Bible, one document per chapter (public domain; Debian bible-kjv-text 4.38)"
DEMO_FORMAT = "golf-demo-data/1"
DEFAULT_VOCAB_SIZE = 1024
DEFAULT_VAL_FRACTION = 0.0125  # ~15 chapters, ~16k tokens: the smoke eval stays ~seconds
DEFAULT_SHARD_TOKENS = 1 << 18


def load_corpus_documents(max_chars: int | None = None) -> list[str]:
    """The bundled documents in their frozen order; with max_chars, the shortest prefix reaching it."""
    docs = [json.loads(line)["text"] for line in lzma.decompress(CORPUS_FILE.read_bytes()).decode("utf-8").splitlines()]
    if max_chars is None:
        return docs
    kept, total = [], 0
    for doc in docs:
        if total >= max_chars:
            break
        kept.append(doc)
        total += len(doc)
    return kept


def split_documents(docs: list[str], val_fraction: float) -> tuple[list[str], list[str]]:
    """(val, train): the first round(val_fraction * n) documents (at least one) and the rest."""
    if not 0 < val_fraction < 1:
        raise GolfError(f"--val-fraction must be between 0 and 1, got {val_fraction}")
    n_val = max(1, round(val_fraction * len(docs)))
    if n_val >= len(docs):
        raise GolfError(f"{len(docs)} documents are too few to keep {n_val} for validation and train on the rest")
    return docs[:n_val], docs[n_val:]


def write_split(out_dir: Path, split: str, tokens: np.ndarray, shard_tokens: int) -> list[str]:
    """Cut one split's token stream into fineweb_<split>_NNNNNN.bin shards; returns the file names."""
    names = []
    for index, start in enumerate(range(0, tokens.size, shard_tokens)):
        name = f"fineweb_{split}_{index:06d}.bin"
        write_shard(out_dir / name, tokens[start : start + shard_tokens])
        names.append(name)
    return names


def unigram_baseline(train_tokens: np.ndarray, val_tokens: np.ndarray, luts: ByteLUTs) -> BpbAccumulator:
    """Every val target (all of tokens[1:], no truncation) scored by add-one-smoothed unigram
    frequencies of the train tokens, BOS included: the floor a trained model has to beat."""
    counts = np.bincount(train_tokens, minlength=luts.vocab_size).astype(np.float64)
    nll_of = torch.from_numpy(-np.log((counts + 1.0) / (counts.sum() + luts.vocab_size)))
    tokens = torch.from_numpy(val_tokens.astype(np.int64))
    acc = BpbAccumulator()
    acc.add(nll_of[tokens[1:]], tokens[:-1], tokens[1:], luts)
    return acc


def _check_replaceable(out: Path) -> None:
    """`out` may be a new or empty folder, or an earlier demo output; anything else is left alone."""
    if not out.exists():
        return
    if not out.is_dir():
        raise GolfError(f"{out} exists and is not a folder")
    if any(out.iterdir()) and not _is_demo_output(out):
        raise GolfError(f"{out} is not empty and not an earlier `golf data demo` output; choose another --out")


def _is_demo_output(folder: Path) -> bool:
    try:
        return json.loads((folder / "meta.json").read_text())["format"] == DEMO_FORMAT
    except (OSError, ValueError, KeyError, TypeError):
        return False


def build_demo(
    out: str | os.PathLike,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    val_fraction: float | None = DEFAULT_VAL_FRACTION,
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
    max_chars: int | None = None,
) -> dict:
    """Write tokenizer.model/.vocab, train and val shards and meta.json into `out`; returns the meta.

    The folder is built beside `out` and moved into place at the end, so a failure leaves `out`
    as it was; an earlier demo output in `out` is replaced.
    """
    out = Path(out)
    _check_replaceable(out)
    if shard_tokens < 1:
        raise GolfError(f"--shard-tokens must be positive, got {shard_tokens}")
    if val_fraction is None:
        val_fraction = DEFAULT_VAL_FRACTION
    val_docs, train_docs = split_documents(load_corpus_documents(max_chars), val_fraction)

    staging = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        sp = load_tokenizer(train_tokenizer(train_docs, vocab_size, staging / "tokenizer"))
        val_tokens = encode_documents(sp, val_docs)
        train_tokens = encode_documents(sp, train_docs)
        luts = build_byte_luts(sp)
        baseline = unigram_baseline(train_tokens, val_tokens, luts)
        meta = {
            "format": DEMO_FORMAT,
            "source": CORPUS_SOURCE,
            "vocab_size": sp.vocab_size(),
            "val_fraction": val_fraction,
            "shard_tokens": shard_tokens,
            "max_chars": max_chars,
            "docs": {"val": len(val_docs), "train": len(train_docs)},
            "tokens": {"val": int(val_tokens.size), "train": int(train_tokens.size)},
            "files": {
                "val": write_split(staging, "val", val_tokens, shard_tokens),
                "train": write_split(staging, "train", train_tokens, shard_tokens),
            },
            # Raw UTF-8 bytes of the val documents; nmt_nfkc then folds newlines and runs of
            # whitespace into single spaces, which is what the tokens (and so bpb) count.
            "val_text_bytes": sum(len(doc.encode("utf-8")) for doc in val_docs),
            "val_normalized_bytes": sum(len(sp.normalize(doc).replace("▁", " ").encode("utf-8")) for doc in val_docs),
            "val_target_bytes": baseline.n_bytes,
            "unigram_val_bpb": baseline.val_bpb,
        }
        (staging / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        if out.exists():
            _check_replaceable(out)
            shutil.rmtree(out)
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return meta

