"""`golf data demo` on a prefix of the bundled corpus, `golf data check`, and data-folder layouts."""

import json
import math
import shutil

import numpy as np
import pytest

from golf.cli import main
from golf.data.corpus import load_corpus_documents, split_documents
from golf.data.layout import resolve_data
from golf.data.shards import list_shards, read_shard, write_shard
from golf.data.tokenizer import encode_documents, load_tokenizer, train_tokenizer
from golf.errors import GolfError

DEMO_ARGS = ["--max-chars", "60000", "--vocab-size", "400", "--shard-tokens", "5000", "--val-fraction", "0.1"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "data"
    assert main(["data", "demo", "--out", str(out), *DEMO_ARGS]) == 0
    return out, json.loads((out / "meta.json").read_text())


def _concat(pattern):
    return np.concatenate([np.asarray(read_shard(p)) for p in list_shards(pattern)])


def test_demo_writes_the_real_layout(demo):
    out, meta = demo
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["meta.json", "tokenizer.model", "tokenizer.vocab", *meta["files"]["val"], *meta["files"]["train"]]
    )
    assert meta["vocab_size"] == 400 and meta["files"]["val"] == ["fineweb_val_000000.bin"]
    assert len(meta["files"]["train"]) == math.ceil(meta["tokens"]["train"] / 5000) >= 3
    for name in meta["files"]["train"][:-1]:
        assert read_shard(out / name).size == 5000  # cut at exactly --shard-tokens


def test_demo_splits_first_documents_to_val_and_trains_the_tokenizer_on_train_only(demo, tmp_path):
    out, meta = demo
    val_docs, train_docs = split_documents(load_corpus_documents(60000), 0.1)
    assert meta["docs"] == {"val": len(val_docs), "train": len(train_docs)}
    # The same bytes as a tokenizer trained on the train documents alone.
    assert train_tokenizer(train_docs, 400, tmp_path / "t").read_bytes() == (out / "tokenizer.model").read_bytes()
    sp = load_tokenizer(out / "tokenizer.model")
    val, train = _concat(out / "fineweb_val_*.bin"), _concat(out / "fineweb_train_*.bin")
    assert val.tolist() == encode_documents(sp, val_docs).tolist()
    assert train.tolist() == encode_documents(sp, train_docs).tolist()
    assert int((train == 1).sum()) == len(train_docs) and int((val == 1).sum()) == len(val_docs)
    first_shard_end = read_shard(out / "fineweb_train_000000.bin")[-1]
    assert first_shard_end != 1 and read_shard(out / "fineweb_train_000001.bin")[0] != 1  # a document spans them
    assert meta["val_text_bytes"] == sum(len(d.encode()) for d in val_docs)
    # The LUT byte count is exactly the UTF-8 size of the normalised val text ("\n\n" -> " ").
    assert meta["val_target_bytes"] == meta["val_normalized_bytes"] == meta["val_text_bytes"] - len(val_docs)


def test_unigram_baseline_matches_an_independent_computation(demo):
    out, meta = demo
    val, train = _concat(out / "fineweb_val_*.bin"), _concat(out / "fineweb_train_*.bin")
    counts = np.bincount(train, minlength=400)
    probs = (counts + 1) / (counts.sum() + 400)
    bits = -np.log2(probs[val[1:]]).sum()
    assert meta["unigram_val_bpb"] == pytest.approx(bits / meta["val_target_bytes"], rel=1e-12)
    assert 1.0 < meta["unigram_val_bpb"] < 8.0


def test_demo_replaces_its_own_output_but_not_other_folders(demo, tmp_path):
    out, meta = demo
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    assert main(["data", "demo", "--out", str(copy), *DEMO_ARGS[:-2]]) == 0  # val fraction 0.05 now
    assert json.loads((copy / "meta.json").read_text())["docs"]["val"] < meta["docs"]["val"]
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    assert main(["data", "demo", "--out", str(foreign), *DEMO_ARGS]) == 2
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("bad", [["--val-fraction", "1.5"], ["--shard-tokens", "0"], ["--max-chars", "10"]])
def test_demo_bad_options_exit_2_and_write_nothing(tmp_path, bad, capsys):
    assert main(["data", "demo", "--out", str(tmp_path / "d"), *bad]) == 2
    assert not (tmp_path / "d").exists() and list(tmp_path.iterdir()) == []
    err = capsys.readouterr().err.strip()
    assert err.startswith("golf: error:") and "\n" not in err


def test_check_accepts_the_demo_and_the_download_layout(demo, tmp_path):
    out, meta = demo
    assert main(["data", "check", "--data", str(out)]) == 0
    layout = resolve_data(out)
    assert layout.vocab_size == 400 and layout.tokenizer_path == out / "tokenizer.model"
    # The same files arranged like parameter-golf's data/ folder.
    shards = tmp_path / "datasets" / "fineweb10B_sp400"
    shards.mkdir(parents=True)
    (tmp_path / "tokenizers").mkdir()
    for name in meta["files"]["val"] + meta["files"]["train"]:
        shutil.copy(out / name, shards / name)
    shutil.copy(out / "tokenizer.model", tmp_path / "tokenizers" / "fineweb_400_bpe.model")
    layout = resolve_data(tmp_path)
    assert layout.val_pattern == str(shards / "fineweb_val_*.bin") and layout.vocab_size == 400
    assert main(["data", "check", "--data", str(tmp_path)]) == 0


@pytest.mark.parametrize("corruption", ["magic", "version", "truncated"])
def test_check_exits_2_on_a_malformed_shard(demo, tmp_path, corruption, capsys):
    data = tmp_path / "data"
    shutil.copytree(demo[0], data)
    shard = data / "fineweb_train_000001.bin"
    raw = bytearray(shard.read_bytes())
    if corruption == "magic":
        raw[:4] = b"GOLF"
    elif corruption == "version":
        raw[4:8] = np.int32(7).tobytes()
    else:
        raw = raw[:-1]
    shard.write_bytes(bytes(raw))
    assert main(["data", "check", "--data", str(data)]) == 2
    assert str(shard) in capsys.readouterr().err


def test_resolve_data_errors(demo, tmp_path):
    with pytest.raises(GolfError, match="not found"):
        resolve_data(tmp_path / "absent")
    with pytest.raises(GolfError, match="holds no shards"):
        resolve_data(tmp_path)
    data = tmp_path / "data"
    shutil.copytree(demo[0], data)
    (data / "tokenizer.model").unlink()
    with pytest.raises(GolfError, match="tokenizer .* not found"):
        resolve_data(data)
    shutil.copy(demo[0] / "tokenizer.model", data / "tokenizer.model")
    for train in data.glob("fineweb_train_*.bin"):
        train.unlink()
    with pytest.raises(GolfError, match="no shards match .*fineweb_train"):
        resolve_data(data)
    write_shard(data / "fineweb_train_000000.bin", np.arange(10))
    write_shard(data / "fineweb_val_000001.bin", np.array([1, 5, 1023]))  # a 1024-vocabulary shard
    with pytest.raises(GolfError, match="tokenizer vocabulary does not match the shards"):
        resolve_data(data)
