"""PG120 BYTES-1: the bytes in the bpb denominator do not come from the canonical byte rule."""

from __future__ import annotations

from audit.static.bytes_provenance import bpb_origins, case_encoded
from audit.static.evidence import line_text, python_files
from audit.static.rule import Rule

_HEADER = '''
import numpy as np
import torch
import sentencepiece as spm


def eval_val(model, val_tokens, byte_lut):
    loss_sum, token_count, byte_count = 0.0, 0, 0
    for s in range(0, val_tokens.numel() - 1024, 1024):
        x = val_tokens[s : s + 1024][None]
        y = val_tokens[s + 1 : s + 1025][None]
        loss_sum += float(model(x, y)) * y.numel()
        token_count += y.numel()
        byte_count += int(byte_lut[y].sum())
    val_bpb = loss_sum / 0.6931471805599453 / byte_count
    return val_bpb
'''

_SP_LUT = _HEADER + '''

def build_byte_lut(sp):
    lut = np.zeros(sp.vocab_size(), dtype=np.int64)
    for i in range(sp.vocab_size()):
        if sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i):
            continue
        if sp.is_byte(i):
            lut[i] = 1
            continue
        lut[i] = len(sp.id_to_piece(i).lstrip("\\u2581").encode("utf-8"))
    return torch.from_numpy(lut)


def main(model, val_tokens, tokenizer_path):
    sp = spm.SentencePieceProcessor(model_file=tokenizer_path)
    print(eval_val(model, val_tokens, build_byte_lut(sp)))
'''


class ByteDenominatorOrigin(Rule):
    """val_bpb divides by the true UTF-8 bytes of the original validation text. The byte count that
    reaches each bpb's denominator is followed by data flow (audit/static/bytes_provenance.py) to
    what it is built from. Accepted: tables built from the sentencepiece tokenizer's pieces (the
    canonical rule, whose details PG007 checks) and the raw-byte sidecar of the canonical CaseOps
    export (`fineweb_val_bytes_*`, 151,074,309 bytes). Flagged: per-token bytes read from any other
    file shipped with or generated for the submission (nothing proves they are the text's bytes),
    bytes from a non-sentencepiece tokenizer without a byte proof, and, for a case-encoding
    tokenizer, bytes of its own pieces or decoded text (the transformed text, not the original:
    the #1797 fix moved CaseOps to the sidecar).

    Precedent: README ("prove with certainty"), Issue #897, the Scylla byte audit (#1289, +4.13%
    bytes), cocohearts on #2138 (sidecar), tejasnaladala on #1672.
    """

    code = "PG120"
    rule = "BYTES-1"
    severity = "error"
    confidence = "medium"
    references = ("#897", "#1289", "#1797", "#2138", "#1672")
    summary = "the bpb denominator's bytes come from a file, a foreign tokenizer or the transformed text"

    VALID = [
        _SP_LUT,
        # the canonical CaseOps sidecar: raw bytes per token of the original text
        _SP_LUT.replace(
            "    print(eval_val(model, val_tokens, build_byte_lut(sp)))",
            '    sidecar = np.fromfile("./data/fineweb_val_bytes_000000.bin", dtype=np.uint16)\n'
            "    print(eval_val(model, val_tokens, torch.from_numpy(sidecar.astype(np.int64))))",
        ).replace("import sentencepiece as spm", "import sentencepiece as spm  # caseops tokenizer"),
    ]
    INVALID = [
        # per-token byte counts shipped next to the code
        _HEADER + '''

def main(model, val_tokens):
    table = np.load("token_byte_counts.npy")
    print(eval_val(model, val_tokens, torch.from_numpy(table)))
''',
        # a case-encoding tokenizer whose pieces are counted: the bytes of the transformed text
        _SP_LUT.replace("import sentencepiece as spm", "import sentencepiece as spm\nimport lossless_caps"),
        # a tokenizer's shipped metadata file gives the per-token bytes; sentencepiece only as a fallback
        _SP_LUT.replace(
            "    print(eval_val(model, val_tokens, build_byte_lut(sp)))",
            "    print(eval_val(model, val_tokens, load_luts(sp, tokenizer_path + '.meta.npz')))",
        ) + '''

def load_luts(sp, meta_path):
    import os
    if os.path.exists(meta_path):
        with np.load(meta_path) as meta:
            return torch.from_numpy(meta["base_bytes"])
    return build_byte_lut(sp)
''',
        # a tiktoken vocabulary with no byte proof
        _HEADER + '''

def main(model, val_tokens):
    import tiktoken
    enc = tiktoken.get_encoding("gpt2")
    lut = torch.tensor([len(enc.decode_single_token_bytes(i)) for i in range(enc.n_vocab)])
    print(eval_val(model, val_tokens, lut))
''',
    ]

    def check(self, ctx):
        transformed = None
        for src in python_files(ctx):
            for origin in bpb_origins(src):
                evidence = line_text(src, origin.line)
                if origin.sidecar:
                    continue
                if origin.file_loads:
                    yield self.finding(src, origin.line, f"the bpb denominator `{origin.denominator}` counts bytes "
                                       f"read from a file ({origin.file_loads[0]}): per-token bytes must come "
                                       "from the tokenizer by the canonical rule or the canonical raw-byte sidecar",
                                       evidence=evidence)
                elif origin.sentencepiece:
                    if transformed is None:
                        transformed = case_encoded(ctx)
                    if transformed:
                        yield self.finding(src, origin.line, f"the bpb denominator `{origin.denominator}` counts "
                                           "the bytes of a case-encoding tokenizer's pieces, i.e. of the transformed "
                                           "text; CaseOps must divide by the raw-byte sidecar of the original text",
                                           evidence=evidence)
                elif origin.foreign:
                    yield self.finding(src, origin.line, f"the bpb denominator `{origin.denominator}` counts bytes "
                                       f"of a non-sentencepiece tokenizer ({origin.foreign[0]}) with no byte proof",
                                       evidence=evidence)
