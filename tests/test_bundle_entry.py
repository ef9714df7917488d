"""golf.standalone: how the bundled train_gpt.py reads its settings from the environment."""

from pathlib import Path


from golf.standalone import default_out_dir, main, preset_from_env, train_args_from_env


def test_preset_from_env_defaults_to_the_device():
    import torch

    assert preset_from_env({"PRESET": "record"}) == "record"
    assert preset_from_env({}) == ("record" if torch.cuda.is_available() else "smoke")


def test_parameter_golf_data_path_means_its_data_root(tmp_path):
    args = train_args_from_env({"DATA_PATH": str(tmp_path / "data" / "datasets" / "fineweb10B_sp1024"),
                                "PRESET": "smoke", "SEED": "7"})
    assert args.data == tmp_path / "data" and args.preset == "smoke" and args.seed is None
    assert args.out == Path("runs") / "seed_7"
    assert train_args_from_env({"PRESET": "smoke", "OUT_DIR": "/x/y"}).out == Path("/x/y")


def test_default_out_dir_never_reuses_a_finished_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert default_out_dir("seed_1") == Path("runs/seed_1")
    (tmp_path / "runs" / "seed_1").mkdir(parents=True)
    assert default_out_dir("seed_1") == Path("runs/seed_1")  # empty: usable
    (tmp_path / "runs" / "seed_1" / "run.json").write_text("{}")
    assert default_out_dir("seed_1") == Path("runs/seed_1-2")


def test_errors_are_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PRESET", "smoke")
    monkeypatch.setenv("DATA_PATH", str(tmp_path / "missing"))
    assert main() == 2
    err = capsys.readouterr().err
    assert err.startswith("train_gpt.py: error: ") and err.count("\n") == 1
    monkeypatch.setenv("ITERATIONS", "lots")
    assert main() == 2 and "ITERATIONS" in capsys.readouterr().err
