"""Synthetic data for a replay: shards in the challenge's format for the vocabulary a submission needs.

A SentencePiece BPE tokenizer of exactly V pieces (1024, 4096, 8192, ...) is trained on a prefix of
the bundled corpus (golf.data.corpus) with the challenge's trainer flags; validation is the first
documents (about VAL_CHARS characters: a few thousand tokens), training the rest. With caseops=True
the text goes through golf.data.caseops first, the operators are pieces 4-7, and the val byte
sidecar (fineweb_val_bytes_*.bin) is written beside the val shards of the CaseOps folder, where the
CaseOps submissions read it; the plain folder never holds one (an older record's `fineweb_val_*.bin`
glob would swallow it and double its validation set without a word).

Built once per (vocabulary, CaseOps, corpus hash, format) in a cache folder (GOLF_REPLAY_CACHE,
default ~/.cache/golf-replay), in parameter-golf's layout:

    <key>/datasets/fineweb10B_sp<V>[_caseops]/fineweb_train_00000{0..7}.bin, fineweb_val_000000.bin [+ fineweb_val_bytes_000000.bin]
    <key>/tokenizers/fineweb_<V>_bpe[_caseops].model
    bytes-<key>/datasets/fineweb10B_bytes/fineweb_{train,val}_000000.bin   (byte-level: tokens are UTF-8 bytes)

`install_layout` links that into a run folder as data/datasets/... and data/tokenizers/..., the
relative paths the records default to.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from golf.data import caseops
from golf.data.corpus import CORPUS_FILE, load_corpus_documents, write_split
from golf.data.shards import write_shard
from golf.data.tokenizer import build_byte_luts, encode_documents, load_tokenizer, train_tokenizer
from golf.errors import GolfError

FORMAT = "golf-replay-data/2"
CACHE_ENV = "GOLF_REPLAY_CACHE"
VAL_CHARS = 16_000  # ~4-5k val tokens: several TTT chunks and sliding windows at toy sizes
MIN_CHARS = 300_000
CHARS_PER_PIECE = 250  # enough text that BPE reaches V pieces (8192 -> 2M characters)
SHARD_TOKENS = 1 << 20
TRAIN_SHARDS = 8
MAX_VOCAB = 1 << 16
BYTE_VOCAB = 256


@dataclass(frozen=True)
class SynthData:
    """One built dataset: its shard folder, tokenizer (None for raw bytes) and what it holds."""

    root: Path  # the cache entry (datasets/ + tokenizers/)
    shards: Path  # the folder of fineweb_{train,val}_*.bin
    tokenizer: Path | None
    vocab_size: int
    caseops: bool

    @property
    def val_pattern(self) -> str:
        """The val token shards only (never the byte sidecar beside them)."""
        return str(self.shards / "fineweb_val_[0-9]*.bin")


def cache_root(env: dict | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get(CACHE_ENV) or Path.home() / ".cache" / "golf-replay")


def _corpus_hash() -> str:
    return hashlib.sha256(CORPUS_FILE.read_bytes()).hexdigest()[:16]


def _names(vocab: int, with_caseops: bool) -> tuple[str, str]:
    suffix = "_caseops" if with_caseops else ""
    return f"fineweb10B_sp{vocab}{suffix}", f"fineweb_{vocab}_bpe{suffix}.model"


def byte_level_data(cache: Path | None = None) -> SynthData:
    """The cached byte-level dataset: each token is one UTF-8 byte of the documents (vocabulary 256,
    no tokenizer), in the shard format, as data/datasets/fineweb10B_bytes."""
    cache = Path(cache) if cache is not None else cache_root()
    root = cache / f"bytes-{_corpus_hash()}-{FORMAT.rsplit('/', 1)[1]}"
    data = SynthData(root, root / "datasets" / "fineweb10B_bytes", None, BYTE_VOCAB, False)
    if not _is_built(root):
        _build(data)
    return data


def byte_level_luts():
    """The canonical byte tables of byte tokens: every id is one byte, no space rule, no boundary."""
    from golf.eval.bpb import ByteLUTs

    return ByteLUTs(base_bytes=np.ones(BYTE_VOCAB, dtype=np.int32), has_leading_space=np.zeros(BYTE_VOCAB, dtype=bool),
                    is_boundary=np.zeros(BYTE_VOCAB, dtype=bool))


def _utf8_bytes(docs: list[str]) -> np.ndarray:
    return np.frombuffer("".join(docs).encode("utf-8"), dtype=np.uint8).astype(np.uint16)


def synthetic_data(vocab_size: int, with_caseops: bool = False, cache: Path | None = None) -> SynthData:
    """The cached dataset for `vocab_size` (built on first use; GolfError for an impossible size)."""
    if not 260 < vocab_size <= MAX_VOCAB:
        raise GolfError(f"no synthetic data for a vocabulary of {vocab_size} (between 261 and {MAX_VOCAB} pieces)")
    cache = Path(cache) if cache is not None else cache_root()
    key = f"sp{vocab_size}{'-caseops' if with_caseops else ''}-{_corpus_hash()}-{FORMAT.rsplit('/', 1)[1]}"
    root = cache / key
    folder, model = _names(vocab_size, with_caseops)
    data = SynthData(root, root / "datasets" / folder, root / "tokenizers" / model, vocab_size, with_caseops)
    if not _is_built(root):
        _build(data)
    return data


def _is_built(root: Path) -> bool:
    try:
        return json.loads((root / "meta.json").read_text())["format"] == FORMAT
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _split(with_caseops: bool, vocab_size: int) -> tuple[list[str], list[str]]:
    docs = load_corpus_documents(max(MIN_CHARS, CHARS_PER_PIECE * vocab_size))
    if with_caseops:
        docs = [caseops.encode(d) for d in docs]
    n_val, chars = 0, 0
    while chars < VAL_CHARS and n_val < len(docs) - 1:
        chars += len(docs[n_val])
        n_val += 1
    return docs[:n_val], docs[n_val:]


def _build(data: SynthData) -> None:
    """Write the dataset into a staging folder beside its cache entry, then move it in place."""
    data.root.parent.mkdir(parents=True, exist_ok=True)
    staging = data.root.with_name(f".{data.root.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    shards = staging / data.shards.relative_to(data.root)
    shards.mkdir(parents=True)
    try:
        if data.tokenizer is None:  # raw bytes: the sentencepiece data's documents, as UTF-8
            val_docs, train_docs = _split(False, 0)
            val = _utf8_bytes(val_docs)
            write_split(shards, "val", val, SHARD_TOKENS)
            _write_train(shards, _utf8_bytes(train_docs))
            _finish(data, staging, val, val_docs, train_docs)
            return
        val_docs, train_docs = _split(data.caseops, data.vocab_size)
        symbols = caseops.OPERATORS if data.caseops else ()
        prefix = staging / data.tokenizer.relative_to(data.root).with_suffix("")
        sp = load_tokenizer(train_tokenizer(train_docs, data.vocab_size, prefix, user_symbols=symbols))
        if sp.vocab_size() != data.vocab_size:
            raise GolfError(f"the bundled corpus gave a tokenizer of {sp.vocab_size()} pieces, not {data.vocab_size}")
        val = encode_documents(sp, val_docs)
        write_split(shards, "val", val, SHARD_TOKENS)
        _write_train(shards, encode_documents(sp, train_docs))
        if data.caseops:
            luts = build_byte_luts(sp)
            operator_ids = [sp.piece_to_id(op) for op in caseops.OPERATORS]
            sidecar = caseops.byte_sidecar(val, luts.base_bytes, luts.has_leading_space, luts.is_boundary, operator_ids)
            write_shard(shards / "fineweb_val_bytes_000000.bin", sidecar)
        _finish(data, staging, val, val_docs, train_docs)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_train(shards: Path, tokens: np.ndarray) -> None:
    """The training tokens in TRAIN_SHARDS shards: loaders that give each rank its own files
    (`files[rank::world_size]`) find some on every rank of an 8-rank replay."""
    write_split(shards, "train", tokens, -(-tokens.size // TRAIN_SHARDS))


def _finish(data: SynthData, staging: Path, val, val_docs: list[str], train_docs: list[str]) -> None:
    """Write meta.json and move the staged dataset into its cache entry."""
    meta = {"format": FORMAT, "vocab_size": data.vocab_size, "caseops": data.caseops, "corpus": _corpus_hash(),
            "byte_level": data.tokenizer is None, "tokens": {"val": int(val.size)},
            "docs": {"val": len(val_docs), "train": len(train_docs)}}
    (staging / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    try:
        os.replace(staging, data.root)
    except OSError:  # another process built the same entry meanwhile: keep theirs
        if not _is_built(data.root):
            raise


def operator_ids(data: SynthData) -> list[int]:
    """The ids of the CaseOps operators in the dataset's tokenizer (none for plain data)."""
    if not data.caseops:
        return []
    sp = load_tokenizer(data.tokenizer)
    return [sp.piece_to_id(op) for op in caseops.OPERATORS]


def install_layout(data: SynthData, run_folder: Path) -> None:
    """Link the dataset into `run_folder` as data/datasets/<folder> and data/tokenizers/<model>, the
    relative paths the records default to (whatever `data` held in the copied folder is replaced)."""
    base = run_folder / "data"
    if base.is_symlink() or base.is_file():
        base.unlink()
    for target in (data.shards, data.tokenizer):
        if target is None:
            continue
        link = base / target.relative_to(data.root)
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.is_file():
            link.unlink()
        elif link.is_dir():
            shutil.rmtree(link)
        link.symlink_to(target)

