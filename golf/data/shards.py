"""Token shards in the challenge's binary format, and the loaders that read them.

A shard is a 1024-byte header of 256 little-endian int32 (magic 20240520, version 1, token count n,
then zeros) followed by n little-endian uint16 token ids; its size must be exactly 1024 + 2n bytes.
Shards of one split are read in sorted file-name order. The training loader is the baseline's: one
stream over all shards that wraps around forever, cut into contiguous, disjoint per-rank spans.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np

from golf.errors import GolfError

if TYPE_CHECKING:
    import torch

SHARD_MAGIC = 20240520
SHARD_VERSION = 1
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
MAX_TOKEN_ID = 2**16 - 1


def write_shard(path: str | os.PathLike, tokens: np.ndarray) -> Path:
    """Write `tokens` (ids in [0, 65535]) as one shard; written to a temporary name, then renamed."""
    path = Path(path)
    tokens = np.asarray(tokens)
    if tokens.ndim != 1:
        raise GolfError(f"{path}: a shard holds a 1-D token sequence, got shape {tokens.shape}")
    if tokens.size and (not np.issubdtype(tokens.dtype, np.integer) or tokens.min() < 0 or tokens.max() > MAX_TOKEN_ID):
        raise GolfError(f"{path}: token ids must be integers in [0, {MAX_TOKEN_ID}] to fit uint16 shards")
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[:3] = (SHARD_MAGIC, SHARD_VERSION, tokens.size)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as f:
        f.write(header.tobytes())
        f.write(tokens.astype("<u2", copy=False).tobytes())
    os.replace(partial, path)
    return path


def shard_token_count(path: str | os.PathLike) -> int:
    """Validate a shard's header and size; returns its token count n (GolfError naming the file)."""
    path = Path(path)
    if not path.is_file():
        raise GolfError(f"{path}: not a file")
    size = path.stat().st_size
    if size < HEADER_BYTES:
        raise GolfError(f"{path}: {size} bytes is shorter than the {HEADER_BYTES}-byte shard header")
    header = np.fromfile(path, dtype="<i4", count=HEADER_INTS)
    if header[0] != SHARD_MAGIC:
        raise GolfError(f"{path}: not a token shard (magic {header[0]}, expected {SHARD_MAGIC})")
    if header[1] != SHARD_VERSION:
        raise GolfError(f"{path}: unsupported shard version {header[1]} (expected {SHARD_VERSION})")
    n = int(header[2])
    if n < 0 or size != HEADER_BYTES + 2 * n:
        raise GolfError(f"{path}: size {size} bytes does not match the header's {n} tokens ({HEADER_BYTES + 2 * n} bytes)")
    return n


def read_shard(path: str | os.PathLike) -> np.ndarray:
    """A validated shard's tokens as a read-only uint16 memory map (nothing is read until used)."""
    n = shard_token_count(path)
    if n == 0:
        return np.zeros(0, dtype=np.uint16)
    return np.memmap(path, dtype="<u2", mode="r", offset=HEADER_BYTES, shape=(n,))


def list_shards(pattern: str | os.PathLike) -> list[Path]:
    """The files matching a glob pattern, sorted by name; GolfError when none match."""
    paths = sorted(Path(p) for p in glob.glob(str(pattern)))
    if not paths:
        raise GolfError(f"no shards match {pattern}")
    return paths


def load_validation_tokens(pattern: str | os.PathLike, seq_len: int) -> "torch.Tensor":
    """All val shards concatenated in sorted order, truncated to a whole number of sequences.

    Keeps usable + 1 tokens, where usable = floor((N - 1) / seq_len) * seq_len targets: the rule of
    the reference records, kept so that scores stay comparable.
    """
    tokens = np.concatenate([read_shard(p) for p in list_shards(pattern)])
    usable = ((tokens.size - 1) // seq_len) * seq_len
    if usable <= 0:
        raise GolfError(f"validation split {pattern} has {tokens.size} tokens, too few for one sequence of {seq_len}")
    import torch  # here, not at the top: `golf data check|download` never need it

    return torch.from_numpy(tokens[: usable + 1].astype(np.int64))


class TokenStream:
    """Reads the shards matching `pattern` in sorted order, wrapping around forever."""

    def __init__(self, pattern: str | os.PathLike):
        self.files = list_shards(pattern)
        counts = [shard_token_count(p) for p in self.files]  # validate every shard up front
        if sum(counts) == 0:
            raise GolfError(f"the shards matching {pattern} hold no tokens")
        self.file_index = 0
        self.tokens = read_shard(self.files[0])
        self.position = 0

    def _next_file(self) -> None:
        self.file_index = (self.file_index + 1) % len(self.files)
        self.tokens = read_shard(self.files[self.file_index])
        self.position = 0

    def take(self, n: int) -> np.ndarray:
        """The next n tokens of the stream (uint16), crossing shard ends as needed."""
        chunks = []
        remaining = n
        while remaining > 0:
            available = self.tokens.size - self.position
            if available == 0:
                self._next_file()
                continue
            k = min(remaining, available)
            chunks.append(np.asarray(self.tokens[self.position : self.position + k]))
            self.position += k
            remaining -= k
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.uint16)


class DistributedTokenLoader:
    """Per-rank (x, y) batches from one shared stream: every rank reads the same span, keeps its slice."""

    def __init__(self, pattern: str | os.PathLike, rank: int, world_size: int):
        if world_size < 1 or not 0 <= rank < world_size:
            raise GolfError(f"rank {rank} is not in a world of size {world_size}")
        self.rank = rank
        self.world_size = world_size
        self.stream = TokenStream(pattern)

    def next_batch(self, global_tokens: int, seq_len: int, grad_accum_steps: int) -> tuple["torch.Tensor", "torch.Tensor"]:
        """Inputs and next-token targets, int64 of shape (local_tokens // seq_len, seq_len)."""
        local_tokens = global_tokens // (self.world_size * grad_accum_steps)
        if local_tokens < seq_len or local_tokens % seq_len:
            raise GolfError(
                f"batch of {global_tokens} tokens over {self.world_size} ranks x {grad_accum_steps} accumulation steps "
                f"gives {local_tokens} tokens per rank, not a positive multiple of seq_len {seq_len}"
            )
        span = local_tokens + 1  # one extra token: the last target
        chunk = self.stream.take(span * self.world_size)
        import torch  # see load_validation_tokens

        local = torch.from_numpy(chunk[self.rank * span : (self.rank + 1) * span].astype(np.int64))
        return local[:-1].reshape(-1, seq_len), local[1:].reshape(-1, seq_len)
