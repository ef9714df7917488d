"""SentencePiece BPE tokenizers with the challenge's trainer flags, and the byte tables of bpb.

`train_tokenizer` uses the flags of the challenge's sp1024 export (BPE, byte fallback, split digits,
nmt_nfkc, no dummy prefix, pad/bos/eos/unk = 0/1/2/3). `build_byte_luts` turns a tokenizer into the
canonical per-token byte tables of golf.eval.bpb; `encode_documents` writes documents the way the
shards hold them: [BOS] + tokens for each document, concatenated, no EOS.
"""

from __future__ import annotations

import io
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import sentencepiece as spm

from golf.errors import GolfError

if TYPE_CHECKING:
    from golf.eval.bpb import ByteLUTs

BOS_ID = 1
# A fixed thread count: BPE merges are then the same on every machine.
TRAINER_THREADS = 2
# Documents are training sentences; SentencePiece would skip any longer than this many bytes.
MAX_SENTENCE_BYTES = 1 << 20
TRAINER_FLAGS = dict(
    model_type="bpe",
    character_coverage=0.999,
    byte_fallback=True,
    split_digits=True,
    normalization_rule_name="nmt_nfkc",
    add_dummy_prefix=False,
    pad_id=0,
    bos_id=BOS_ID,
    eos_id=2,
    unk_id=3,
    hard_vocab_limit=False,
)
ENCODE_BATCH_DOCS = 256


def _log_sink():
    """Where the trainer's chatty C++ log goes: /dev/null, when stderr is a real file descriptor."""
    try:
        sys.stderr.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        return None  # SentencePiece can only redirect a real descriptor
    return open(os.devnull, "w")


def _training_error(message: str) -> str:
    """One readable line for a SentencePiece trainer failure."""
    too_small = re.search(r"smaller than required_chars\. (\d+) vs (\d+)", message)
    if too_small:
        asked, needed = too_small.groups()
        return (
            f"vocabulary size {asked} is too small for this text: it needs at least {needed} "
            "(4 special ids, 256 byte pieces and one per kept character)"
        )
    return f"tokenizer training failed: {(message.strip().splitlines() or ['unknown error'])[0]}"


def train_tokenizer(text_or_iterator: str | Iterable[str], vocab_size: int, out_prefix: str | os.PathLike,
                    user_symbols: tuple[str, ...] = ()) -> Path:
    """Train a BPE model on a text (one sentence per line) or on an iterable of documents.

    `user_symbols` become pieces of their own, with the ids right after the four special ones.
    Writes `<out_prefix>.model` and `<out_prefix>.vocab`; returns the .model path.
    """
    if isinstance(text_or_iterator, str):
        sentences: Iterable[str] = [line for line in text_or_iterator.splitlines() if line.strip()]
    else:
        sentences = (doc for doc in text_or_iterator if doc.strip())
    out_prefix = Path(out_prefix)
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            # The proto comes back in memory (no model_prefix): a model written by the trainer
            # records its output path, and its bytes should not depend on where it was built.
            model_writer=model,
            vocab_size=vocab_size,
            num_threads=TRAINER_THREADS,
            max_sentence_length=MAX_SENTENCE_BYTES,
            logstream=_log_sink(),
            **({"user_defined_symbols": list(user_symbols)} if user_symbols else {}),
            **TRAINER_FLAGS,
        )
    except RuntimeError as exc:
        raise GolfError(_training_error(str(exc))) from None
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    model_path = out_prefix.with_name(out_prefix.name + ".model")
    model_path.write_bytes(model.getvalue())
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    # The .vocab companion in SentencePiece's own format: piece, tab, score.
    vocab = "".join(f"{sp.id_to_piece(i)}\t{sp.get_score(i):g}\n" for i in range(sp.vocab_size()))
    out_prefix.with_name(out_prefix.name + ".vocab").write_text(vocab, encoding="utf-8")
    return model_path


def load_tokenizer(path: str | os.PathLike) -> spm.SentencePieceProcessor:
    """A SentencePiece model from disk; GolfError if the file is missing or not a model."""
    path = Path(path)
    if not path.is_file():
        raise GolfError(f"tokenizer {path} not found")
    try:
        return spm.SentencePieceProcessor(model_file=str(path))
    except (OSError, RuntimeError):
        raise GolfError(f"{path} is not a SentencePiece model") from None


def build_byte_luts(sp: spm.SentencePieceProcessor, vocab_size: int | None = None) -> "ByteLUTs":
    """The canonical byte tables over max(sp vocab, vocab_size) ids (reference.md 1.6).

    Control, unknown and unused ids (and ids beyond the tokenizer) are boundaries worth 0 bytes;
    a byte-fallback piece <0xNN> is 1 byte; any other piece is the UTF-8 length of its text after
    one leading "▁" is stripped, and that "▁" is a space byte unless the previous token is a boundary.
    """
    from golf.eval.bpb import ByteLUTs  # imports torch, which loading a tokenizer does not need

    table_size = max(sp.vocab_size(), vocab_size or 0)
    base_bytes = np.zeros(table_size, dtype=np.int32)
    has_leading_space = np.zeros(table_size, dtype=bool)
    is_boundary = np.ones(table_size, dtype=bool)
    for token_id in range(sp.vocab_size()):
        if sp.is_control(token_id) or sp.is_unknown(token_id) or sp.is_unused(token_id):
            continue
        is_boundary[token_id] = False
        if sp.is_byte(token_id):
            base_bytes[token_id] = 1
            continue
        piece = sp.id_to_piece(token_id)
        if piece.startswith("▁"):
            has_leading_space[token_id] = True
            piece = piece[1:]
        base_bytes[token_id] = len(piece.encode("utf-8"))
    return ByteLUTs(base_bytes=base_bytes, has_leading_space=has_leading_space, is_boundary=is_boundary)


def encode_documents(sp: spm.SentencePieceProcessor, docs: Iterable[str]) -> np.ndarray:
    """[BOS] + sp.encode(doc) for each document, concatenated (uint16; no EOS)."""
    if sp.vocab_size() > 2**16:
        raise GolfError(f"a vocabulary of {sp.vocab_size()} does not fit uint16 shards")
    pieces: list[np.ndarray] = []
    batch: list[str] = []

    def flush() -> None:
        for ids in sp.encode(batch, out_type=int, num_threads=TRAINER_THREADS):
            pieces.append(np.array([BOS_ID, *ids], dtype=np.uint16))
        batch.clear()

    for doc in docs:
        batch.append(doc)
        if len(batch) == ENCODE_BATCH_DOCS:
            flush()
    if batch:
        flush()
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.uint16)
