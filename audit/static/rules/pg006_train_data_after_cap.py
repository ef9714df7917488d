"""PG006 DATA-4: calibration on training data after the training loop, with no wallclock reserve."""

from __future__ import annotations

import ast
import re

from audit.static.evidence import (
    CALIB_NAME, file_index, touches_train_data, flat_statements, line_text, log_line, python_files, train_facts,
)
from audit.static.rule import Rule

_CONTAINERS = (ast.If, ast.With, ast.AsyncWith, ast.Try)
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_STOP_AT_CAP = re.compile(r"stopping_early[^\n]*train_time\s*[:=]\s*(?P<ms>\d+)\s*ms")
_LOG_CALIB = re.compile(r"gptq|hessian|calibrat", re.IGNORECASE)
_LOG_SELF_GENERATED = re.compile(r"autoregress|self[-_ ]?gen|generat|synthetic|AR data", re.IGNORECASE)
# `gptq:reserving 12s, effective=588000ms`; not `peak memory … reserved: 26418 MiB`
_LOG_RESERVE = re.compile(r"(gptq|calib|hessian)[^\n]*reserv|reserving\s+(?!0+(\.0+)?\s*s)\d", re.IGNORECASE)


def _reserve(ctx, src) -> str:
    """How the training cap leaves room for calibration, or "" when it does not."""
    hyper = getattr(ctx, "hyper", None)
    if hyper is not None:
        for name, param in list(hyper.params.items()):
            if "RESERVE" in param.env.upper() and name == param.env:
                value, source = hyper.resolve(name)
                if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
                    return f"{param.env}={value} ({source})"
        for name in ("MAX_WALLCLOCK_SECONDS", "max_wallclock_seconds"):
            value, source = hyper.resolve(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 599:
                return f"{name}={value} ({source})"
    for node in file_index(src).of(ast.AugAssign, ast.BinOp):  # a literal reserve subtracted from the cap
        if isinstance(node.op, ast.Sub):
            names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | {
                n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}
            if any("reserve" in n.lower() for n in names) and not (hyper and any(
                    "RESERVE" in p.env.upper() for p in hyper.params.values())):
                return f"cap reduced at line {src.line_map(node.lineno)[1]}"
    for name, text in ctx.logs.items():
        if (hit := log_line(text, _LOG_RESERVE)) is not None:
            return f"{name}: {hit[1]}"
    return ""


class TrainDataAfterCap(Rule):
    """No training-data access during evaluation: GPTQ/Hessian calibration that reads the training
    shards after the 600 s training loop has ended is training outside the budget (valerio on
    #569, #593, #606, #609, #615, #626, #639, #656, #674, #706, #1028). Legal records reserve the
    time inside the cap (`max_wallclock_ms -= gptq_reserve_seconds*1e3`, GPTQ_RESERVE_SECONDS=8 in
    #1868, MAX_WALLCLOCK_SECONDS=590 in #1004) or calibrate on self-generated data (#1019).

    Follows the calls after the training loop (a loop that runs backward() on training data) to
    a function that both reads training data and collects activations (forward hooks, Hessians),
    through helper functions and loader classes; then looks for a reserve in the configuration,
    the code and the logs. The logs alone also prove it: `stopping_early … train_time:600xxxms`
    followed by calibration lines, with no reserve printed.
    """

    code = "PG006"
    rule = "DATA-4"
    severity = "error"
    confidence = "high"
    references = ("#606", "#569", "#609", "#1028", "#1868", "#1004")
    summary = "calibration on training data after the training loop with no wallclock reserve"

    _SCRIPT = (
        "import os\n"
        "class H:\n"
        "    train_files = os.environ.get('TRAIN_FILES', 'data/fineweb_train_*.bin')\n"
        "    max_wallclock_seconds = float(os.environ.get('MAX_WALLCLOCK_SECONDS', {cap}))\n"
        "def gptq_calibrate(model, train_pattern, n=256):\n"
        "    hooks = [m.register_forward_hook(hook) for m in model.modules()]\n"
        "    stream = TokenStream(train_pattern)\n"
        "    for _ in range(n):\n        model(stream.take(2048))\n"
        "def main(args, model, opt):\n"
        "    train_loader = Loader(args.train_files)\n"
        "    while True:\n"
        "        loss = model(train_loader.next_batch())\n        loss.backward()\n        opt.step()\n"
        "        if elapsed() > args.max_wallclock_seconds:\n            break\n"
        "    hessians = gptq_calibrate(model, args.train_files)\n"
    )
    VALID = [
        _SCRIPT.format(cap="590.0"),
        # calibration inside the budget: before the loop ends is not after it
        "def main(model, opt, train_loader):\n    hessians = collect_hessians(model, train_loader)\n"
        "    while True:\n        loss = model(train_loader.next_batch())\n        loss.backward()\n"
        "        opt.step()\n",
    ]
    INVALID = [
        _SCRIPT.format(cap="600.0"),
        {"train_gpt.py": "print(1)\n",
         "train_seed1.log": "stopping_early: wallclock_cap train_time:600112ms step:7040/20000\n"
                            "gptq:calibrating with training data...\ngptq:calibrated 66 layers in 11.2s\n"},
    ]

    def check(self, ctx):
        found = False
        for src in python_files(ctx):
            for call, stmt in self._calibration_after_training(src):
                reserve = _reserve(ctx, src)
                if reserve:
                    break
                found = True
                yield self.finding(
                    src, call.lineno,
                    f"`{src.analysis.source_of(call.func, 60)}(…)` calibrates on training data after the training "
                    "loop, and the 600 s cap reserves no time for it: training-data access outside the training "
                    "budget", evidence=line_text(src, stmt.lineno), col=call.col_offset + 1)
                break
        if not found:
            yield from self._from_logs(ctx)

    def _calibration_after_training(self, src):
        facts = train_facts(src)
        if not facts.loops:
            return
        analysis = src.analysis
        bodies = [("<module>", analysis.tree.body)]
        for name in sorted(facts.training):
            for fn in analysis.functions.get(name, []):
                bodies.append((name, fn.body))
        for name, body in bodies:
            stmts = list(flat_statements(body))
            end = None
            for stmt in stmts:
                if isinstance(stmt, _CONTAINERS + _DEFS):
                    continue
                contains_loop = any(stmt.lineno <= l.lineno <= (stmt.end_lineno or stmt.lineno) for l in facts.loops)
                calls_training = any(isinstance(c, ast.Call) and self._callee(c) in facts.training - {name}
                                     for c in ast.walk(stmt))
                if contains_loop or calls_training:
                    end = stmt.end_lineno or stmt.lineno
                    break
            if end is None:
                continue
            for stmt in stmts:
                if isinstance(stmt, _CONTAINERS + _DEFS) or stmt.lineno <= end:
                    continue
                for call in (c for c in ast.walk(stmt) if isinstance(c, ast.Call)):
                    callee = self._callee(call)
                    reads_train = callee in facts.touching or any(touches_train_data(a) for a in call.args) or any(
                        touches_train_data(k.value) for k in call.keywords)
                    calibrates = callee in facts.calibrates or bool(CALIB_NAME.search(callee))
                    if reads_train and calibrates and callee not in facts.training and analysis.reachable(call):
                        yield call, stmt
                        return

    @staticmethod
    def _callee(call: ast.Call) -> str:
        f = call.func
        return f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")

    def _from_logs(self, ctx):
        for name, text in sorted(ctx.logs.items()):
            lines = text.splitlines()
            for i, line in enumerate(lines):
                m = _STOP_AT_CAP.search(line)
                if not m or int(m.group("ms")) < 599_000:
                    continue
                rest = lines[i + 1:]
                if any(_LOG_RESERVE.search(l) for l in lines) or any(_LOG_SELF_GENERATED.search(l) for l in rest):
                    break  # time reserved, or calibration on self-generated data (#1019), not training data
                calib = next(((j, l) for j, l in enumerate(rest, i + 2)
                              if _LOG_CALIB.search(l) and not _LOG_SELF_GENERATED.search(l)), None)
                if calib is not None:
                    yield self.finding(None, calib[0], f"training ran to the cap ({int(m.group('ms')):,} ms) and "
                                       "calibration followed it with no reserve printed: training-data access after "
                                       "the training budget", evidence=line.strip() + "\n" + calib[1].strip(),
                                       path=name, confidence="medium")
                break
