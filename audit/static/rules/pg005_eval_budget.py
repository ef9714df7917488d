"""PG005 BUD-E: evaluation over 600 s (logged), or an eval timer that starts after a warm-up."""

from __future__ import annotations

import ast
import re

from audit.static.evidence import EVAL_LIMIT_S, file_index, line_text, log_line, python_files, run_logs
from audit.static.rule import Rule

_TIMERS = {"perf_counter", "time", "monotonic", "perf_counter_ns", "monotonic_ns"}
_EVAL_CALL = re.compile(r"eval|ttt|score", re.IGNORECASE)
_WARM = re.compile(r"warm", re.IGNORECASE)
_EVAL_CONTEXT = re.compile(r"ttt|val_|eval|lora|compile", re.IGNORECASE)
_TRAIN_DATA = re.compile(r"train_loader|train_files|next_batch|train_pattern")
_LOG_WARMUP = re.compile(r"warm.*?(?P<s>\d+(?:\.\d+)?)\s*s\b", re.IGNORECASE)
_EVAL_MS = re.compile(r"eval_time\s*[:=]\s*(\d+(?:\.\d+)?)\s*ms")


def _is_timer(node: ast.stmt) -> bool:
    if not isinstance(node, ast.Assign) or not isinstance(node.value, ast.Call):
        return False
    func = node.value.func
    return (isinstance(func, ast.Attribute) and func.attr in _TIMERS and isinstance(func.value, ast.Name)
            and func.value.id == "time")


def _calls(node: ast.AST) -> list[str]:
    out = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            f = sub.func
            out.append(f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", ""))
    return out


class EvalBudget(Rule):
    """Evaluation must fit in 600 s, separately from training (README; valerio on #529: 616 s;
    cocohearts on #1972: about 688 s, #2121).

    From the logs: `total_eval_time`, or one evaluation's `eval_time`, over 600 s is an error;
    several reported evaluations that only add up to more than 600 s are a warning (some may be
    diagnostics outside the evaluation phase). From the code: an evaluation timer (`t = time.perf_counter()` right before
    an eval/TTT call) started only after a warm-up loop of the same evaluation (compile warm-up of
    the TTT path, "beginning TTT eval timer" after "compile warmup done (122.0s)" in #1530): the
    warm-up is evaluation time the log does not count. Whether warm-up is timed was never ruled
    (rules.md D3; #1851 was merged with it), so this is a warning that adds the logged warm-up
    to the logged evaluation time.
    """

    code = "PG005"
    rule = "BUD-E"
    severity = "error"
    confidence = "medium"
    record_track_only = True
    references = ("#529", "#1972", "#2121", "#1530")
    summary = "evaluation over 600 s, or an eval timer started after the eval's warm-up"

    VALID = [
        "import time\ndef run_eval(model, val_tokens):\n    t0 = time.perf_counter()\n"
        "    for _ in range(3):\n        warm_step(model, val_tokens)\n"
        "    loss = eval_val_ttt(model, val_tokens)\n    return loss, time.perf_counter() - t0\n",
        {"train_gpt.py": "print(1)\n",
         "train_seed1.log": "final_ttt val_loss:2.79 val_bpb:1.0821 eval_time:293430ms\n"},
        # the non-record track has no 10-minute budget
        {"train_gpt.py": "print(1)\n", "submission.json": '{"name": "x", "track": "non-record-unlimited-compute-16mb"}',
         "train_seed1.log": "quantized_ttt val_loss:2.79 val_bpb:1.0821 eval_time:688000ms\n"},
    ]
    INVALID = [
        "import time\ndef run_eval(model, val_tokens):\n    for _ in range(3):  # compile warm-up\n"
        "        warm_step(model, val_tokens[:2048])\n    t0 = time.perf_counter()\n"
        "    loss = eval_val_ttt(model, val_tokens)\n    return loss, time.perf_counter() - t0\n",
        {"train_gpt.py": "print(1)\n",
         "train_seed1.log": "quantized_ttt val_loss:2.79 val_bpb:1.0821 eval_time:688000ms\n"},
    ]

    def check(self, ctx):
        logged_eval = {name: run.eval_seconds for name, run in run_logs(ctx).items() if run.eval_seconds is not None}
        for name, seconds in logged_eval.items():
            if seconds <= EVAL_LIMIT_S:
                continue
            text = ctx.logs[name]
            total = log_line(text, re.compile(r"total_eval_time"))
            longest = max((float(m.group(1)) for m in _EVAL_MS.finditer(text)), default=0.0) / 1000.0
            if total is not None or longest > EVAL_LIMIT_S:
                where = total or log_line(text, re.compile(rf"eval_time\s*[:=]\s*{int(longest * 1000)}\s*ms"))
                line, evidence = where or (0, f"eval {seconds:.1f} s")
                yield self.finding(None, line, f"the log shows {seconds if total else longest:.1f} s of evaluation, "
                                   f"over the {EVAL_LIMIT_S:.0f} s limit", evidence=evidence, path=name)
            else:
                lines = [l.strip() for l in text.splitlines() if _EVAL_MS.search(l)]
                yield self.finding(None, 0, f"the logged evaluations add up to {seconds:.1f} s, over the "
                                   f"{EVAL_LIMIT_S:.0f} s limit if they all run in the evaluation phase",
                                   evidence="\n".join(lines[-6:]), path=name, severity="warning")
        warm_logged = {}
        for name in logged_eval:
            lines = [l for l in ctx.logs[name].splitlines() if "warm" in l.lower()]
            hit = log_line("\n".join(lines), _LOG_WARMUP)
            if hit and _EVAL_CONTEXT.search(hit[1]) and not _TRAIN_DATA.search(hit[1]):
                warm_logged[name] = float(_LOG_WARMUP.search(hit[1]).group("s"))
        for src in python_files(ctx):
            yield from self._late_timers(src, logged_eval, warm_logged)

    def _late_timers(self, src, logged_eval, warm_logged):
        index = file_index(src)
        analysis = src.analysis
        loops = index.of(ast.For, ast.While)
        for timer in (s for s in index.of(ast.Assign) if _is_timer(s)):
            fn = analysis.enclosing_function(timer)
            if fn is None:
                continue
            parent = analysis.parents.get(timer)
            siblings = next((getattr(parent, f) for f in ("body", "orelse", "finalbody")
                             if timer in getattr(parent, f, [])), [])
            after = siblings[siblings.index(timer) + 1:] if timer in siblings else []
            if not any(_EVAL_CALL.search(name) for s in after[:3] for name in _calls(s)):
                continue  # not an evaluation timer
            ancestors = set(analysis.ancestors(timer))
            warm = [l for l in loops if l.lineno < timer.lineno and l not in ancestors
                    and analysis.enclosing_function(l) is fn and self._is_eval_warmup(src, l)]
            if not warm:
                continue
            loop = warm[-1]
            message = (f"the evaluation timer (line {src.line_map(timer.lineno)[1]}) starts after a warm-up loop "
                       f"(line {src.line_map(loop.lineno)[1]}) of the same evaluation: the warm-up is evaluation "
                       "time the logged eval time leaves out")
            over = [(n, s + warm_logged[n]) for n, s in logged_eval.items() if n in warm_logged]
            if over and max(t for _, t in over) > EVAL_LIMIT_S:
                name, total = max(over, key=lambda x: x[1])
                message += f"; {name}: logged evaluation plus warm-up = {total:.1f} s, over {EVAL_LIMIT_S:.0f} s"
            yield self.finding(src, timer.lineno, message, evidence=line_text(src, loop.lineno) + "\n…\n"
                               + line_text(src, timer.lineno), severity="warning")

    @staticmethod
    def _is_eval_warmup(src, loop) -> bool:
        text = "\n".join(line_text(src, n) for n in range(loop.lineno, (loop.end_lineno or loop.lineno) + 1))
        return bool(_WARM.search(text) and _EVAL_CONTEXT.search(text) and not _TRAIN_DATA.search(text))
