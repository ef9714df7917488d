"""PG007 BYTES-1: the token byte tables differ from the canonical sentencepiece LUT rule."""

from __future__ import annotations

import ast
import re

from audit.static.bytes_provenance import bpb_origins
from audit.static.evidence import file_index, line_text, python_files
from audit.static.rule import Rule

_SPACE = "\u2581"
_PIECE_CALLS = {"id_to_piece", "IdToPiece"}
_SPACE_LUT = re.compile(r"leading_space|has_space|has_leading|space_lut", re.IGNORECASE)
_BOUNDARY = re.compile(r"boundary", re.IGNORECASE)
_LUT_FN = re.compile(r"lut|byte|base", re.IGNORECASE)


def _call_names(node: ast.AST) -> set[str]:
    out = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            f = sub.func
            out.add(f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", ""))
    return out


def _strings(node: ast.AST) -> list[str]:
    return [s.value for s in ast.walk(node) if isinstance(s, ast.Constant) and isinstance(s.value, str)]


def _plus_one(value: ast.AST) -> bool:
    """`len(...) + 1` / `1 + len(...)`."""
    if not (isinstance(value, ast.BinOp) and isinstance(value.op, ast.Add)):
        return False
    sides = (value.left, value.right)
    has_one = any(isinstance(s, ast.Constant) and s.value == 1 for s in sides)
    has_len = any(isinstance(s, ast.Call) and getattr(s.func, "id", "") == "len" for s in sides)
    return has_one and has_len


class ByteLutRule(Rule):
    """val_bpb divides by the true UTF-8 bytes of the validation text. The canonical LUT
    (`build_sentencepiece_luts` in the root train_gpt.py of openai/parameter-golf): control,
    unknown and unused pieces are boundaries with 0 bytes; byte-fallback pieces count 1 byte;
    a leading "▁" is stripped once and recorded in has_leading_space, and base_bytes is
    `len(piece.encode("utf-8"))` of the rest; at evaluation the space adds one byte only as
    `has_leading_space[tgt] & ~is_boundary[prev]`.

    The tables checked are those whose values reach a reported bpb's denominator by data flow
    (audit/static/bytes_provenance.py) in any file of the submission; only when no bpb denominator
    can be followed are builders picked by name. A table of word-start booleans (`starts_word_lut`) that feeds a gate, not a
    byte count, is not a byte table.

    Findings: a base byte count of `len(piece[1:]) + 1` while evaluation adds has_leading_space
    again (the double-counted space of #1672, same bug closed in #1545 and #1576); the "▁" marker
    never stripped (3 bytes counted for one space); byte-fallback pieces not special-cased
    (`<0x41>` counted as 6 bytes); control/unknown pieces given non-zero bytes; the space byte
    added without the boundary mask (a warning). Issue #897; tejasnaladala on #1672; the Scylla
    byte audit (#1289: +4.13% bytes).
    """

    code = "PG007"
    rule = "BYTES-1"
    severity = "error"
    confidence = "high"
    references = ("#1672", "#1545", "#1576", "#897", "#1289", "#2009")
    summary = "byte LUT differs from the canonical rule (space, byte-fallback, boundary tokens)"

    _CANONICAL = (
        "import numpy as np\n"
        "def build_sentencepiece_luts(sp, vocab_size):\n"
        "    base = np.zeros(vocab_size, dtype=np.int16)\n"
        "    has_leading_space = np.zeros(vocab_size, dtype=bool)\n"
        "    is_boundary = np.ones(vocab_size, dtype=bool)\n"
        "    for i in range(sp.vocab_size()):\n"
        "        if sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i):\n"
        "            continue\n"
        "        is_boundary[i] = False\n"
        "        if sp.is_byte(i):\n"
        "            base[i] = 1\n"
        "            continue\n"
        "        piece = sp.id_to_piece(i)\n"
        "        if piece.startswith('\u2581'):\n"
        "            has_leading_space[i] = True\n"
        "            piece = piece[1:]\n"
        "        base[i] = len(piece.encode('utf-8'))\n"
        "    return base, has_leading_space, is_boundary\n"
        "def count_bytes(base_lut, has_leading_space_lut, is_boundary_lut, prev, tgt):\n"
        "    b = base_lut[tgt]\n"
        "    b += has_leading_space_lut[tgt] & ~is_boundary_lut[prev]\n"
        "    return b\n"
    )
    VALID = [
        _CANONICAL,
        # a word-start boolean table beside the canonical byte LUT: a gate, not a byte count
        _CANONICAL + (
            "def build_word_start_lut(sp, vocab_size):\n"
            "    starts_word_lut = np.zeros(vocab_size, dtype=bool)\n"
            "    for i in range(sp.vocab_size()):\n"
            "        starts_word_lut[i] = sp.id_to_piece(i).startswith('\u2581')\n"
            "    return starts_word_lut\n"
            "def eval_val(model, sp, val_tokens, vocab_size):\n"
            "    base_lut, space_lut, boundary_lut = build_sentencepiece_luts(sp, vocab_size)\n"
            "    gate = build_word_start_lut(sp, vocab_size)\n"
            "    x, y = val_tokens[:-1], val_tokens[1:]\n"
            "    nll = model(x, y, gate[x])\n"
            "    byte_count = count_bytes(base_lut, space_lut, boundary_lut, x, y).sum()\n"
            "    val_bpb = nll.sum() / 0.6931471805599453 / byte_count\n"
            "    return val_bpb\n"
        ),
    ]
    INVALID = [
        # #1672: the space in base bytes and again at evaluation; byte pieces and control tokens not handled
        "def build_sentencepiece_luts(sp, vocab_size):\n"
        "    base_bytes = [0] * vocab_size\n    has_space = [False] * vocab_size\n"
        "    is_boundary = [False] * vocab_size\n"
        "    for i in range(vocab_size):\n"
        "        piece = sp.id_to_piece(i)\n"
        "        base_bytes[i] = len(piece.encode('utf-8'))\n"
        "        if piece.startswith('\u2581'):\n"
        "            has_space[i] = True\n"
        "            base_bytes[i] = len(piece[1:].encode('utf-8')) + 1\n"
        "        if sp.is_control(i) or sp.is_unknown(i):\n"
        "            is_boundary[i] = True\n"
        "    return base_bytes, has_space, is_boundary\n"
        "def count_bytes(base_bytes_lut, has_leading_space_lut, is_boundary_token_lut, prev, tgt):\n"
        "    tb = base_bytes_lut[tgt]\n"
        "    tb += has_leading_space_lut[tgt] & ~is_boundary_token_lut[prev]\n"
        "    return tb\n",
        _CANONICAL.replace("        if sp.is_byte(i):\n            base[i] = 1\n            continue\n", ""),
    ]

    def check(self, ctx):
        for src in python_files(ctx):
            index = file_index(src)
            piece_fns = [fn for fns in src.analysis.functions.values() for fn in fns
                         if index.callees.get(fn, set()) & _PIECE_CALLS]
            origins = [o for s in python_files(ctx) for o in bpb_origins(s)]
            if origins:  # the builders whose tables reach a bpb denominator (none: a sidecar, a file)
                builders = set().union(*(o.builders for o in origins if o.sentencepiece))
                lut_fns = [fn for fn in piece_fns if fn in builders]
            else:
                lut_fns = [fn for fn in piece_fns if _LUT_FN.search(fn.name) or any(
                    _LUT_FN.search(n) for n in self._targets(fn))]
            if not lut_fns:
                continue
            space_adds = self._space_additions(index)
            for fn in lut_fns:
                yield from self._check_lut(src, fn, space_adds)
            for add in space_adds:
                text = ast.unparse(add)
                if not _BOUNDARY.search(text) and "~" not in text:
                    yield self.finding(src, add.lineno, "the leading-space byte is added without the boundary mask "
                                       "(`& ~is_boundary[prev]`): a space is counted after BOS/control tokens too",
                                       evidence=line_text(src, add.lineno), severity="warning", confidence="medium")

    @staticmethod
    def _targets(fn) -> list[str]:
        out = []
        for node in ast.walk(fn):
            if isinstance(node, (ast.Assign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    base = t.value if isinstance(t, ast.Subscript) else t
                    name = base.id if isinstance(base, ast.Name) else getattr(base, "attr", "")
                    if name:
                        out.append(name)
        return out

    @staticmethod
    def _space_additions(index) -> list[ast.AST]:
        """Expressions that add a leading-space LUT entry to a byte count (evaluation side)."""
        out = []
        for node in sorted(index.of(ast.AugAssign, ast.BinOp), key=lambda n: n.lineno):
            operands = []
            if isinstance(node, ast.AugAssign) and isinstance(node.op, ast.Add):
                operands = [node.value]
            elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
                operands = [node.left, node.right]
            for op in operands:
                subs = [s for s in ast.walk(op) if isinstance(s, ast.Subscript)]
                if any(_SPACE_LUT.search(ast.unparse(s.value)) for s in subs if isinstance(s.value, (ast.Name, ast.Attribute))):
                    out.append(node)
                    break
        return out

    def _check_lut(self, src, fn, space_adds):
        calls = _call_names(fn)
        strings = _strings(fn)
        where = fn.lineno
        if not ({"is_byte", "IsByte"} & calls) and not any("<0x" in s for s in strings):
            yield self.finding(src, where, f"`{fn.name}` does not special-case byte-fallback pieces: `<0x41>` is "
                               "counted as 6 bytes instead of 1", evidence=line_text(src, where))
        if not any(_SPACE in s for s in strings):
            yield self.finding(src, where, f"`{fn.name}` never strips the \u2581 marker: a space is counted as its "
                               "3-byte UTF-8 marker", evidence=line_text(src, where), confidence="medium")
        control = [n for n in ast.walk(fn) if isinstance(n, ast.If) and _call_names(n.test) & {
            "is_control", "IsControl", "is_unknown", "IsUnknown"}]
        if not control:
            yield self.finding(src, where, f"`{fn.name}` does not treat control/unknown pieces as 0-byte boundaries",
                               evidence=line_text(src, where))
        for node in control:
            zeroes = any(isinstance(s, ast.Continue) or (isinstance(s, ast.Assign) and isinstance(s.value, ast.Constant)
                                                          and s.value.value == 0) for s in ast.walk(node))
            if not zeroes:
                yield self.finding(src, node.lineno, "control/unknown pieces are marked but keep the byte length of "
                                   "their text (`<s>` = 3 bytes): boundaries must count 0 bytes",
                                   evidence=line_text(src, node.lineno))
        for node in ast.walk(fn):
            if isinstance(node, ast.Assign) and _plus_one(node.value) and any(
                    "byte" in ast.unparse(t).lower() for t in node.targets):
                if space_adds:
                    yield self.finding(
                        src, node.lineno, "the leading space is counted twice: once in base bytes "
                        f"(`{ast.unparse(node.value)}`) and again where evaluation adds has_leading_space "
                        f"(line {src.line_map(space_adds[0].lineno)[1]})",
                        evidence=line_text(src, node.lineno) + "\n" + line_text(src, space_adds[0].lineno))
                else:
                    yield self.finding(src, node.lineno, "the leading space is counted in base bytes for every "
                                       "occurrence; canonically it counts only after a non-boundary token",
                                       evidence=line_text(src, node.lineno), severity="warning")
