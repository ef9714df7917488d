"""`golf leaderboard` and audit/leaderboard.py on a synthetic git repository (tests/synthetic_repo.py):
entries, the chronological frontier, the record on a date, the cache, significance tables, errors."""

import datetime as dt
import json
from pathlib import Path

import pytest
import synthetic_repo

from audit.leaderboard import _write_cache, load_leaderboard, significance_table
from golf.cli import main

D = dt.date


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return synthetic_repo.build(tmp_path_factory.mktemp("golf") / "repo")


@pytest.fixture(autouse=True)
def _no_env_repo(monkeypatch, tmp_path):
    monkeypatch.delenv("GOLF_REPO", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_entries_frontier_and_merge_dates(repo):
    board = load_leaderboard(repo.git_dir)
    by_folder = {r.folder: r for r in board.entries}
    assert [r.folder for r in board.entries] == [
        "2026-03-24_Best", "2026-03-19_Better", "2026-03-21_Worse", "2026-03-17_Base"]  # best first
    assert "2026-03-23_Invalid" not in by_folder  # removed from main
    assert [r.folder for r in board.rows] == ["2026-03-17_Base", "2026-03-19_Better", "2026-03-24_Best"]
    better = by_folder["2026-03-19_Better"]
    assert better.date == D(2026, 3, 20)  # the merge into main, not the branch's commit of 2026-03-10
    assert better.claimed_date == D(2026, 3, 19) and better.pr == 5 and better.seeds == [1.1995, 1.2005, 1.2]
    worse = by_folder["2026-03-21_Worse"]
    assert worse.pr == 7 and worse.val_bpb == 1.21 and sorted(worse.seeds) == [1.2095, 1.21, 1.2105]  # from logs
    best = by_folder["2026-03-24_Best"]  # its record_support folder is folded in: 3 seeds and their mean
    assert best.pr == 9 and best.val_bpb == 1.149 and len(best.seeds) == 3
    assert best.supported_by == ["2026-03-26_Support"]
    assert by_folder["2026-03-17_Base"].seeds is None and by_folder["2026-03-17_Base"].pr is None


@pytest.mark.parametrize("day,expected", [
    (D(2026, 3, 18), None),  # nothing merged before the launch day
    (D(2026, 3, 19), "2026-03-17_Base"),
    (D(2026, 3, 20), "2026-03-17_Base"),  # merged on that day: not yet standing
    (D(2026, 3, 21), "2026-03-19_Better"),
    (D(2026, 3, 24), "2026-03-19_Better"),  # Worse did not beat it; Invalid is gone
    (D(2026, 3, 26), "2026-03-24_Best"),
    (D(2030, 1, 1), "2026-03-24_Best"),
])
def test_record_at(repo, day, expected):
    record = load_leaderboard(repo.git_dir).record_at(day)
    assert (record.folder if record else None) == expected


def test_record_at_by_submission_date(repo):
    """A submission is judged against the records submitted before it, merged or not on its day."""
    board = load_leaderboard(repo.git_dir)
    assert board.record_at(D(2026, 3, 20)).folder == "2026-03-17_Base"  # Better was merged on the 20th
    assert board.record_at(D(2026, 3, 20), by="submitted").folder == "2026-03-19_Better"  # submitted the 19th
    with pytest.raises(ValueError):
        board.record_at(D(2026, 3, 20), by="pushed")


def test_record_at_leaves_out_the_audited_folder(repo):
    board = load_leaderboard(repo.git_dir)
    assert board.record_at(D(2026, 4, 1), exclude=["2026-03-24_Best"]).folder == "2026-03-19_Better"


def test_cache_is_keyed_by_the_ref_sha(tmp_path):
    repo = synthetic_repo.build(tmp_path / "repo")
    first = load_leaderboard(repo.git_dir)
    assert not first.from_cache and Path(first.cache_path).parent == Path(repo.git_dir)
    assert first.sha in first.cache_path and Path(first.cache_path).is_file()
    second = load_leaderboard(repo.git_dir)
    assert second.from_cache and [r.to_dict() for r in second.entries] == [r.to_dict() for r in first.entries]
    repo.add_folder("2026-03-28_Newest", {"name": "Newest", "author": "n", "val_bpb": 1.10})
    repo.commit("Record: Newest (#12)", "2026-03-28T09:00:00+00:00")
    third = load_leaderboard(repo.git_dir)  # a new sha: rebuilt, not the stale cache
    assert not third.from_cache and third.entries[0].folder == "2026-03-28_Newest"


def test_cache_falls_back_when_the_first_place_is_not_writable(tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    written = _write_cache([blocked / "x.json", tmp_path / "cache" / "x.json"], {"version": 1})
    assert written == str(tmp_path / "cache" / "x.json") and json.loads(Path(written).read_text()) == {"version": 1}
    assert _write_cache([blocked / "x.json"], {}) == ""


def test_significance_table_against_a_row(repo):
    better = next(r for r in load_leaderboard(repo.git_dir).entries if r.folder == "2026-03-19_Better")
    table = significance_table([1.1800, 1.1810, 1.1805], better, on=D(2026, 3, 25))
    assert [t["rule"] for t in table] == ["readme", "frontier"]
    assert [t["applied"] for t in table] == [True, False]  # p < 0.25 practice only from 2026-04-28
    assert all(t["test"] == "welch" and t["passed"] for t in table)
    assert table[0]["delta"] == pytest.approx(0.0195, abs=1e-9) and table[0]["p"] < 0.01
    later = significance_table([1.1990, 1.2000, 1.1995], better, on=D(2026, 4, 28))
    assert [t["applied"] for t in later] == [True, True]
    assert [t["passed"] for t in later] == [False, True]  # better, but by less than 0.005 nats


def test_golf_leaderboard_text_and_json(repo, capsys):
    assert main(["leaderboard", "--repo", repo.git_dir]) == 0
    out = capsys.readouterr().out
    assert "4 records, 3 on the frontier" in out
    lines = [line for line in out.splitlines() if "Better" in line or "Worse" in line]
    assert lines[0].startswith("*") and lines[1].startswith(" ")  # Better on the frontier, Worse not
    assert main(["leaderboard", "--repo", repo.git_dir, "--at", "2026-03-22", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["record"]["folder"] == "2026-03-19_Better" and data["at"] == "2026-03-22"
    assert [r["folder"] for r in data["frontier"]] == ["2026-03-17_Base", "2026-03-19_Better"]


def test_golf_leaderboard_reads_golf_repo(repo, monkeypatch, capsys):
    monkeypatch.setenv("GOLF_REPO", repo.root.as_posix())  # a work tree works too: its .git is used
    assert main(["leaderboard", "--top", "1"]) == 0
    assert "Best" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["leaderboard"], "pass --repo GIT_DIR or set GOLF_REPO"),
    (["leaderboard", "--repo", "/no/such/clone"], "no such repository"),
    (["leaderboard", "--repo", "{tmp}"], "not a git repository"),
    (["leaderboard", "--repo", "{repo}", "--at", "2026-02-30"], "expected a date YYYY-MM-DD"),
    (["leaderboard", "--repo", "{repo}", "--ref", "no-such-branch"], "no ref 'no-such-branch'"),
    (["leaderboard", "--repo", "{repo}", "--track", "1h_big"], "no records/track_1h_big/ folders"),
])
def test_bad_input_is_one_line_and_exit_2(repo, tmp_path, capsys, argv, message):
    argv = [a.format(tmp=tmp_path, repo=repo.git_dir) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
