"""The static engine: hyperparameters from logs / README / defaults, reachability, parsing, ordering."""

import ast
import textwrap

import pytest

from audit.static.analysis import parse_python
from audit.static.config import UNKNOWN, Config
from audit.static.engine import context_from_snippet, context_from_sources, load_rules, run_rules
from audit.static.rule import Rule

CODE = textwrap.dedent(
    """
    import os

    class Hyperparameters:
        smear_gate_enabled = bool(int(os.environ.get("SMEAR_GATE", "0")))
        ngram_eval_order = int(os.environ.get("NGRAM_EVAL_ORDER", "0"))
        ngram_within_beta = float(os.environ.get("NGRAM_WITHIN_BETA", 0.5))
        ttt_enabled = bool(int(os.environ.get("TTT_ENABLED", "1")))

    def _ngram_bulk_update(table, tokens):
        table[tokens] += 1

    def main():
        args = Hyperparameters()
        if args.ngram_eval_order > 0:
            _ngram_bulk_update(table, tokens)
        if args.smear_gate_enabled:
            smear = True
        else:
            smear = False
    """
)


def config_of(files):
    return context_from_snippet(files).hyper


def test_defaults_when_nothing_is_logged():
    cfg = config_of(CODE)
    assert cfg.resolve("smear_gate_enabled") == (False, "default")
    assert cfg.resolve("NGRAM_WITHIN_BETA") == (0.5, "default")
    assert cfg.resolve("no_such_flag") == (UNKNOWN, "")
    assert cfg.source == "defaults"


def test_logged_value_beats_readme_beats_default():
    files = {
        "train_gpt.py": CODE,
        "README.md": "Run:\n\n    SMEAR_GATE=0 NGRAM_WITHIN_BETA=0.0 SEED=$SEED torchrun train_gpt.py\n",
        "train_seed42.log": "Hyperparameters:\n  smear_gate_enabled: True\n  seed: 42\nstep:10/20000 val_bpb:1.2\n",
    }
    cfg = config_of(files)
    assert cfg.resolve("smear_gate_enabled") == (True, "log:train_seed42.log")
    assert cfg.resolve("ngram_within_beta") == (0.0, "README.md")
    assert cfg.resolve("SEED")[0] is UNKNOWN or cfg.resolve("SEED")[0] == 42  # `$SEED` is no value
    assert cfg.source == "log:train_seed42.log"


def test_readme_env_value_goes_through_the_code_conversion():
    cfg = config_of({"train_gpt.py": CODE, "README.md": "TTT_ENABLED=0 torchrun train_gpt.py"})
    assert cfg.resolve("ttt_enabled") == (False, "README.md")


def test_logs_that_print_the_source_code_do_not_count_code_as_values():
    log = "import os\n    x: int = 3\n    if a == b:\n        smear = foo(x)\nsmear_gate_enabled: True\n"
    cfg = config_of({"train_gpt.py": CODE, "train.log": log})
    assert cfg.logged["smear_gate_enabled"][0] is True
    assert "x" not in cfg.logged and "smear" not in cfg.logged


def test_guards_make_branches_and_only_called_functions_unreachable():
    ctx = context_from_snippet(CODE)
    fa = ctx.entry.analysis
    lines = CODE.splitlines()
    update_line = next(i for i, l in enumerate(lines, 1) if "table[tokens] += 1" in l)
    then_line = next(i for i, l in enumerate(lines, 1) if "smear = True" in l)
    else_line = next(i for i, l in enumerate(lines, 1) if "smear = False" in l)
    assert "only used where" in fa.unreachable_reason(update_line)
    assert "ngram_eval_order" in fa.unreachable_reason(update_line)
    assert fa.unreachable_reason(then_line) and not fa.unreachable_reason(else_line)
    logged = context_from_snippet({"train_gpt.py": CODE, "a.log": "ngram_eval_order: 5\nsmear_gate_enabled: True"})
    fa = logged.entry.analysis
    assert not fa.unreachable_reason(update_line) and not fa.unreachable_reason(then_line)
    assert fa.unreachable_reason(else_line)


class _FlagsTableWrites(Rule):
    code = "PG999"
    rule = "TEST"
    summary = "test rule"

    def check(self, ctx):
        for node in ast.walk(ctx.entry.analysis.tree):
            if isinstance(node, ast.AugAssign):
                yield self.finding(ctx.entry, node.lineno, "write")


def test_findings_in_unreachable_code_become_notes_with_the_reason():
    findings = run_rules(context_from_snippet(CODE), [_FlagsTableWrites()])
    assert [f.severity for f in findings] == ["note"]
    assert "unreachable" in findings[0].message and "config from defaults" in findings[0].message
    live = run_rules(context_from_snippet({"train_gpt.py": CODE, "r.log": "ngram_eval_order: 3"}), [_FlagsTableWrites()])
    assert [f.severity for f in live] == ["error"]


def test_entry_first_line_maps_and_lazy_libcst_module():
    ctx = context_from_sources(
        {"helper.py": "x = 1\n", "train_gpt.py": "import helper\n"},
        line_maps={"train_gpt.py": lambda line: ("train_gpt.py", line + 10)},
    )
    assert [f.path for f in ctx.files] == ["train_gpt.py", "helper.py"]
    assert ctx.files[0].line_map(1) == ("train_gpt.py", 11)
    assert ctx.files[1].module.code == "x = 1\n"


def test_pep701_fstrings_parse_with_their_line_numbers():
    text = 'a = 1\nlog(f"{", ".join(x)}")\nb = f"""\n{y}\n"""\nc = val_tokens\n'
    tree = parse_python(text)
    assigns = {n.targets[0].id: n.lineno for n in ast.walk(tree) if isinstance(n, ast.Assign)}
    assert assigns == {"a": 1, "b": 3, "c": 6}


def test_syntax_errors_raise():
    with pytest.raises(SyntaxError):
        context_from_sources({"train_gpt.py": "def (:\n"})


def test_rules_load_sorted():
    codes = [r.code for r in load_rules()]
    assert codes == sorted(codes)


def test_guards_fold_getattr_locals_and_minified_constants():
    code = textwrap.dedent(
        """
        import os
        _B = True
        _C = False

        class Hyperparameters:
            etlb_enabled = bool(int(os.environ.get("ETLB_ENABLED", "0")))

        def eval_val_sliding(args, model):
            use_slot = getattr(args, "slot_enabled", _C)
            if use_slot:
                slot = 1
            if args.etlb_enabled:
                etlb = 1
        """
    )
    fa = context_from_snippet(code).entry.analysis
    lines = code.splitlines()
    slot_line = next(i for i, l in enumerate(lines, 1) if "slot = 1" in l)
    etlb_line = next(i for i, l in enumerate(lines, 1) if "etlb = 1" in l)
    assert "use_slot" in fa.unreachable_reason(slot_line)
    assert "etlb_enabled" in fa.unreachable_reason(etlb_line)
    logged = context_from_snippet({"train_gpt.py": code, "train.log": "etlb_enabled: True\n"}).entry.analysis
    assert not logged.unreachable_reason(etlb_line)


def test_the_normalisers_tree_is_reused_only_when_normalising_changed_nothing(tmp_path):
    import base64
    import zlib

    from audit.submission import build_context, load_submission

    code = "import torch\n\n\ndef main():\n    print(torch.zeros(1))\n"
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "train_gpt.py").write_text(code)
    ctx = build_context(load_submission(str(tmp_path / "plain"), []))
    assert ctx.normalized.tree is not None and ctx.files[0].analysis.tree is ctx.normalized.tree
    packed = base64.b64encode(zlib.compress(code.encode())).decode()
    (tmp_path / "shim").mkdir()
    (tmp_path / "shim" / "train_gpt.py").write_text(f'import zlib, base64\nexec(zlib.decompress(base64.b64decode("{packed}")))\n')
    ctx = build_context(load_submission(str(tmp_path / "shim"), []))
    assert ctx.normalized.tree is None and "def main():" in ctx.files[0].text
    assert ast.dump(ctx.files[0].analysis.tree) == ast.dump(parse_python(ctx.files[0].text))
