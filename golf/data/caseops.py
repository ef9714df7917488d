"""A lossless case transform ("CaseOps") and the per-token byte sidecar its tokens are scored with.

Some submissions tokenise text after removing its capitalisation: a word in Title case becomes TITLE +
the word in lower case, a word in capitals (two letters or more) ALLCAPS + lower case, any other
capital inside a word CAPNEXT + its lower case; an operator character already in the text is
preceded by ESC. The operators are private-use characters, trained into the tokenizer as pieces of
their own (ids 4-7, right after pad/bos/eos/unk). `decode` inverts `encode` exactly.

Since only ASCII letters change case, every token but an operator spans as many bytes of the
original text as of the transformed one; the sidecar (one uint16 per val position, the shards'
layout) holds those original bytes, 0 for BOS and the operators. Scoring divides by its sum.
"""

from __future__ import annotations

import re

import numpy as np

TITLE, ALLCAPS, CAPNEXT, ESC = "\ue001", "\ue002", "\ue003", "\ue004"
OPERATORS = (TITLE, ALLCAPS, CAPNEXT, ESC)
_WORD = re.compile(r"[A-Za-z]+")
_ESCAPE = re.compile("[" + "".join(OPERATORS) + "]")


def _encode_word(match: re.Match) -> str:
    word = match.group(0)
    if word.islower():
        return word
    if word[0].isupper() and (len(word) == 1 or word[1:].islower()):
        return TITLE + word.lower()
    if len(word) > 1 and word.isupper():
        return ALLCAPS + word.lower()
    return "".join(CAPNEXT + c.lower() if c.isupper() else c for c in word)


def encode(text: str) -> str:
    """The transformed text (operators in front of the words or letters whose case they restore)."""
    return _WORD.sub(_encode_word, _ESCAPE.sub(lambda m: ESC + m.group(0), text))


def decode(text: str) -> str:
    """The original text of `encode`'s output."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c == ESC and i + 1 < n:
            out.append(text[i + 1])
            i += 2
        elif c in (TITLE, ALLCAPS):
            word = _WORD.match(text, i + 1)
            letters = word.group(0) if word else ""
            out.append(letters.upper() if c == ALLCAPS else letters[:1].upper() + letters[1:])
            i += 1 + len(letters)
        elif c == CAPNEXT and i + 1 < n:
            out.append(text[i + 1].upper())
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def byte_sidecar(tokens: np.ndarray, base_bytes: np.ndarray, has_leading_space: np.ndarray,
                 is_boundary: np.ndarray, operator_ids: list[int]) -> np.ndarray:
    """Original-text bytes of each position of a token stream (uint16): the canonical byte tables
    (base bytes, plus a space for a leading "▁" after a non-boundary) with the operators worth 0."""
    tokens = np.asarray(tokens, dtype=np.int64)
    base = base_bytes.astype(np.int64).copy()
    base[operator_ids] = 0
    counts = base[tokens]
    space = has_leading_space[tokens].copy()
    space[0] = False
    space[1:] &= ~is_boundary[tokens[:-1]]
    return (counts + space).astype(np.uint16)
