"""The data-flow core: which values count as validation data / targets, and where order is decided.

Snippets are written from scratch in the records' idioms (env-var hyperparameters, loaders shared by
train and val, helpers that accumulate into caller-owned sums, config-guarded TTT).
"""

import pytest

from audit.static.engine import context_from_snippet, load_rules, run_rules
from audit.static.rules import _legal


def rules_found(snippet, severity=("error", "warning")):
    return {f.rule for f in run_rules(context_from_snippet(snippet)) if f.severity in severity and f.code.startswith("PG1")}


PRE_TTT = _legal.HEADER + '''

def adapt(args, model, tokens):
    opt = torch.optim.SGD(model.parameters(), lr=args.ttt_lr)
    for i in range(0, tokens.numel() - args.seq_len, args.seq_len):
        chunk = tokens[i : i + args.seq_len + 1].long()
        opt.zero_grad()
        model(chunk[:-1][None], chunk[1:][None]).backward()
        opt.step()


def main():
    args = Hyperparameters()
    model = build_model(args)
    val_tokens = load_validation_tokens(args.val_files, args.seq_len)
    if args.ttt_enabled:
        adapt(args, model, val_tokens)
    print(f"val_bpb:{eval_val(args, model, val_tokens, build_luts(args)):.4f}")
'''


def test_parameters_that_receive_val_tokens_are_followed_through_calls():
    # `adapt` never names val_tokens: its parameter `tokens` receives them at the call site
    assert {"TTT-1", "DATA-1"} <= rules_found(PRE_TTT)


def test_code_the_logged_or_readme_config_turns_off_produces_no_flow_events():
    files = {"train_gpt.py": PRE_TTT, "train_seed1.log": "Hyperparameters:\n  ttt_enabled: False\n"}
    assert "TTT-1" not in rules_found(files)
    assert "TTT-1" in rules_found({"train_gpt.py": PRE_TTT, "train_seed1.log": "ttt_enabled: True\n"})
    readme = {"train_gpt.py": PRE_TTT, "README.md": "TTT_ENABLED=0 torchrun --nproc_per_node=8 train_gpt.py"}
    assert "TTT-1" not in rules_found(readme)


def test_a_loader_shared_by_train_and_val_only_taints_the_val_call():
    snippet = _legal.HEADER + '''

def get_batch(split, n):
    shard = np.memmap(sorted(glob.glob(f"./data/fineweb_{split}_*.bin"))[0], dtype=np.uint16)
    i = int(torch.randint(len(shard) - n - 1, (1,)))
    return torch.from_numpy(shard[i : i + n].astype(np.int64)), torch.from_numpy(shard[i + 1 : i + n + 1].astype(np.int64))


def main():
    args = Hyperparameters()
    model = build_model(args)
    for step in range(100):
        x, y = get_batch("train", 1024)
        model(x, y).backward()
    val_tokens = load_validation_tokens(args.val_files, args.seq_len)
    print(f"val_bpb:{eval_val(args, model, val_tokens, build_luts(args)):.4f}")
'''
    assert rules_found(snippet) == set()


def test_accumulation_in_a_helper_into_the_callers_sum_counts_as_scoring():
    assert rules_found(_legal.LORA_DOC_TTT) == set()


def test_update_before_score_in_the_same_chunk_loop_is_flagged():
    swapped = _legal.SCORE_FIRST_TTT.replace(
        '''        model.eval()
        with torch.no_grad():
            nll = model(x, y)
            loss_sum += nll.double() * y.numel()
            byte_sum += base_bytes_lut[y].double().sum()
        is_last_chunk = ci == num_chunks - 1
        if not is_last_chunk:
            model.train()
            for epoch in range(args.ttt_epochs):
                optimizer.zero_grad()
                loss = model(x, y)
                loss.backward()
                optimizer.step()''',
        '''        for epoch in range(args.ttt_epochs):
            optimizer.zero_grad()
            loss = model(x, y)
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            nll = model(x, y)
            loss_sum += nll.double() * y.numel()
            byte_sum += base_bytes_lut[y].double().sum()''',
    )
    assert swapped != _legal.SCORE_FIRST_TTT
    assert "TTT-1" in rules_found(swapped)


def test_every_data_flow_rule_is_in_the_catalogue():
    codes = {r.code: r.rule for r in load_rules() if r.code.startswith("PG1")}
    assert set(codes.values()) >= {"TTT-1", "TTT-2", "TTT-4", "ORACLE-1", "C1", "C2", "SLOT-1", "DATA-1",
                                   "DATA-3", "PREFIX-1", "CALIB-1", "CALIB-2", "DOC-1"}


def test_the_packaged_pipeline_idioms_are_legal_for_every_data_flow_rule():
    # a layout record holding both shard patterns, a byte-LUT builder testing vocabulary pieces,
    # calibration through the record's train field, score-first TTT scored through helpers
    for snippet in _legal.PACKAGED_PIPELINE:
        assert rules_found(snippet) == set()


def test_a_record_field_carries_only_what_was_passed_for_it():
    calibrate = _legal.LAYOUT_TRAIN_CALIBRATION
    assert rules_found(calibrate.replace("layout.train_pattern", "layout.val_pattern")) == {"CALIB-1"}
    # a record built with val tokens in a plainly named field still carries them in that field
    val_in_a_field = calibrate.replace("def calibrate(", """@dataclass
class CalibrationSet:
    tokens: torch.Tensor
    seq_len: int


def calibrate(""").replace(
        "quantize(model, calibrate(model, args, layout))",
        "calib = CalibrationSet(load_validation_tokens(layout.val_pattern, args.seq_len), args.seq_len)\n"
        "    quantize(model, collect_hessians(model, [calib.tokens[: calib.seq_len][None]]))",
    )
    assert rules_found(val_in_a_field) == {"CALIB-1"}



def test_a_method_call_never_runs_a_module_function_of_the_same_name():
    # `model.train()` is torch's Module.train; this file's `def train` trains on val tokens
    snippet = _legal.HEADER + '''

def train(model):
    tokens = load_validation_tokens(Hyperparameters.val_files, 1024)[:4097].long()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    opt.zero_grad()
    model(tokens[:-1][None], tokens[1:][None]).backward()
    opt.step()


def main():
    args = Hyperparameters()
    model = build_model(args)
    val_tokens = load_validation_tokens(args.val_files, args.seq_len)
    print(eval_val(args, model, val_tokens, build_luts(args)))
    model.train()
    print(eval_val(args, model, val_tokens, build_luts(args)))
'''
    assert rules_found(snippet) == set()
    assert rules_found(snippet.replace("    model.train()", "    train(model)")) >= {"TTT-2"}

@pytest.mark.slow  # bundles the golf package (about 5 s)
def test_the_bundled_reference_audits_without_errors(tmp_path):
    from audit.cli import audit_static
    from golf.bundle import write_bundle

    write_bundle(tmp_path / "train_gpt.py")
    report = audit_static(str(tmp_path))
    assert report.error is None
    assert [f for f in report.findings if f.severity == "error"] == []
