"""The model artifact: serialise a QuantizedState, compress it, and account its bytes against 16 MB.

Container (uncompressed): 4-byte little-endian header length, a UTF-8 JSON header listing every
entry and its arrays (dtype, shape, byte offset, byte count), then the raw array bytes. Compressed
blob: one codec tag byte followed by the zstd (level 22) or lzma (preset 9) stream, whichever is
smaller (reference.md 4.6). Loading reverses both steps bit-exactly.

Size accounting (rules.md SIZE-1, README FAQ): artifact = code bytes + compressed model bytes, and
the cap is "decimal 16MB, i.e. 16,000,000 total bytes", so a total of exactly 16,000,000 passes and
anything above fails. Code bytes are the raw UTF-8 bytes of the counted code file; the size of a
compressed self-extracting version (lzma + base85 `exec` shim, as several merged records ship) and
of all shipped code files are reported alongside.
"""

from __future__ import annotations

import base64
import json
import lzma
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch
import zstandard
from torch import Tensor

from golf.errors import BudgetExceeded, GolfError
from golf.quant.pack import QuantizedState, QuantizedTensor

ARTIFACT_BUDGET_BYTES = 16_000_000
CONTAINER_FORMAT = "golf-quant-1"
CODECS = {1: "zstd", 2: "lzma"}
_ARRAY_FIELDS = ("q", "scale", "value")
_DTYPES = {str(d).removeprefix("torch."): d for d in (
    torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int8, torch.uint8,
    torch.int16, torch.int32, torch.int64, torch.bool)}


def _dtype_name(dtype: torch.dtype) -> str:
    name = str(dtype).removeprefix("torch.")
    if name not in _DTYPES:
        raise GolfError(f"cannot serialise tensors of dtype {dtype}")
    return name


def _dtype_of(name: str) -> torch.dtype:
    if name not in _DTYPES:
        raise GolfError(f"malformed artifact: unknown dtype {name!r}")
    return _DTYPES[name]


def serialize_state(qstate: QuantizedState) -> bytes:
    """The uncompressed container bytes."""
    entries, chunks, offset = [], [], 0
    for name, e in qstate.entries.items():
        arrays = {}
        for key in _ARRAY_FIELDS:
            t = getattr(e, key)
            if t is None:
                continue
            data = t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
            arrays[key] = {"dtype": _dtype_name(t.dtype), "shape": list(t.shape),
                           "offset": offset, "nbytes": len(data)}
            chunks.append(data)
            offset += len(data)
        entries.append({"name": name, "kind": e.kind, "dtype": _dtype_name(e.dtype),
                        "shape": list(e.shape), "bits": e.bits, "arrays": arrays})
    header = json.dumps({"format": CONTAINER_FORMAT, "entries": entries},
                        separators=(",", ":")).encode("utf-8")
    return struct.pack("<I", len(header)) + header + b"".join(chunks)


def _read_array(payload: memoryview, spec: dict) -> Tensor:
    dtype, shape = _dtype_of(spec["dtype"]), tuple(spec["shape"])
    start, n = spec["offset"], spec["nbytes"]
    if start < 0 or start + n > len(payload):
        raise GolfError("malformed artifact: array outside the payload")
    if n == 0:
        return torch.empty(shape, dtype=dtype)
    raw = torch.frombuffer(bytearray(payload[start:start + n]), dtype=torch.uint8)
    return raw.view(dtype).reshape(shape)


def deserialize_state(data: bytes) -> QuantizedState:
    try:
        (header_len,) = struct.unpack_from("<I", data, 0)
        header = json.loads(bytes(data[4:4 + header_len]).decode("utf-8"))
    except (struct.error, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GolfError(f"malformed artifact header: {exc}") from None
    if header.get("format") != CONTAINER_FORMAT:
        raise GolfError(f"malformed artifact: format {header.get('format')!r}, expected {CONTAINER_FORMAT!r}")
    payload = memoryview(data)[4 + header_len:]
    out = QuantizedState()
    for spec in header["entries"]:
        arrays = {key: _read_array(payload, a) for key, a in spec["arrays"].items()}
        out.entries[spec["name"]] = QuantizedTensor(
            spec["kind"], _dtype_of(spec["dtype"]), tuple(spec["shape"]), spec["bits"], **arrays)
    return out


def compress(data: bytes, codecs: Iterable[str] = ("zstd", "lzma")) -> bytes:
    """Tag byte + the smallest of the requested codecs' outputs."""
    candidates = []
    for codec in codecs:
        if codec == "zstd":
            candidates.append(bytes([1]) + zstandard.ZstdCompressor(level=22).compress(data))
        elif codec == "lzma":
            candidates.append(bytes([2]) + lzma.compress(data, preset=9))
        else:
            raise ValueError(f"unknown codec {codec!r}; expected zstd or lzma")
    return min(candidates, key=len)


def decompress(blob: bytes) -> bytes:
    if not blob or blob[0] not in CODECS:
        raise GolfError("malformed artifact: unknown codec tag")
    body = blob[1:]
    try:
        if CODECS[blob[0]] == "zstd":
            return zstandard.ZstdDecompressor().decompress(body)
        return lzma.decompress(body)
    except (zstandard.ZstdError, lzma.LZMAError) as exc:
        raise GolfError(f"malformed artifact: {CODECS[blob[0]]} stream is corrupt ({exc})") from None


def pack_artifact(qstate: QuantizedState, codecs: Iterable[str] = ("zstd", "lzma")) -> bytes:
    """Serialise and compress: the model bytes that count against the budget."""
    return compress(serialize_state(qstate), codecs)


def load_artifact(blob: bytes) -> QuantizedState:
    return deserialize_state(decompress(blob))


def codec_of(blob: bytes) -> str:
    return CODECS[blob[0]]


# --- size accounting -------------------------------------------------------------------------

def code_bytes(path: str | Path) -> int:
    """Raw UTF-8 byte count of a code file (the counted size of `train_gpt.py`-style code)."""
    data = Path(path).read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GolfError(f"{path}: code file is not valid UTF-8 ({exc})") from None
    return len(data)


def self_extracting_code(source: str) -> str:
    """A two-line Python program that lzma-decompresses base85 text and execs the original."""
    packed = lzma.compress(source.encode("utf-8"), format=lzma.FORMAT_RAW,
                           filters=[{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}])
    return ("import lzma as L,base64 as B\n"
            f'exec(L.decompress(B.b85decode("{base64.b85encode(packed).decode("ascii")}"),'
            'format=L.FORMAT_RAW,filters=[{"id":L.FILTER_LZMA2}]))\n')


def compressed_code_bytes(path: str | Path) -> int:
    """Bytes of the self-extracting (lzma + base85) version of a code file."""
    code_bytes(path)  # validates UTF-8
    return len(self_extracting_code(Path(path).read_text(encoding="utf-8")).encode("utf-8"))


def shipped_code_bytes(paths: Iterable[str | Path]) -> int:
    """Raw bytes of every code file a submission ships (helpers, kernels, ...)."""
    return sum(code_bytes(p) for p in paths)


@dataclass(frozen=True)
class ArtifactSize:
    code_bytes: int
    model_bytes: int
    budget: int = ARTIFACT_BUDGET_BYTES

    @property
    def total(self) -> int:
        return self.code_bytes + self.model_bytes

    @property
    def headroom(self) -> int:
        return self.budget - self.total

    def describe(self) -> str:
        return (f"artifact {self.total:,} bytes (code {self.code_bytes:,} + model "
                f"{self.model_bytes:,}) vs budget {self.budget:,} bytes")


def check_artifact_budget(size: ArtifactSize) -> ArtifactSize:
    """Raise BudgetExceeded when code + model bytes exceed the cap (a total equal to it passes)."""
    if size.total > size.budget:
        raise BudgetExceeded(f"{size.describe()}: over by {-size.headroom:,} bytes")
    return size
