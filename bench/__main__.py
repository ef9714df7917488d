"""`make bench` / `python -m bench`: runs every benchmark in its own process, one after the other.

Each benchmark prints one JSON line; they are collected into bench/results/latest.jsonl together
with the machine they ran on. Benchmarks are never part of the test suite.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _machine() -> dict:
    return {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "load_avg_1m": os.getloadavg()[0]}


def _run(args: list[str]) -> dict:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"bench": args[0], "error": tail[0], "returncode": proc.returncode, "wall_s": round(wall, 2)}
    result = json.loads(lines[-1])
    result.setdefault("bench", args[0])
    return result


def main() -> int:
    quick = "--quick" in sys.argv[1:]
    flag = ["--quick"] if quick else []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "demo-data"
        subprocess.run([sys.executable, "-m", "golf", "data", "demo", "--out", str(data)], cwd=ROOT, check=True,
                       capture_output=True)
        runs = [
            ["bench.bench_static"],
            ["bench.bench_gptq", *flag],
            ["bench.bench_quant_bpb", "--data", str(data)],
            ["bench.bench_replay", *flag],
            ["bench.bench_ledger", *flag],
        ]
        results = []
        for args in runs:
            print(f"bench: {' '.join(args)}", file=sys.stderr, flush=True)
            result = _run(args)
            result["machine_info"] = _machine()
            results.append(result)
            print(json.dumps(result), flush=True)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in results))
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
