"""PG004 BUD-T: training over 600 s (logged), or a step-count stop that ignores the wallclock cap."""

from __future__ import annotations

import ast
import re

from audit.static.evidence import TRAIN_LIMIT_MS, file_index, log_line, python_files, run_logs
from audit.static.rule import Rule

# env vars that fix the number of training steps instead of the wallclock cap (#1908)
_STEP_OVERRIDE_ENV = re.compile(r"^(FORCE|FIXED)_?(STOP_)?STEPS?$|^(FORCE_)?STOP_(AFTER_)?STEPS?$|^FORCE_STOP_STEP$")
_STOP_TARGET = re.compile(r"stop.*step|step.*stop|max_steps?$", re.IGNORECASE)
_SELF_GENERATED = re.compile(r"autoregressive|self[-_ ]?gen", re.IGNORECASE)
_CALIB_TIME = re.compile(r"(gptq|hessian|calibrat)[^\n]*?\bin\s+(?P<s>\d+(?:\.\d+)?)\s*s\b", re.IGNORECASE)
# the cap is checked once per step, so runs end a fraction of a step past 600,000 ms (merged
# records log 600,128 ms); a second past it is not granularity any more (#1908: 601,153 ms)
OVERSHOOT_MS = 1_000
OTHER_CAP_FACTOR = 1.05


def _env_name(node: ast.AST) -> str | None:
    """ENV of os.environ.get("ENV", …) / os.getenv("ENV", …) / os.environ["ENV"] inside `node`."""
    if isinstance(node, ast.Constant):
        return None
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call) and sub.args and isinstance(sub.args[0], ast.Constant):
            func = sub.func
            if isinstance(func, ast.Attribute) and func.attr in ("get", "getenv") and isinstance(sub.args[0].value, str):
                return sub.args[0].value
        if isinstance(sub, ast.Subscript) and isinstance(sub.slice, ast.Constant) and isinstance(sub.slice.value, str):
            if ast.unparse(sub.value).endswith("environ"):
                return sub.slice.value
    return None


def _positive(value) -> bool:
    """A step override that is set: a positive number (or text of one), or a folded True."""
    if value is True:
        return True
    try:
        return float(value) > 0
    except (TypeError, ValueError):
        return False


def _target_names(node: ast.Assign | ast.AnnAssign) -> list[str]:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    names = []
    for t in targets:
        if isinstance(t, ast.Name):
            names.append(t.id)
        elif isinstance(t, ast.Attribute):
            names.append(t.attr)
    return names


class TrainingBudget(Rule):
    """Training must fit in 600 s of wallclock on 8xH100, counting every step that touches
    training data (README; valerio on #569/#609: "artifact creation is not untimed"), and no
    step-count override may replace the cap: #1908's `FORCE_STOP_STEP` fixed `stop_after_step`,
    so the cap check never ran and seed 42 trained for 601,153 ms (#1956).

    From the logs: the largest `train_time` more than a second over 600,000 ms (the cap is
    checked once per step, so merged records end at about 600,100 ms); a run stopped at the cap
    whose logged Hessian/calibration time on top passes 600 s is a warning (#1851 was merged with
    599,623 ms + 3.5 s; what is timed is disputed, rules.md D3). From the code: a stop step read from an
    environment variable such as FORCE_STOP_STEP; an error when the run's configuration (logs,
    README command) sets it, a note when it is present but off.
    """

    code = "PG004"
    rule = "BUD-T"
    severity = "error"
    confidence = "high"
    record_track_only = True
    references = ("#1908", "#1956", "#569", "#609", "#1868")
    summary = "training over 600 s, or a fixed step count that ignores the wallclock cap"

    VALID = [
        "stop_after_step = None\nfor step in range(20000):\n"
        "    if stop_after_step is None and elapsed() > cap:\n        stop_after_step = step\n",
        {"train_gpt.py": "print(1)\n",
         "train_seed1.log": "stopping_early: wallclock_cap train_time:588015ms step:5082/20000\n"
                            "GPTQ:collected 67 Hessians in 11.3s\n"},
        # the non-record track has no 10-minute budget
        {"train_gpt.py": "print(1)\n", "submission.json": '{"name": "x", "track": "non_record_16mb"}',
         "train_seed42.log": "4945/20000 train_loss: 2.81 train_time: 7601153ms step_avg: 121.5ms\n"},
    ]
    INVALID = [
        {"train_gpt.py": "import os\nforced = int(os.environ.get('FORCE_STOP_STEP', '0'))\n"
                         "stop_after_step = forced if forced > 0 else None\n",
         "README.md": "Run: `SEED=42 FORCE_STOP_STEP=4945 torchrun --nproc_per_node=8 train_gpt.py`\n"},
        {"train_gpt.py": "print(1)\n",
         "train_seed42.log": "4945/20000 train_loss: 2.81 train_time: 601153ms step_avg: 121.5ms\n"},
        {"train_gpt.py": "print(1)\n",
         "train_seed1.log": "stopping_early: wallclock_cap train_time:599900ms step:5082/20000\n"
                            "gptq:collected hessians in 9.8s\n"},
    ]

    def check(self, ctx):
        yield from self._logs(ctx)
        yield from self._step_overrides(ctx)

    def _logs(self, ctx):
        for name, run in run_logs(ctx).items():
            if run.train_seconds is None:
                continue
            train_ms = run.train_seconds * 1000.0
            if train_ms > TRAIN_LIMIT_MS + OVERSHOOT_MS:
                where = log_line(ctx.logs[name], re.compile(rf"train_time\s*[:=]\s*{int(round(train_ms))}\s*ms"))
                line, evidence = where or (0, f"train_time {train_ms:.0f} ms")
                message = f"the log shows training for {train_ms:,.0f} ms, over the {TRAIN_LIMIT_MS:,} ms cap"
                severity = None
                if run.stopped_early and train_ms > OTHER_CAP_FACTOR * TRAIN_LIMIT_MS:
                    # stopped by a cap far above 600 s: a run configured for other hardware, not a record run
                    message += (f"; the run stopped at its own wallclock cap of about {train_ms / 1000:,.0f} s, so it "
                                "was configured for other hardware: if it is one of the submitted runs, it breaks the cap")
                    severity = "warning"
                yield self.finding(None, line, message, evidence=evidence, path=name, severity=severity)
                continue
            calib = log_line(ctx.logs[name], _CALIB_TIME)
            if run.stopped_early and calib is not None:
                seconds = float(_CALIB_TIME.search(calib[1]).group("s"))
                if train_ms + seconds * 1000.0 > TRAIN_LIMIT_MS:
                    if _SELF_GENERATED.search(ctx.logs[name]):
                        what = (f"{seconds:.1f} s of calibration on self-generated data followed (whether that "
                                "counts as training time was never ruled, rules.md D3: #1019)")
                    else:
                        what = (f"{seconds:.1f} s of calibration on training data followed: "
                                f"{train_ms + seconds * 1000:,.0f} ms of training-data time, over 600 s (reserve it "
                                "from the cap, e.g. GPTQ_RESERVE_SECONDS)")
                    yield self.finding(None, calib[0], f"training stopped at the cap after {train_ms:,.0f} ms, "
                                       f"then {what}", evidence=calib[1], path=name, severity="warning")

    def _step_overrides(self, ctx):
        hyper = getattr(ctx, "hyper", None)
        for src in python_files(ctx):
            override_vars: dict[str, str] = {}  # variable -> ENV
            assigns = sorted(file_index(src).of(ast.Assign, ast.AnnAssign), key=lambda n: n.lineno)
            lines = src.text.split("\n")
            for node in assigns:
                if node.value is None:
                    continue
                text = " ".join(lines[node.lineno - 1:(node.end_lineno or node.lineno)])
                if "environ" not in text and "getenv" not in text and not (override_vars and _STOP_TARGET.search(text)):
                    continue  # reads no environment variable and sets no stop step
                env = _env_name(node.value)
                names = _target_names(node)
                stop_target = any(_STOP_TARGET.search(n) for n in names)
                if env and _STEP_OVERRIDE_ENV.match(env) and not stop_target:
                    for name in names:
                        override_vars[name] = env
                    continue
                hits = []
                if override_vars and stop_target:
                    used = {n.id for n in ast.walk(node.value) if isinstance(n, ast.Name)} | {
                        n.attr for n in ast.walk(node.value) if isinstance(n, ast.Attribute)}
                    hits = [override_vars[v] for v in used if v in override_vars]
                if env and _STEP_OVERRIDE_ENV.match(env):
                    hits.insert(0, env)
                if hits and stop_target:
                    env = hits[0]
                    value, source = hyper.resolve(env) if hyper is not None else (None, "")
                    if hyper is not None and env in hyper.env:  # show what the run command set
                        value = hyper.env[env][0]
                    active = _positive(value)
                    if active:
                        message = (f"`{names[0]}` is set from {env}={value} ({source}): training stops at a fixed "
                                   "step instead of the 600 s wallclock cap")
                        severity = None
                    else:
                        message = (f"`{names[0]}` can be set from {env} (a fixed step count that bypasses the "
                                   f"wallclock cap); off under the configuration ({env}={value!r}, {source or 'default'})")
                        severity = "note"
                    yield self.finding(src, node.lineno, message, evidence=src.analysis.source_of(node),
                                       severity=severity)
