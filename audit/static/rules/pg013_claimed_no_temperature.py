"""PG013 CALIB-2: README/submission.json say "no temperature", the code applies one."""

from __future__ import annotations

import ast
import re

from audit.static.evidence import claims, file_index, line_text, python_files
from audit.static.rule import Rule

_CLAIM = re.compile(r"\bno\s+(post[- ]?hoc\s+)?temp(erature)?\b|\bwithout\s+temp(erature)?\b"
                    r"|\btemp(erature)?\s*(scaling|calibration)?\s*[:=]?\s*(none|disabled|off)\b|\bT\s*=\s*1(\.0)?\b",
                    re.IGNORECASE)
_TEMP_NAME = re.compile(r"temp(erature)?$|^t_?scale$|^inference_t", re.IGNORECASE)


def _constant(node: ast.AST) -> float | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return float(node.value)
    return None


_GENERATION = re.compile(r"gen|sampl|calib|draft|self_?gen|ar_", re.IGNORECASE)


class ClaimedNoTemperature(Rule):
    """Temperature fitted on scored validation tokens is validation-outcome tuning (#1004's
    author after #991's closure: "T=0.98 on re-scored tokens was illegal"; cocohearts on #1991,
    #2098). A README or submission.json that says "no temperature" (or T=1) is checked against the
    code: a temperature variable set to a constant other than 1, or `inference_temp.fill_(0.98)`.
    A sampling temperature for self-generated calibration data (#1019: temp=0.8) is not an
    evaluation knob and is left alone.
    """

    code = "PG013"
    rule = "CALIB-2"
    severity = "error"
    confidence = "medium"
    references = ("#991", "#1004", "#1991", "#2098")
    summary = "claims no temperature scaling, the code applies a temperature other than 1"

    VALID = [{
        "train_gpt.py": "temperature = 1.0\nlogits = logits / temperature\n"
                        "def generate_calibration_data(model, n):\n    temperature = 0.8\n"
                        "    return sample(model, n, temperature)\n",
        "README.md": "Eval: score-first TTT, no temperature scaling.\n",
    }]
    INVALID = [{
        "train_gpt.py": "def rescore(model):\n    model.inference_temp.fill_(0.98)\n    return eval_val(model)\n",
        "README.md": "Eval: score-first TTT, no temperature calibration.\n",
    }]

    def check(self, ctx):
        claim = _CLAIM.search(claims(ctx).text or "")
        if claim is None:
            return
        for src in python_files(ctx):
            for node in file_index(src).of(ast.Assign, ast.AnnAssign, ast.Call):
                value, name = None, ""
                if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    names = [t.id if isinstance(t, ast.Name) else getattr(t, "attr", "") for t in targets]
                    name = next((n for n in names if _TEMP_NAME.search(n or "")), "")
                    value = _constant(node.value) if name else None
                elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in (
                        "fill_", "copy_") and node.args:
                    owner = node.func.value
                    name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
                    value = _constant(node.args[0]) if _TEMP_NAME.search(name or "") else None
                if value is not None and value not in (0.0, 1.0) and src.analysis.reachable(node) \
                        and not self._for_generation(src, node, name):
                    yield self.finding(src, node.lineno, f"the README says \"{claim.group(0)}\", but `{name}` is set "
                                       f"to {value} here", evidence=line_text(src, node.lineno))

    @staticmethod
    def _for_generation(src, node, name: str) -> bool:
        """The temperature of text generation (AR calibration data), not of scoring."""
        fn = src.analysis.enclosing_function(node)
        return bool(_GENERATION.search(name) or (fn is not None and _GENERATION.search(fn.name)))
