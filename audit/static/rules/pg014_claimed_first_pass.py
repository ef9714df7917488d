"""PG014 TTT-2: the reported score is a re-evaluation after test-time training, not the first pass."""

from __future__ import annotations

import re

from audit.static.evidence import claims, printed_by_code, run_logs, score_lines
from audit.static.rule import Rule

_CLAIM = re.compile(r"\bs_?0\b|score[- ]first|single[- ]pass|first[- ]pass|no re-?scor|legal\s+ttt", re.IGNORECASE)
_TTT = re.compile(r"ttt|test[-_ ]time", re.IGNORECASE)
MATCH = 1e-4  # the same score printed twice (`legal_ttt` and `legal_ttt_exact`) rounds to this


class ClaimedFirstPass(Rule):
    """The reported score must be s_0, the single left-to-right score-first pass; a re-evaluation
    of the already-adapted model (s_1) leaks the validation tokens (#1017 C4; valerio on #991:
    scoring s_0, training, re-scoring s_1 and reporting s_1; #642, #568, #684).

    Reads each log's evaluation lines in order: when the log's reported score differs from the
    first test-time-training result, the run reported an evaluation that came after the model
    had adapted to the validation set. An error when README/submission.json claim score-first,
    s_0 or single pass (the claim contradicts the log), a warning otherwise, and a warning when
    the submitted code cannot print the reported line (the log comes from other code).
    """

    code = "PG014"
    rule = "TTT-2"
    severity = "error"
    confidence = "medium"
    references = ("#991", "#642", "#568", "#684", "#1017")
    summary = "reported score is a re-evaluation after TTT (s_1), not the first pass (s_0)"

    _LOG = ("final_int6_sliding_window_exact val_loss:1.89807982 val_bpb:1.12415276\n"
            "ttt:done val_loss=1.887620 val_bpb=1.117958 elapsed=295.3s\n"
            "final_ttt_T1.0 val_loss:1.8876 val_bpb:1.1180 stride:64 eval_time:295812ms\n")
    VALID = [{
        "train_gpt.py": "print(1)\n",
        "README.md": "Legal score-first TTT, we report s_0.\n",
        "train_seed42.log": _LOG,
    }]
    INVALID = [{
        "train_gpt.py": "print(f'final_ttt_T{t} val_loss:{l:.4f} val_bpb:{b:.4f}')\n",
        "README.md": "Legal score-first TTT.\n",
        "train_seed42.log": _LOG + "final_ttt_T0.98 val_loss:1.8823 val_bpb:1.1148 eval_time:81943ms\n"
                                   "final_ttt_T0.98_exact val_loss:1.88226709 val_bpb:1.11478755\n",
    }]

    def check(self, ctx):
        claim = _CLAIM.search(claims(ctx).text or "")
        for name, run in run_logs(ctx).items():
            if run.val_bpb is None:
                continue
            lines = score_lines(ctx.logs[name])
            first_ttt = next((s for s in lines if _TTT.search(s.label)), None)
            if first_ttt is None:
                continue
            later = [s for s in lines if s.line > first_ttt.line and abs(s.bpb - run.val_bpb) <= MATCH]
            if abs(first_ttt.bpb - run.val_bpb) <= max(MATCH, 10 ** -_decimals(first_ttt.text)) or not later:
                continue
            reported = later[0]
            message = (f"the reported score {run.val_bpb} comes from `{reported.label}` (line {reported.line}), an "
                       f"evaluation after the first test-time-training pass `{first_ttt.label}` scored "
                       f"{first_ttt.bpb} (line {first_ttt.line}): a re-score of the adapted model (s_1)")
            severity = None if claim else "warning"
            if claim:
                message += f"; the README/submission claims \"{claim.group(0)}\""
            if not printed_by_code(ctx, reported.label):
                message += (f"; the submitted code never prints `{reported.label}`, so this log comes from other "
                            "code: re-run the submitted code")
                severity = "warning"
            yield self.finding(None, reported.line, message, evidence=first_ttt.text + "\n" + reported.text,
                               path=name, severity=severity)


def _decimals(text: str) -> int:
    m = re.search(r"val_bpb\s*[:=]\s*\d+\.(\d+)", text)
    return len(m.group(1)) if m else 4
