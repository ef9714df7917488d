"""Synthetic replay data: real-format shards and a tokenizer of exactly the vocabulary a submission
needs, cached; CaseOps text with its byte sidecar in the CaseOps folder only; the records' layout."""

import numpy as np
import pytest

from audit.replay.synthdata import install_layout, synthetic_data
from golf.data import caseops
from golf.data.corpus import load_corpus_documents
from golf.data.layout import resolve_data
from golf.data.shards import list_shards, read_shard
from golf.data.tokenizer import load_tokenizer
from golf.errors import GolfError


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("replay-cache")


@pytest.mark.parametrize("vocab", [1024, 4096])
def test_a_dataset_has_exactly_the_vocabulary_and_the_challenge_layout(cache, vocab):
    data = synthetic_data(vocab, cache=cache)
    assert data.shards.name == f"fineweb10B_sp{vocab}" and data.tokenizer.name == f"fineweb_{vocab}_bpe.model"
    assert load_tokenizer(data.tokenizer).vocab_size() == vocab
    layout = resolve_data(data.root)  # datasets/ + tokenizers/: the challenge layout
    assert layout.vocab_size == vocab and layout.tokenizer_path == data.tokenizer
    val = np.concatenate([read_shard(p) for p in list_shards(data.val_pattern)])
    assert 3000 < val.size < 20000 and val[0] == 1  # a few thousand tokens, documents start with BOS
    assert not list(data.shards.glob("fineweb_val_bytes_*"))  # no sidecar beside a plain val set


def test_the_dataset_is_built_once_and_then_read_from_the_cache(cache):
    first = synthetic_data(1024, cache=cache)
    stamp = first.tokenizer.stat().st_mtime_ns
    again = synthetic_data(1024, cache=cache)
    assert again == first and again.tokenizer.stat().st_mtime_ns == stamp


def test_caseops_round_trips_text_and_its_operators_are_pieces_4_to_7():
    text = "The NASA Launch of McDonald's A-team, x \ue001 y."
    assert caseops.decode(caseops.encode(text)) == text
    assert caseops.encode("The END") == "\ue001the \ue002end"


def test_caseops_data_has_a_sidecar_of_the_original_bytes_in_its_own_folder(cache):
    data = synthetic_data(1024, with_caseops=True, cache=cache)
    plain = synthetic_data(1024, cache=cache)
    assert data.shards != plain.shards and data.shards.name == "fineweb10B_sp1024_caseops"
    sp = load_tokenizer(data.tokenizer)
    assert [sp.id_to_piece(i) for i in range(4, 8)] == list(caseops.OPERATORS)
    val = np.asarray(read_shard(data.shards / "fineweb_val_000000.bin"))
    sidecar = np.asarray(read_shard(data.shards / "fineweb_val_bytes_000000.bin")).astype(np.int64)
    assert sidecar.size == val.size and sidecar[val == 1].sum() == 0
    assert np.isin(val, [4, 5, 6]).any()  # capitals became operators
    # the sidecar sums to the bytes of the untransformed text (as tokenised: nmt_nfkc whitespace)
    docs = load_corpus_documents(400_000)
    n_docs = int((val == 1).sum())
    original = sum(len(sp.normalize(d).replace("▁", " ").encode()) for d in docs[:n_docs])
    assert sidecar.sum() == original
    # and the val glob of the replay never takes the sidecar for tokens
    assert list_shards(data.val_pattern) == [data.shards / "fineweb_val_000000.bin"]


def test_the_layout_is_linked_where_the_records_default_to(cache, tmp_path):
    data = synthetic_data(1024, cache=cache)
    run = tmp_path / "run"
    (run / "data").mkdir(parents=True)
    install_layout(data, run)
    layout = resolve_data(run / "data")
    assert layout.vocab_size == 1024
    assert (run / "data" / "tokenizers" / "fineweb_1024_bpe.model").resolve() == data.tokenizer


def test_an_impossible_vocabulary_is_one_clear_error(cache):
    with pytest.raises(GolfError, match="no synthetic data for a vocabulary of 100"):
        synthetic_data(100, cache=cache)



def test_byte_level_data_is_the_documents_utf8_bytes_in_the_shard_format(cache, tmp_path):
    from audit.replay.synthdata import byte_level_data, byte_level_luts

    data = byte_level_data(cache=cache)
    assert data.tokenizer is None and data.vocab_size == 256 and data.shards.name == "fineweb10B_bytes"
    val = np.concatenate([read_shard(p) for p in list_shards(data.val_pattern)])
    text = bytes(val.astype(np.uint8)).decode("utf-8")
    assert text == "".join(load_corpus_documents(len(text) + 1))[: len(text)]  # the corpus, byte for byte
    luts = byte_level_luts()
    assert luts.vocab_size == 256 and luts.base_bytes.sum() == 256 and not luts.is_boundary.any()
    install_layout(data, tmp_path)
    assert (tmp_path / "data" / "datasets" / "fineweb10B_bytes").resolve() == data.shards.resolve()
    assert not (tmp_path / "data" / "tokenizers").exists()


def test_training_tokens_are_cut_into_a_shard_per_rank_of_a_node(cache):
    # loaders that give each rank its own files (files[rank::world_size]) find some on all 8 ranks
    data = synthetic_data(1024, cache=cache)
    train = sorted(data.shards.glob("fineweb_train_*.bin"))
    assert len(train) == 8 and all(read_shard(p).size > 1000 for p in train)
