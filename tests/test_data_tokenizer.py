"""SentencePiece training with the challenge flags, the canonical byte LUTs and document encoding."""

import math

import numpy as np
import pytest
import torch

from golf.data.corpus import load_corpus_documents
from golf.data.tokenizer import build_byte_luts, encode_documents, load_tokenizer, train_tokenizer
from golf.errors import GolfError
from golf.eval.bpb import BpbAccumulator

# Characters the trainer sees too rarely to keep (character_coverage 0.999): byte fallback.
RARE_TEXT = "Über ℵ café"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    docs = load_corpus_documents(max_chars=30_000) + [RARE_TEXT]
    prefix = tmp_path_factory.mktemp("tok") / "small"
    return train_tokenizer(docs, 400, prefix), docs


def test_training_writes_model_and_vocab_with_the_challenge_ids(trained):
    model_path, _ = trained
    assert model_path.name == "small.model" and model_path.with_suffix(".vocab").is_file()
    sp = load_tokenizer(model_path)
    assert sp.vocab_size() == 400
    assert [sp.pad_id(), sp.bos_id(), sp.eos_id(), sp.unk_id()] == [0, 1, 2, 3]
    assert sp.id_to_piece(4) == "<0x00>" and sum(sp.is_byte(i) for i in range(400)) == 256
    # split_digits: a number is one piece per digit; add_dummy_prefix off: no "▁" in front of a text.
    assert sp.encode("1611", out_type=str) == ["1", "6", "1", "1"]
    assert not sp.encode("And", out_type=str)[0].startswith("▁")


def test_training_is_deterministic(trained, tmp_path):
    model_path, docs = trained
    again = train_tokenizer(docs, 400, tmp_path / "elsewhere" / "again")
    assert again.read_bytes() == model_path.read_bytes()  # same bytes, wherever it is written
    assert again.with_suffix(".vocab").read_text() == model_path.with_suffix(".vocab").read_text()


def test_a_text_is_trained_as_one_sentence_per_line(trained, tmp_path):
    text = "\n".join(trained[1])
    from_text = train_tokenizer(text, 400, tmp_path / "text")
    from_lines = train_tokenizer([line for line in text.splitlines() if line.strip()], 400, tmp_path / "lines")
    assert from_text.read_bytes() == from_lines.read_bytes()


def test_too_small_a_vocabulary_is_one_clear_line(trained, tmp_path):
    with pytest.raises(GolfError, match=r"vocabulary size 270 is too small for this text: it needs at least \d+"):
        train_tokenizer(trained[1], 270, tmp_path / "tiny")


def test_load_tokenizer_errors(tmp_path):
    with pytest.raises(GolfError, match="not found"):
        load_tokenizer(tmp_path / "missing.model")
    (tmp_path / "junk.model").write_bytes(b"not a protobuf at all")
    with pytest.raises(GolfError, match="is not a SentencePiece model"):
        load_tokenizer(tmp_path / "junk.model")


def test_luts_follow_the_canonical_rule(trained):
    sp = load_tokenizer(trained[0])
    luts = build_byte_luts(sp, vocab_size=sp.vocab_size() + 5)
    assert luts.vocab_size == 405
    for special in range(4):  # pad, bos, eos, unk
        assert luts.is_boundary[special] and luts.base_bytes[special] == 0 and not luts.has_leading_space[special]
    assert luts.is_boundary[400:].all() and not luts.base_bytes[400:].any()  # ids beyond the tokenizer
    byte_id = sp.piece_to_id("<0xC3>")
    assert (luts.base_bytes[byte_id], luts.has_leading_space[byte_id], luts.is_boundary[byte_id]) == (1, False, False)
    the = sp.piece_to_id("▁the")
    assert (luts.base_bytes[the], luts.has_leading_space[the], luts.is_boundary[the]) == (3, True, False)
    s_id = sp.piece_to_id("s")
    assert (luts.base_bytes[s_id], luts.has_leading_space[s_id]) == (1, False)


def test_hand_computed_bpb_on_a_tokenised_string(trained):
    sp = load_tokenizer(trained[0])
    luts = build_byte_luts(sp)
    ids = [sp.piece_to_id(p) for p in ["<s>", "<0xC3>", "<0x9C>", "▁the", "<s>", "▁the", "s"]]
    assert sp.unk_id() not in ids[1:]
    tokens = torch.tensor(ids)
    # Targets: <0xC3> 1 byte, <0x9C> 1, "▁the" after a byte piece 1+3, BOS 0, "▁the" after BOS
    # (a boundary: its space is not counted) 3, "s" 1  ->  10 bytes for 6 targets.
    nll = torch.full((6,), math.log(2.0))  # one bit per target
    acc = BpbAccumulator()
    acc.add(nll, tokens[:-1], tokens[1:], luts)
    assert acc.n_bytes == 10 and acc.n_tokens == 6
    assert acc.val_bpb == pytest.approx(6 / 10) and acc.val_loss == pytest.approx(math.log(2.0))


def test_encoded_documents_count_exactly_the_normalised_bytes(trained):
    sp = load_tokenizer(trained[0])
    docs = ["In the beginning\n\nGod created 1611 heavens.", RARE_TEXT, "  leading and  double  spaces ℵ"]
    tokens = encode_documents(sp, docs)
    assert tokens.dtype == np.uint16
    bos_positions = np.flatnonzero(tokens == 1).tolist()
    assert tokens[0] == 1 and len(bos_positions) == len(docs) and 2 not in tokens  # BOS per doc, no EOS
    expected = np.concatenate([[1, *sp.encode(d)] for d in docs])
    assert tokens.tolist() == expected.tolist()
    assert any(sp.is_byte(int(t)) for t in tokens)  # "ℵ" really went through byte fallback

    luts = build_byte_luts(sp)
    t = torch.from_numpy(tokens.astype(np.int64))
    acc = BpbAccumulator()
    acc.add(torch.zeros(t.numel() - 1), t[:-1], t[1:], luts)
    # nmt_nfkc folds newlines and runs of spaces and strips the ends; the LUTs count what is left.
    normalised = sum(len(sp.normalize(d).replace("▁", " ").encode("utf-8")) for d in docs)
    raw = sum(len(d.encode("utf-8")) for d in docs)
    assert acc.n_bytes == normalised < raw
