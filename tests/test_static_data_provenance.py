"""Data provenance read from a submission folder on disk (audit/static/data_provenance.py):
the folder loader keeps shipped manifests and scripts, so DATA-1 / DATA-2 evidence that is not in
the code reaches the rules."""

from audit.static.engine import run_rules
from audit.static.rules.pg114_val_split_smaller import ValidationSplitSmaller
from audit.static.rules.pg121_logged_val_figures import LoggedValidationFigures
from audit.static.rules.pg122_val_shards_as_train import ValidationShardsAsTraining
from audit.submission import build_context, load_submission

CODE = "import glob\ntrain_files = sorted(glob.glob('./data/fineweb10B_sp8192/fineweb_train_*.bin'))\n"
META = '{"name": "x", "author": "a", "val_bpb": 1.05, "seeds": [42]}'


def _write(root, files):
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return build_context(load_submission(root))


def test_a_shipped_manifest_with_fewer_validation_documents_fails(tmp_path):
    ctx = _write(tmp_path, {"train_gpt.py": CODE, "submission.json": META,
                            "data/manifest.json": '{"shards": {"num_val_docs": 10000, "num_train_docs": 990000}}'})
    findings = run_rules(ctx, [ValidationSplitSmaller()])
    assert [f.severity for f in findings] == ["error"]
    assert findings[0].path == "data/manifest.json"


def test_the_reported_seeds_log_decides_the_validation_count(tmp_path):
    # an old run prepared locally logs a small split; the reported seed's log is canonical
    ctx = _write(tmp_path, {"train_gpt.py": CODE, "submission.json": META,
                            "logs/old_seed7.log": "vocab_size: 8192\ncaseops_enabled: True\nval_tokens: 9570304\n",
                            "logs/train_seed42.log": "vocab_size: 8192\ncaseops_enabled: True\nval_tokens: 47851520\n"})
    assert run_rules(ctx, [LoggedValidationFigures()]) == []
    (tmp_path / "submission.json").write_text(META.replace("[42]", "[7]"))
    ctx = build_context(load_submission(tmp_path))
    assert [f.severity for f in run_rules(ctx, [LoggedValidationFigures()])] == ["error"]


def test_a_shipped_script_that_links_validation_shards_as_training_fails(tmp_path):
    ctx = _write(tmp_path, {"train_gpt.py": CODE, "submission.json": META,
                            "setup.sh": "cd data/fineweb10B_sp8192 && ln -sf fineweb_val_000000.bin fineweb_train_000001.bin\n"})
    findings = run_rules(ctx, [ValidationShardsAsTraining()])
    assert [(f.severity, f.path) for f in findings] == [("error", "setup.sh")]
