"""`golf audit`: exit codes, the JSON contract, several paths in parallel, every output format,
and a static path that never imports torch."""

import json
import re
import subprocess
import sys
from pathlib import Path

from golf.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "static"
LEGAL = str(FIXTURES / "legal_record")
HELPER = str(FIXTURES / "helper_native")  # warnings only: PG002 CODE-1
ROOT = Path(__file__).resolve().parent.parent


def _no_reserve(tmp_path: Path) -> str:
    """The legal fixture with its GPTQ reserve removed: calibration after the cap (DATA-4)."""
    folder = tmp_path / "no_reserve"
    folder.mkdir()
    for f in (FIXTURES / "legal_record").iterdir():
        text = f.read_text()
        if f.name == "train_gpt.py":
            text = text.replace("    max_wallclock_ms -= args.gptq_reserve_seconds * 1000.0\n", "")
            text = text.replace('    gptq_reserve_seconds = float(os.environ.get("GPTQ_RESERVE_SECONDS", 10.0))\n', "")
        elif f.suffix == ".log":
            text = text.replace("  gptq_reserve_seconds: 10.0\n", "").replace("gptq:reserving 10s, effective=590000ms\n", "")
        (folder / f.name).write_text(text)
    return str(folder)


def test_one_path_json_is_the_design_object(capsys):
    assert main(["audit", LEGAL, "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert list(report)[:4] == ["verdict", "findings", "replay", "stats"]
    assert report["verdict"] == "PASS" and report["findings"] == []
    assert report["stats"]["entry"] == "train_gpt.py"
    assert report["stats"]["config_source"].startswith("log:")


def test_several_paths_in_parallel_and_exit_codes(tmp_path, capsys):
    bad = _no_reserve(tmp_path)
    assert main(["audit", LEGAL, HELPER, bad, "--format", "json", "--jobs", "2"]) == 1
    reports = json.loads(capsys.readouterr().out)["reports"]
    assert [r["path"] for r in reports] == [LEGAL, HELPER, bad]
    assert [r["verdict"] for r in reports] == ["PASS", "WARN", "FAIL"]
    data4 = [f for f in reports[2]["findings"] if f["code"] == "PG006"]
    assert data4 and data4[0]["rule"] == "DATA-4" and data4[0]["path"] == "train_gpt.py"
    source = (Path(bad) / "train_gpt.py").read_text().splitlines()
    assert "collect_hessians(model, TokenStream(args.train_files)" in source[data4[0]["line"] - 1]


def test_fail_on_warning(capsys):
    assert main(["audit", HELPER, "--format", "json"]) == 0
    assert main(["audit", HELPER, "--format", "json", "--fail-on", "warning"]) == 1
    capsys.readouterr()


def test_text_goes_to_stderr_and_output_file(tmp_path, capsys):
    assert main(["audit", HELPER]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "WARN" in captured.err and "PG002" in captured.err
    out = tmp_path / "report.md"
    assert main(["audit", HELPER, "--format", "markdown", "--output", str(out)]) == 0
    assert capsys.readouterr().out == ""
    markdown = out.read_text()
    assert "[PG002 CODE-1](docs/rules.md#pg002)" in markdown and "**Warnings (1)**" in markdown
    assert markdown.rstrip().endswith("verify the evidence.</sub>")


def test_sarif_2_1_0(tmp_path, capsys):
    assert main(["audit", _no_reserve(tmp_path), HELPER, "--format", "sarif", "--jobs", "1"]) == 1
    log = json.loads(capsys.readouterr().out)
    assert log["version"] == "2.1.0" and len(log["runs"]) == 2
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert {r["id"] for r in rules} >= {"PG006"}
    descriptor = next(r for r in rules if r["id"] == "PG006")
    assert descriptor["name"] == "DATA-4" and descriptor["helpUri"].endswith("docs/rules.md#pg006")
    assert descriptor["shortDescription"]["text"]
    result = next(r for r in run["results"] if r["ruleId"] == "PG006")
    assert result["level"] == "error" and rules[result["ruleIndex"]]["id"] == "PG006"
    location = result["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"].endswith("no_reserve/train_gpt.py")
    assert location["region"]["startLine"] > 0 and location["region"]["startColumn"] >= 1


def test_github_annotations(tmp_path, capsys):
    assert main(["audit", _no_reserve(tmp_path), "--format", "github"]) == 1
    lines = capsys.readouterr().out.splitlines()
    pattern = re.compile(r"^::(error|warning|notice) file=[^,]+,line=\d+,col=\d+,title=PG\d{3} [A-Z0-9-]+::.+$")
    assert lines and all(pattern.match(line) for line in lines if "line=" in line), lines
    assert any(line.startswith("::error ") and "title=PG006 DATA-4::" in line for line in lines)


def test_decoded_shim_findings_point_at_the_exec_line(tmp_path, capsys):
    import base64
    import lzma

    folder = tmp_path / "packed"
    folder.mkdir()
    code = "import requests\ndef fetch():\n    return requests.get('https://example.com/tok.model')\nfetch()\n"
    packed = base64.b85encode(lzma.compress(code.encode(), format=lzma.FORMAT_RAW,
                                            filters=[{"id": lzma.FILTER_LZMA2}])).decode()
    (folder / "train_gpt.py").write_text(
        f'import lzma as L,base64 as B\nexec(L.decompress(B.b85decode("{packed}"),format=L.FORMAT_RAW,'
        'filters=[{"id":L.FILTER_LZMA2}]))\n')
    assert main(["audit", str(folder / "train_gpt.py"), "--format", "json"]) == 1
    finding = next(f for f in json.loads(capsys.readouterr().out)["findings"] if f["code"] == "PG003")
    assert (finding["path"], finding["line"]) == ("train_gpt.py#decoded", 3)
    assert main(["audit", str(folder / "train_gpt.py"), "--format", "github"]) == 1
    line = next(l for l in capsys.readouterr().out.splitlines() if "PG003" in l)
    assert "train_gpt.py,line=2," in line and "line 3 of the code decoded from train_gpt.py" in line


def test_static_audit_never_imports_torch():
    script = ("import sys\nfrom golf.cli import main\n"
              f"rc = main(['audit', {LEGAL!r}, {HELPER!r}, '--format', 'json', '--jobs', '1'])\n"
              "assert 'torch' not in sys.modules, 'torch imported'\nsys.exit(rc)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["reports"][0]["verdict"] == "PASS"


def test_log_given_with_a_single_file(tmp_path, capsys):
    log = tmp_path / "seed9.log"
    log.write_text((FIXTURES / "legal_record" / "train_seed1.log").read_text()
                   .replace("train_time:590012ms", "train_time:601412ms"))
    entry = str(FIXTURES / "legal_record" / "train_gpt.py")
    assert main(["audit", entry, "--log", str(log), "--format", "github"]) == 1
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(f"::error file={log},line=8,") and "title=PG004 BUD-T::" in line
    assert main(["audit", entry, "--log", str(tmp_path / "missing.log")]) == 2
    assert "no such log file" in capsys.readouterr().err
