"""Run-log parsing: synthetic logs (written for these tests) in the record formats and golf's own."""

from audit.runner.logs import parse_log, parse_log_file, read_seed_logs

# A 2026-03 style record log: source dump, key:value preamble, step lines, wallclock stop,
# int8+zlib sizes, roundtrip and sliding scores (the last score line is the reported one).
EARLY_RECORD = """\
import os
print("hello")
====================================================================================================
train_loader:dataset:fineweb10B_sp1024 train_shards:80
model_params:17059912
world_size:8 grad_accum_steps:1
train_batch_tokens:524288 train_seq_len:1024 iterations:20000 warmup_steps:20 max_wallclock_seconds:600.000
seed:42
warmup_step:1/20
step:0/20000 val_loss:6.9357 val_bpb:4.1077 train_time:0ms step_avg:0.02ms
step:1/20000 train_loss:6.9370 train_time:38ms step_avg:38.45ms
step:6027/20000 val_loss:1.8998 val_bpb:1.1252 train_time:590012ms step_avg:97.89ms
stopping_early: wallclock_cap train_time:590012ms step:6027/20000
Serialized model: 67224983 bytes
Code size: 51234 bytes
Total submission size: 67276217 bytes
Serialized model int5+zstd: 15480123 bytes
Total submission size int5+zstd: 15531357 bytes
final_int8_zlib_roundtrip val_loss:1.9200 val_bpb:1.1371 eval_time:1650ms
final_int8_zlib_roundtrip_exact val_loss:1.92001234 val_bpb:1.13712345
final_sliding_window val_loss:1.8890 val_bpb:1.1188 stride:64 eval_time:80350ms
final_ttt_s0 val_loss:1.88800111 val_bpb:1.11818356 eval_time:117501ms
final_ttt_s0_exact val_loss:1.88800111 val_bpb:1.11818356
"""

# A 2026-04 style log: Hyperparameters dump, `key: value` spacing, diagnostic scores that must not
# count, compressed code size, a total_eval_time line.
LATE_RECORD = """\
Hyperparameters:
  matrix_lr: 0.022
  num_layers: 11
  seed: 1234
  rank: 0
train_shards: 80
val_tokens: 40540160
warmup_step: 1/20
4000/20000 train_loss: 2.7 train_time: 9.8m tok/s: 7000000
4950/20000 val_loss: 2.3539 val_bpb: 1.0756
stopping_early: wallclock_cap train_time: 599592ms step: 4950/20000
diagnostic pre-quantization post-ema val_loss:2.32848665 val_bpb:1.06395844 eval_time:6718ms
Code size (uncompressed): 157868 bytes
Code size (compressed): 31999 bytes
Serialized model quantized+brotli: 15865260 bytes
Total submission size quantized+brotli: 15897259 bytes
diagnostic quantized val_loss:2.34727563 val_bpb:1.07254371 eval_time:49995ms
quantized_ttt_phased val_loss:2.31944212 val_bpb:1.05989454 eval_time:508785ms
total_eval_time:508.8s
"""


def test_early_record_format():
    s = parse_log(EARLY_RECORD, source="train_seed42.log")
    assert s.seed == 42
    assert (s.val_loss, s.val_bpb) == (1.88800111, 1.11818356)
    assert s.score_label == "final_ttt_s0_exact"
    assert s.train_seconds == 590.012
    assert s.steps == 6027 and s.stopped_early
    assert s.artifact_bytes == 15531357  # the last total: the compressed one
    assert s.model_bytes == 15480123 and s.code_bytes == 51234
    # eval time = the reported scoring passes: 1650 + 80350 + 117501 ms
    assert abs(s.eval_seconds - 199.501) < 1e-9
    assert s.config["train_seq_len"] == "1024" and s.config["world_size"] == "8"
    assert "seed" not in s.config and "model_params" not in s.config
    assert s.code_hash is not None and len(s.code_hash) == 64


def test_late_record_format():
    s = parse_log(LATE_RECORD, source="train_seed0.log")
    assert s.seed == 1234  # the logged seed wins over the file name
    assert (s.val_loss, s.val_bpb) == (2.31944212, 1.05989454)
    assert s.score_label == "quantized_ttt_phased"
    assert s.eval_seconds == 508.8
    assert s.train_seconds == 599.592 and s.steps == 4950 and s.stopped_early
    assert s.code_bytes == 31999  # the counted (compressed) code size
    assert s.artifact_bytes == 15897259
    assert s.config == {"matrix_lr": "0.022", "num_layers": "11"}
    assert s.code_hash is None


def test_code_hash_ignores_launcher_noise_but_not_code():
    noisy = "W0318 14:37:59.159000 871689 torch/distributed/run.py:852] hi\n" + EARLY_RECORD
    assert parse_log(noisy).code_hash == parse_log(EARLY_RECORD).code_hash
    edited = EARLY_RECORD.replace('print("hello")', 'print("hullo")')
    assert parse_log(edited).code_hash != parse_log(EARLY_RECORD).code_hash


def test_seed_from_file_name_and_a_log_without_score():
    s = parse_log("step:1/10 train_loss:5.0 train_time:10ms step_avg:10ms\n", source="run_seed2025.txt")
    assert s.seed == 2025 and s.val_bpb is None and s.train_seconds == 0.01


def test_read_seed_logs_skips_files_without_score(tmp_path):
    (tmp_path / "train_seed42.log").write_text(EARLY_RECORD)
    (tmp_path / "requirements.txt").write_text("torch\nnumpy\n")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "train_seed1234.txt").write_text(LATE_RECORD)
    found = read_seed_logs(tmp_path)
    assert [s.source for s in found] == ["logs/train_seed1234.txt", "train_seed42.log"]
    assert [s.seed for s in found] == [1234, 42]
    assert parse_log_file(tmp_path / "train_seed42.log").val_bpb == 1.11818356


def _golf_log(run_dir: str, bpb: str) -> str:
    """golf's own train.log shape: per-file source dump, hyperparameters, steps, sizes, s_0 score."""
    return (
        f"# ---- source: {run_dir}/train_gpt.py ----\n"
        "import torch\nprint('the bundle')\n"
        f"{'=' * 100}\n"
        "num_layers: 3\nmodel_dim: 64\nseed: 42\ndata_path: /somewhere\n"
        "warmup_step:1/2\n"
        "step:40/40 val_loss:4.9 val_bpb:2.45 train_time:67248ms step_avg:1681.21ms\n"
        "training_budget: loop+calibration 67.4s of 600.0s\n"
        "diagnostic post_ema_prequant val_loss:4.9942 val_bpb:2.4514\n"
        "Serialized model int5: 103893 bytes\nCode size: 126448 bytes\n"
        "Total submission size: 230341 bytes (code 126448 + model 103893; artifact 230,341 bytes)\n"
        "diagnostic_sliding_window_exact val_loss:4.99680000 val_bpb:2.45260000 stride:32 eval_time:58798ms\n"
        f"final_ttt_s0_exact val_loss:4.89641155 val_bpb:{bpb} chunks:65 trained_chunks:64 eval_time:421429ms\n"
        "total_eval_time:481.2s budget:600s\n"
    )


def test_golf_log_format():
    s = parse_log(_golf_log("/runs/a", "2.40334563"), source="train_seed42.log")
    assert (s.seed, s.val_bpb, s.score_label) == (42, 2.40334563, "final_ttt_s0_exact")
    assert (s.train_seconds, s.eval_seconds, s.steps) == (67.248, 481.2, 40)
    assert (s.artifact_bytes, s.code_bytes, s.model_bytes) == (230341, 126448, 103893)
    assert s.config == {"num_layers": "3", "model_dim": "64"}
    # the same code run from another folder has the same hash; other code does not
    assert parse_log(_golf_log("/elsewhere/b", "2.5")).code_hash == s.code_hash
    assert parse_log(_golf_log("/runs/a", "2.4").replace("the bundle", "changed")).code_hash != s.code_hash


def test_config_keys_named_like_warmup_lines_stay_in_the_preamble():
    log = "warmup_steps: 2\nttt_lr: 0.001\nwarmup_step:1/2\nlate_key: 1\nfinal val_loss:1.0 val_bpb:0.5\n"
    s = parse_log(log)
    assert s.config == {"warmup_steps": "2", "ttt_lr": "0.001"}
