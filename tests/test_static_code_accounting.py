"""Code accounting under the disputed raw-vs-packed convention (rules.md D2), PG001.

When only the convention puts a logged total over the limit, the finding is a warning with both
totals (a note when the log's packed count fits and the raw code would not); a loader that execs a shipped blob is counted with the blob."""

import random

from audit.static.engine import context_from_snippet, run_rules
from audit.static.rules.pg001_artifact_size import ArtifactOverLimit

# code that packs well: about 78 KB raw, a few KB as an lzma+base85 wrapper
RAW_CODE = "".join(f'TABLE_{i} = "{"0123456789abcdef" * 120}"\n' for i in range(40))


def _severities(files):
    return [f.severity for f in run_rules(context_from_snippet(files), [ArtifactOverLimit()])]


def test_over_only_because_the_code_is_counted_raw_is_a_warning():
    size = len(RAW_CODE.encode())
    log = (f"Serialized model quantized+brotli: 15976275 bytes\nCode size: {size} bytes\n"
           f"Total submission size quantized+brotli: {15976275 + size} bytes\n")
    assert _severities({"train_gpt.py": RAW_CODE, "train_seed1.log": log}) == ["warning"]


def test_over_even_with_the_code_packed_is_an_error():
    size = len(RAW_CODE.encode())
    log = (f"Serialized model quantized+brotli: 15999990 bytes\nCode size: {size} bytes\n"
           f"Total submission size quantized+brotli: {15999990 + size} bytes\n")
    assert _severities({"train_gpt.py": RAW_CODE, "train_seed1.log": log}) == ["error"]


def test_fits_only_because_the_code_is_counted_packed_is_a_note():
    log = ("Serialized model quantized+brotli: 15960000 bytes\nCode size (compressed): 9000 bytes\n"
           "Total submission size quantized+brotli: 15969000 bytes\n")
    assert _severities({"train_gpt.py": RAW_CODE, "train_seed1.log": log}) == ["note"]


def test_a_blob_the_loader_execs_is_counted():
    rng = random.Random(0)
    blob = "".join(rng.choice("abcdef0123456789") for _ in range(40000))
    loader = 'import lzma\nexec(lzma.decompress(open("code.xz", "rb").read()))\n'
    log = ("Serialized model int6+zstd: 15970000 bytes\nCode size: 64 bytes\n"
           "Total submission size int6+zstd: 15970064 bytes\n")
    assert _severities({"train_gpt.py": loader, "code.xz": blob, "train_seed1.log": log}) == ["error"]
    assert _severities({"train_gpt.py": loader, "other.xz": blob, "train_seed1.log": log}) == []
