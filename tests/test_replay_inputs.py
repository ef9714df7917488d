"""Where a replay's data comes from: parameter-golf's layout (DATA_PATH a shard folder, TOKENIZER_PATH a
model file anywhere), the challenge's data/ folder, and the packages a submission declares."""

import shutil

import pytest

from audit.replay.requirements import declared, missing_requirements
from audit.replay.run import resolve_inputs
from audit.replay.synthdata import synthetic_data
from golf.data.layout import resolve_data
from golf.errors import GolfError


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return synthetic_data(1024, cache=tmp_path_factory.mktemp("cache"))


def test_a_shard_folder_with_the_tokenizer_elsewhere_resolves(data, tmp_path):
    shards = tmp_path / "shards"
    shutil.copytree(data.shards, shards)
    model = tmp_path / "elsewhere" / "sp.model"
    model.parent.mkdir()
    shutil.copy(data.tokenizer, model)
    env = {"DATA_PATH": str(shards), "TOKENIZER_PATH": str(model)}
    inputs = resolve_inputs(env, None, None)
    assert inputs.tokenizer == model and inputs.vocab_size == 1024 and inputs.data_dir == shards
    assert inputs.val_pattern.endswith("fineweb_val_[0-9]*.bin")
    layout = resolve_data(shards, model)
    assert layout.tokenizer_path == model


def test_a_challenge_shard_folder_finds_its_tokenizer_two_levels_up(data):
    layout = resolve_data(data.shards)  # data/datasets/fineweb10B_sp1024 -> data/tokenizers/fineweb_1024_bpe.model
    assert layout.tokenizer_path == data.tokenizer and layout.vocab_size == 1024


def test_a_shard_folder_without_a_tokenizer_is_one_clear_error(data, tmp_path):
    shards = tmp_path / "shards"
    shutil.copytree(data.shards, shards)
    with pytest.raises(GolfError, match=r"tokenizer .*tokenizer.model not found"):
        resolve_inputs({"DATA_PATH": str(shards)}, None, None)
    with pytest.raises(GolfError, match="not found"):
        resolve_inputs({"DATA_PATH": str(shards), "TOKENIZER_PATH": str(tmp_path / "missing.model")}, None, None)


def test_declared_packages_are_read_from_a_requirements_file():
    text = "# deps\nflash-linear-attention>=0.1\n-r other.txt\nnumpy==2.0 ; python_version>'3'\n\ngit+https://x/y\n"
    assert declared(text) == ["flash-linear-attention", "numpy"]


def test_packages_not_installed_are_named_in_one_note_and_installed_ones_are_not(tmp_path):
    (tmp_path / "requirements.txt").write_text("numpy\nsentencepiece\ngolf-no-such-package-xyz\n")
    [finding] = missing_requirements(tmp_path)
    assert finding.code == "RP091" and finding.severity == "note"
    assert "golf-no-such-package-xyz" in finding.message and "numpy" not in finding.message
    (tmp_path / "requirements.txt").write_text("numpy\n")
    assert missing_requirements(tmp_path) == []
    (tmp_path / "requirements.txt").unlink()
    assert missing_requirements(tmp_path) == []


def test_the_entry_is_train_gpt_py_else_the_variant_the_static_audit_picks(tmp_path):
    from audit.replay.run import entry_of

    (tmp_path / "configs.py").write_text("X = 1\n")
    (tmp_path / "train_gpt_mega.py").write_text("import configs\nprint(configs.X)\n")
    assert entry_of(tmp_path) == "train_gpt_mega.py"
    (tmp_path / "train_gpt.py").write_text("print(1)\n")
    assert entry_of(tmp_path) == "train_gpt.py"
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no code\n")
    with pytest.raises(GolfError, match="no train_gpt.py to replay"):
        entry_of(empty)
    (empty / "notes.txt").unlink()
    with pytest.raises(GolfError, match="no train_gpt.py to replay"):
        entry_of(empty)
