"""The replay's shrink: toy sizes through the environment from a statically read Hyperparameters class,
the evaluation-path flags kept as the logs ran them, eval-only rerun logs left out, fixed sizes named."""

from pathlib import Path

import pytest

from audit.replay.shrink import HARD_CODED_SLACK, eval_only_logs, plan_shrink, toy_width

HYPER = '''import os


class Hyperparameters:
    data_path = os.environ.get("DATA_PATH", "./data/datasets/fineweb10B_sp{vocab}")
    vocab_size = int(os.environ.get("VOCAB_SIZE", {vocab}))
    num_layers = int(os.environ.get("NUM_LAYERS", 11))
    model_dim = int(os.environ.get("MODEL_DIM", {dim}))
    num_heads = int(os.environ.get("NUM_HEADS", {heads}))
    num_kv_heads = int(os.environ.get("NUM_KV_HEADS", {kv}))
    rope_dims = int(os.environ.get("ROPE_DIMS", {rope}))
    mlp_mult = float(os.environ.get("MLP_MULT", 4.0))
    train_seq_len = int(os.environ.get("TRAIN_SEQ_LEN", 2048))
    eval_seq_len = int(os.environ.get("EVAL_SEQ_LEN", 64))
    eval_stride = int(os.environ.get("EVAL_STRIDE", 0))
    train_batch_tokens = int(os.environ.get("TRAIN_BATCH_TOKENS", 786432))
    iterations = int(os.environ.get("ITERATIONS", 20000))
    max_wallclock_seconds = float(os.environ.get("MAX_WALLCLOCK_SECONDS", 600.0))
    ttt_enabled = bool(int(os.environ.get("TTT_ENABLED", "0")))
    ttt_epochs = int(os.environ.get("TTT_EPOCHS", 3))
    ttt_chunk_tokens = int(os.environ.get("TTT_CHUNK_TOKENS", 32768))
    gptq_calibration_batches = int(os.environ.get("GPTQ_CALIBRATION_BATCHES", 64))
    ttt_eval_only = os.environ.get("TTT_EVAL_ONLY", "0") == "1"
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    recur_start_step = int(os.environ.get("RECUR_START_STEP", 3000))
{extra}

args = Hyperparameters()
'''


def _size_notes(plan):
    """The could-not-shrink notes (a folder without logs also gets RP092, tested on its own)."""
    return [f for f in plan.findings if f.code == "RP090"]


def submission(tmp_path: Path, logs: dict | None = None, extra: str = "", readme: str = "", **sizes) -> Path:
    values = dict(vocab=1024, dim=512, heads=8, kv=4, rope=16) | sizes
    folder = tmp_path / "sub"
    folder.mkdir(parents=True)
    (folder / "train_gpt.py").write_text(HYPER.format(extra=extra, **values))
    for name, text in (logs or {}).items():
        (folder / name).write_text(text)
    if readme:
        (folder / "README.md").write_text(readme)
    return folder


def test_sizes_read_from_the_environment_are_lowered_and_small_ones_kept(tmp_path):
    plan = plan_shrink(submission(tmp_path))
    assert plan.env["MODEL_DIM"] == "64" and plan.env["NUM_HEADS"] == "2" and plan.env["NUM_KV_HEADS"] == "1"
    assert plan.env["TRAIN_SEQ_LEN"] == "128" and plan.env["ITERATIONS"] == "3"
    assert "MLP_MULT" not in plan.env  # a multiple of the width: other code may fix it (a Hessian copy at 4x)
    assert plan.env["TTT_EPOCHS"] == "2"  # two epochs kept: a score-every-epoch mechanism still shows
    assert plan.env["TTT_CHUNK_TOKENS"] == "2048" and plan.env["GPTQ_CALIBRATION_BATCHES"] == "2"
    assert plan.env["RECUR_START_STEP"] == "2"  # a phase the full run reaches starts inside the 3 toy steps
    assert int(plan.env["TRAIN_BATCH_TOKENS"]) % (8 * 128) == 0
    assert int(plan.env["TRAIN_BATCH_TOKENS"]) // 4 // 8 >= 128  # a quarter-batch calibration still holds a sequence
    assert plan.shrunk["MODEL_DIM"] == "512->64" and plan.shrunk["MAX_WALLCLOCK_SECONDS"] == "600.0->30.0"
    assert "EVAL_SEQ_LEN" not in plan.env  # 64 is already below the toy length: never raised
    assert "EVAL_STRIDE" not in plan.env  # 0 means "the default": left alone
    assert "NUM_LAYERS" not in plan.env  # layer-index settings depend on it
    assert "LOCAL_RANK" not in plan.env and "TTT_EVAL_ONLY" not in plan.env
    assert plan.vocab_size == 1024 and not plan.caseops and not _size_notes(plan)


@pytest.mark.parametrize("heads, kv, rope", [(8, 4, 16), (8, 8, 16), (8, 1, 16), (16, 4, 0), (8, 2, 48), (12, 3, 16)])
def test_toy_width_keeps_the_gqa_ratio_and_a_head_dim_for_the_rotary_dims(heads, kv, rope):
    width = toy_width(heads, kv, rope, fixed=set())
    dim, new_heads, new_kv = width["MODEL_DIM"], width["NUM_HEADS"], width["NUM_KV_HEADS"]
    head_dim = dim // new_heads
    assert dim % new_heads == 0 and new_heads % new_kv == 0
    assert new_heads // new_kv == heads // kv
    assert head_dim % 2 == 0 and head_dim >= max(rope, 16)
    assert dim <= 512


def test_a_head_count_the_code_fixes_is_kept_and_the_width_divides_by_it(tmp_path):
    folder = submission(tmp_path)
    text = (folder / "train_gpt.py").read_text().replace('int(os.environ.get("NUM_HEADS", 8))', "12")
    (folder / "train_gpt.py").write_text(text)
    plan = plan_shrink(folder)
    assert "NUM_HEADS" not in plan.env
    assert int(plan.env["MODEL_DIM"]) % 12 == 0 and (int(plan.env["MODEL_DIM"]) // 12) % 2 == 0


def test_a_large_hard_coded_size_is_a_could_not_shrink_note_naming_it(tmp_path):
    extra = "    seq_len = 4096\n    warmdown_iters = 1200\n    bos_id = 1\n"
    plan = plan_shrink(submission(tmp_path, extra=extra))
    [finding] = _size_notes(plan)
    assert finding.code == "RP090" and finding.severity == "note" and "SEQ_LEN = 4096" in finding.message
    assert finding.path == "train_gpt.py" and finding.line == 26
    assert plan.shrunk["SEQ_LEN"] == "4096 (hard-coded)"


def test_a_small_hard_coded_size_runs_as_written_without_a_finding(tmp_path):
    extra = f"    seq_len = {128 * HARD_CODED_SLACK}\n"
    assert not _size_notes(plan_shrink(submission(tmp_path, extra=extra)))


def test_eval_path_flags_and_logged_values_are_kept_as_the_logs_ran_them(tmp_path):
    log = "Hyperparameters:\n  ttt_enabled: True\n  ttt_epochs: 1\n  model_dim: 768\n  local_rank: 0\nstep:1/2\n"
    readme = "TTT_CHUNK_TOKENS=1024 torchrun --nproc_per_node=8 train_gpt.py\n"
    plan = plan_shrink(submission(tmp_path, logs={"train_seed1.log": log}, readme=readme))
    assert plan.env["TTT_ENABLED"] == "1" and plan.kept["TTT_ENABLED"] == "1 (log:train_seed1.log)"
    assert plan.env["TTT_EPOCHS"] == "1"  # the logged value, below the toy one: set, not the default 3
    assert plan.env["TTT_CHUNK_TOKENS"] == "1024"  # the README's run command
    assert plan.shrunk["MODEL_DIM"] == "768->64"  # shrunk from the logged width
    assert "LOCAL_RANK" not in plan.env


def test_logs_of_eval_only_reruns_are_not_the_main_runs_configuration(tmp_path):
    main = "  ttt_enabled: False\n  eval_stride: 64\n"
    rerun = "TTT_EVAL_ONLY=1 - skipping training, loading the saved artifact\n  ttt_enabled: True\n  eval_stride: 32\n"
    logs = {"a_rerun.log": rerun, "train_seed1.log": main}
    assert eval_only_logs({"x.log": "  ttt_only: True\n", "y.log": "  ttt_only: False\n", "z.log": "# TTT_EVAL_ONLY: skip",
                           "code.log": '    if ttt_eval_only:\n        log("TTT_EVAL_ONLY=1 - skipping")\n'}) == ["x.log"]
    plan = plan_shrink(submission(tmp_path, logs=logs))
    assert plan.ignored_logs == ["a_rerun.log"]
    assert "TTT_ENABLED" not in plan.env  # the main run's False is the default
    assert plan.env["EVAL_STRIDE"] == "64" and "TTT_EVAL_ONLY" not in plan.env


def test_the_vocabulary_comes_from_the_default_data_path_and_caseops_from_its_flag(tmp_path):
    folder = submission(tmp_path, vocab=8192,
                        extra='    caseops_enabled = bool(int(os.environ.get("CASEOPS_ENABLED", "0")))\n')
    text = (folder / "train_gpt.py").read_text().replace('int(os.environ.get("VOCAB_SIZE", 8192))', "None")
    (folder / "train_gpt.py").write_text(text)
    plan = plan_shrink(folder)
    assert plan.vocab_size == 8192 and not plan.caseops
    (folder / "train.log").write_text("  caseops_enabled: True\n")
    assert plan_shrink(folder).caseops


def test_a_log_that_prints_the_source_does_not_set_a_type_name_as_a_value(tmp_path):
    log = "def __init__(\n        model_dim: int,\n        tie_embeddings: bool,\n):\n  ttt_enabled: True\n"
    plan = plan_shrink(submission(tmp_path, logs={"train.txt": log}))
    assert plan.shrunk["MODEL_DIM"] == "512->64" and plan.env["TTT_ENABLED"] == "1"


def test_a_readme_value_the_code_could_not_read_falls_back_to_the_default(tmp_path):
    readme = "Run with **TTT_EPOCHS=2** and ITERATIONS=0.04**.\n"
    plan = plan_shrink(submission(tmp_path, readme=readme))
    assert plan.env["ITERATIONS"] == "3" and plan.shrunk["ITERATIONS"] == "20000->3"


def test_a_byte_level_model_is_named_by_its_vocabulary_or_its_data_path(tmp_path):
    # the vocabulary from the code even where a log that prints the source shows `vocab_size: int`
    by_vocab = plan_shrink(submission(tmp_path / "a", vocab=256, logs={"train.txt": "  vocab_size: int,\n"}))
    assert by_vocab.byte_level and by_vocab.vocab_size == 256
    folder = submission(tmp_path / "b", vocab=512)
    text = (folder / "train_gpt.py").read_text().replace("fineweb10B_sp512", "fineweb10B_bytes")
    (folder / "train_gpt.py").write_text(text)
    assert plan_shrink(folder).byte_level
    assert not plan_shrink(submission(tmp_path / "c")).byte_level


def test_an_absolute_mlp_width_shrinks_with_the_model_width(tmp_path):
    plan = plan_shrink(submission(tmp_path, extra='    mlp_hidden = int(os.environ.get("MLP_HIDDEN", 1536))\n'))
    assert plan.env["MODEL_DIM"] == "64" and plan.env["MLP_HIDDEN"] == "192"  # 3x of 512 -> 3x of 64


def test_a_logged_name_of_the_code_is_not_a_value(tmp_path):
    # a log that prints the source: `eval_seq_len=sw_seq_len,` in a call is code, not the setting
    extra = '    ttt_optimizer = os.environ.get("TTT_OPTIMIZER")\n'
    log = "    eval_seq_len=sw_seq_len,\n    ttt_optimizer=ttt_opt,\n  warmdown_iters: 1200\n"
    code = "\nsw_seq_len = args.eval_seq_len\nttt_opt = 'adamw'\n"
    folder = submission(tmp_path, logs={"train.log": log}, extra=extra)
    (folder / "train_gpt.py").write_text((folder / "train_gpt.py").read_text() + code)
    plan = plan_shrink(folder)
    assert "EVAL_SEQ_LEN" not in plan.env and "TTT_OPTIMIZER" not in plan.env


def test_run_script_values_are_read_as_the_shell_would_give_them(tmp_path):
    extra = ('    compressor = os.environ.get("COMPRESSOR", "brotli")\n'
             '    backbone = os.environ.get("BACKBONE", "gpt")\n'
             '    warmdown_iters = int(os.environ.get("WARMDOWN_ITERS", 1200))\n')
    folder = submission(tmp_path, extra=extra)
    (folder / "run.sh").write_text('COMPRESSOR=${COMPRESSOR:-zstd} BACKBONE=${backbone} WARMDOWN_ITERS=2500.0 '
                                   'torchrun --nproc_per_node=8 train_gpt.py\n')
    plan = plan_shrink(folder)
    assert plan.env["COMPRESSOR"] == "zstd"  # the default the script gives when unset
    assert "BACKBONE" not in plan.env  # unknown without the script's variables
    assert plan.env["WARMDOWN_ITERS"] == "2500"  # int(os.environ[...]) cannot read "2500.0"


def test_a_status_word_logged_for_a_setting_the_code_parses_as_a_number_is_not_its_value(tmp_path):
    # `ngram_cache:enabled` is a status line; the code reads NGRAM_CACHE with int(): "enabled" would crash it
    extra = ('    _default = "1"\n'
             '    ngram_cache = bool(int(os.environ.get("NGRAM_CACHE", _default)))\n'
             '    ngram_order = int(os.environ.get("NGRAM_ORDER", _default))\n')
    log = "ngram_cache:enabled alpha=0.4\nngram_order: 7\n"
    plan = plan_shrink(submission(tmp_path, logs={"train.txt": log}, extra=extra))
    assert "NGRAM_CACHE" not in plan.env
    assert plan.env["NGRAM_ORDER"] == "7"  # a number logged for the same kind of read is kept


def test_without_a_log_or_run_command_the_flags_the_defaults_leave_off_are_named(tmp_path):
    extra = ('    ngram_two_pass = bool(int(os.environ.get("NGRAM_TWO_PASS", "0")))\n'
             '    swa_enabled = os.environ.get("SWA_ENABLED", "1") == "1"\n')
    (note,) = [f for f in plan_shrink(submission(tmp_path / "a", extra=extra)).findings if f.code == "RP092"]
    assert note.severity == "note" and note.evidence == "NGRAM_TWO_PASS, TTT_ENABLED"  # SWA is on by default
    logged = plan_shrink(submission(tmp_path / "b", extra=extra, logs={"train.log": "ngram_two_pass: True\n"}))
    assert not [f for f in logged.findings if f.code == "RP092"] and logged.env["NGRAM_TWO_PASS"] == "1"
