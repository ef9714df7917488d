"""The replay's invariants, checked on the merged ledgers: each broken one is a Finding with a rule id.

* the reported val_bpb (from the log) is reproduced by one scoring pass: its losses over the
  canonical byte count of the positions it scored (golf.eval.bpb's rule); a pass whose mean loss
  matches but whose bpb does not has a wrong byte count (BYTES-1); no pass at all: the scored
  probabilities are not the ones reaching the loss ops (C2);
* that counted pass scores every position once (DATA-3 for never: holes, or a tail longer than the
  2048-token truncation; TTT-2 for twice);
* no update (optimizer step, write to parameters, write keyed by positions) uses a position before
  it was first scored (TTT-1), and the counted score of a position is not a re-score made after an
  update trained on it: the s_1 of a re-evaluation after a score-first adaptation (TTT-2), or a
  pass scored after an adaptation phase of its own that trained on positions an earlier, unreported
  evaluation had scored (TTT-1: the reported pass did not score them first);
* every gathered distribution sums to 1 (C2); no network (NET-1); evaluation within its budget (BUD-E);
* what the CUDA emulation could not provide (RP070 syntax, RP071 a Triton kernel) is a warning: the
  run stopped there. The summary lists the shims applied (`emulation`) and the calls the ledger could
  not see into (`opaque_calls`: custom ops, interpreted Triton kernels).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

import numpy as np

from audit.finding import Finding
from audit.replay import ledger as L

TRUNCATION_TAIL = 2048  # the records keep floor((N-1)/2048)*2048 targets
PROBE_ATOL = 1e-5


@dataclass
class Reported:
    val_bpb: float | None
    val_loss: float | None
    label: str
    bpb_tol: float
    loss_tol: float


def reported_from_log(text: str) -> Reported:
    """The run's reported score (the last reported line, read by audit.runner.logs) and its precision."""
    from audit.runner.logs import parse_log

    summary = parse_log(text)
    bpb_tol = loss_tol = 0.0
    for key, attr in (("val_bpb", "bpb"), ("val_loss", "loss")):
        matches = re.findall(rf"{key}\s*[:=]\s*[-+]?\d+\.?(\d*)", text)
        decimals = len(matches[-1]) if matches else 8
        value = getattr(summary, key) or 0.0
        tol = max(1e-6 * abs(value), 0.5 * 10.0 ** (-decimals) * 1.001)
        if attr == "bpb":
            bpb_tol = tol
        else:
            loss_tol = tol
    return Reported(summary.val_bpb, summary.val_loss, summary.score_label, bpb_tol, loss_tol)


class Locator:
    """Turns a recorded site into (path relative to the submission folder, line)."""

    def __init__(self, folder: str, submission: str):
        self.folder = os.path.abspath(folder)
        self.submission = os.path.abspath(submission)

    def rel(self, path: str) -> str:
        path = os.path.abspath(path)
        return os.path.relpath(path, self.folder) if path.startswith(self.folder + os.sep) else path

    def own(self, site: tuple) -> tuple:
        """The frames of `site` in the submission file, or all of them when none is."""
        mine = tuple(fr for fr in site if os.path.abspath(fr[0]) == self.submission)
        return mine or site

    def innermost(self, site: tuple) -> tuple[str, int]:
        """The innermost frame in the submission (else the innermost frame at all)."""
        frames = self.own(site)
        if not frames:
            return self.rel(self.submission), 0
        f, line, _ = frames[-1]
        return self.rel(f), line

    def first_difference(self, site: tuple, other: tuple) -> tuple[str, int]:
        """The outermost submission frame of `site` that `other` does not share: the call that makes
        the difference between two scorings of the same position."""
        mine, theirs = self.own(site), self.own(other)
        for i, frame in enumerate(mine):
            if i >= len(theirs) or theirs[i][:2] != frame[:2]:
                return self.rel(frame[0]), frame[1]
        return self.innermost(site)


def make_finding(code, rule, where, message, evidence="", severity="error", confidence="high") -> Finding:
    return Finding(code=code, rule=rule, severity=severity, confidence=confidence, path=where[0], line=where[1], col=0,
                   message=message, evidence=evidence)


def _site_text(site: tuple) -> str:
    return " > ".join(f"{os.path.basename(f)}:{line} {fn}" for f, line, fn in site)


def choose_counted(cands: list[L.Candidate], rep: Reported) -> tuple[L.Candidate | None, str]:
    """The candidate that reproduces the reported score: ('match' | 'loss-only' | 'none')."""
    if rep.val_bpb is None:
        return (cands[-1] if cands else None), "none"
    matches = [c for c in cands if abs(c.val_bpb - rep.val_bpb) <= rep.bpb_tol]
    if matches:
        # the instances the run summed are the most faithful reading; then the closest
        return min(matches, key=lambda c: (L.VARIANT_ORDER.index(c.variant), abs(c.val_bpb - rep.val_bpb), -c.pass_.start_time)), "match"
    if rep.val_loss is not None:
        loss_matches = [c for c in cands if abs(c.val_loss - rep.val_loss) <= rep.loss_tol]
        if loss_matches:
            return min(loss_matches, key=lambda c: abs(c.val_loss - rep.val_loss)), "loss-only"
    if not cands:
        return None, "none"
    return min(cands, key=lambda c: abs(c.val_bpb - rep.val_bpb)), "none"


def analyze(ledgers: list[dict], log_text: str, stream: np.ndarray, luts, locator: Locator,
            eval_budget_s: float = 600.0) -> tuple[list[Finding], dict, L.Candidate | None]:
    """Findings and the ledger summary of one replay; also the counted candidate (for the probes)."""
    findings: list[Finding] = []
    n = int(ledgers[0]["stream_len"])
    byte_counts = L.canonical_byte_counts(stream, luts)
    passes = L.split_passes(ledgers)
    cands = [c for p in passes for c in L.candidates(p, byte_counts)]
    rep = reported_from_log(log_text)
    counted, how = choose_counted(cands, rep)
    discarded = L.discarded_updates(ledgers, counted.pass_ if counted is not None else None)
    order_ledgers = L.without_updates(ledgers, discarded) if discarded else ledgers
    first_update_t = L.first_times(order_ledgers, "first_update_seq")
    first_grad_update_t = L.first_times(order_ledgers, "first_grad_update_seq")
    scored_any = np.zeros(n, dtype=bool)
    for led in ledgers:
        for e in led["scores"]:
            scored_any[e["positions"]] = True
    mutations = [m for led in ledgers for m in led["mutations"]]
    summary: dict = {
        "positions_in_stream": max(n - 1, 0),
        "positions_scored": int(scored_any[1:].sum()),
        "scoring_events": sum(len(led["scores"]) for led in ledgers),
        "passes": [_pass_summary(p, cands) for p in passes],
        "updates": len(mutations),
        "updates_using_val": sum(1 for m in mutations if m["fed"]),
        "reported_val_bpb": rep.val_bpb,
        "reported_val_loss": rep.val_loss,
        "reported_label": rep.label,
        "network_attempts": sum(len(led["network"]) for led in ledgers),
        "untraced_loss_calls": sum(led["untraced_losses"] for led in ledgers),
        "untraced_loss_targets": sum(led.get("untraced_targets", 0) for led in ledgers),
        "validation_loads": [list(t) for t in ledgers[0]["tagged"][:20]],  # (first position, tokens, constructor)
        "ranks": len(ledgers),
        "emulation": _merged_emulation(ledgers),
        "opaque_calls": _merged_opaque(ledgers),
        "ledger_bytes_per_position": max(led.get("bytes_per_position", 0.0) for led in ledgers),
    }
    if rep.val_bpb is None:
        findings.append(make_finding("RP006", "TTT-2", locator.innermost(()), "the log reports no val_bpb: the counted pass "
                                 "cannot be identified, the last scoring pass is used", severity="warning", confidence="low"))
    if counted is None:
        why = ("no tensor built by the run equals a stretch of the validation shards" if not ledgers[0]["tagged"]
               else "no loss op received targets traced to the validation stream")
        findings.append(make_finding("RP001", "DATA-3", locator.innermost(()), f"the replay could not follow the evaluation: {why}",
                                 severity="warning", confidence="medium",
                                 evidence=f"untraced loss calls: {summary['untraced_loss_calls']}"))
    else:
        counted_findings = _check_counted(counted, how, rep, n, ledgers, locator, summary)
        if how == "none":  # coverage of a pass only guessed at is no verdict: RP014 says what is wrong
            counted_findings = [_as_guess(f) if f.code in ("RP010", "RP011", "RP012") else f for f in counted_findings]
        findings += counted_findings
        first_score_t = _first_evaluation_scores(ledgers, counted, n)
        delimiter = np.asarray(luts.is_boundary, dtype=bool)[np.clip(stream, 0, len(luts.is_boundary) - 1)]
        findings += _check_order(counted, order_ledgers, passes, first_score_t, first_update_t, first_grad_update_t, locator,
                                 summary, delimiter)
        findings += _check_discarded(ledgers, discarded, counted, locator, summary)
    findings += _check_gaps(ledgers, locator)
    findings += _check_c2(ledgers, locator)
    findings += _check_network(ledgers, locator)
    findings += _check_budget(counted, ledgers, eval_budget_s, locator, summary)
    summary["timeline"] = timeline(ledgers)
    return findings, summary, counted


def _pass_summary(p: L.Pass, cands: list[L.Candidate]) -> dict:
    mine = [c for c in cands if c.pass_ is p]
    base = mine[0]
    return {"site": _site_text(p.site), "index": p.index, "events": len(p.events), "instances": base.tokens,
            "positions": [int(base.positions.min()), int(base.positions.max())],
            "val_bpb": {c.variant: c.val_bpb for c in mine}, "val_loss": {c.variant: c.val_loss for c in mine}}


def _check_counted(c: L.Candidate, how: str, rep: Reported, n: int, ledgers, locator, summary) -> list[Finding]:
    out = []
    where = locator.innermost(c.pass_.site)
    uniq, counts = np.unique(c.positions, return_counts=True)
    expected = np.arange(1, n)
    never = np.setdiff1d(expected, uniq, assume_unique=True)
    twice = uniq[counts > 1]
    summary.update({
        "counted_pass": {"site": _site_text(c.pass_.site), "index": c.pass_.index, "variant": c.variant, "match": how},
        "positions_counted": int(uniq.size),
        "counted_exactly_once": int((counts == 1).sum()),
        "counted_twice_or_more": int(twice.size),
        "never_counted": int(never.size),
        "recomputed_val_bpb": c.val_bpb,
        "recomputed_val_loss": c.val_loss,
        "canonical_bytes": c.n_bytes,
    })
    summary["truncated_tail"] = summary["unscored_head"] = 0
    if never.size:
        # within one evaluation window of either end: the records' truncation of the tail, and sliding
        # windows that score only the last `stride` targets of the first window too
        head, tail = never[never < uniq.min()], never[never > uniq.max()]
        edges_only = head.size + tail.size == never.size and max(head.size, tail.size) < TRUNCATION_TAIL
        if edges_only:
            summary["truncated_tail"], summary["unscored_head"] = int(tail.size), int(head.size)
            if head.size:
                out.append(make_finding("RP010", "DATA-3", where, f"the first {head.size} validation positions are never "
                                    "scored (the first window scores only its last targets): under one window of the "
                                    f"{n - 1}, but the full validation set should be scored", severity="warning",
                                    confidence="high", evidence=f"counted pass: {_site_text(c.pass_.site)}"))
        else:
            interior = never[(never > uniq.min()) & (never < uniq.max())]
            first = int(interior.min()) if interior.size else int(never.min())
            out.append(make_finding("RP010", "DATA-3", where, f"the reported sum leaves {never.size} of {n - 1} validation "
                                f"positions unscored (first at position {first}); the full validation set must be scored",
                                evidence=f"counted pass: {_site_text(c.pass_.site)}"))
    if twice.size and c.variant in ("all", "reduced"):
        dup_event = _first_duplicate_event(c)
        tail = twice.min() >= n - 1 - TRUNCATION_TAIL
        out.append(make_finding("RP011", "TTT-2", locator.innermost(dup_event["site"]) if dup_event else where,
                            f"{twice.size} positions are counted more than once in the reported sum (first at position "
                            f"{int(twice.min())})" + (" — only in the final window tail, as in the records' sliding eval" if tail else ""),
                            severity="warning" if tail else "error", confidence="high"))
    if twice.size and c.variant == "last":
        out.append(make_finding("RP012", "TTT-2", where, f"the reported sum keeps the last of several scores of {twice.size} "
                            "positions (scored every epoch, last kept): only the first score may count"))
    if how == "loss-only":
        implied = c.nll / (math.log(2.0) * rep.val_bpb) if rep.val_bpb else math.nan
        lookups = [lk for led in ledgers for lk in led["lookups"]]
        at = locator.innermost(lookups[0]["site"]) if lookups else where
        out.append(make_finding("RP013", "BYTES-1", at, f"reported val_bpb {rep.val_bpb} implies {implied:.1f} bytes; the canonical "
                            f"byte count of the scored positions is {c.n_bytes:.0f} (its val_loss {c.val_loss:.8f} matches the log)",
                            evidence=f"canonical val_bpb {c.val_bpb:.8f}"))
    elif how == "none" and rep.val_bpb is not None:
        untraced = summary["untraced_loss_calls"]
        # untraced loss calls could be the reported evaluation only if their targets could cover the set
        could_be_the_pass = summary["untraced_loss_targets"] >= (n - 1) // 2
        out.append(make_finding("RP014", "C2", where, f"reported val_bpb {rep.val_bpb} is not reproduced by any traced scoring "
                            f"pass (closest {c.val_bpb:.8f}): the counted probabilities are not those of the distributions "
                            "reaching the loss ops", severity="warning" if could_be_the_pass else "error",
                            confidence="low" if could_be_the_pass else "medium",
                            evidence=f"untraced loss calls: {untraced} ({summary['untraced_loss_targets']} targets, "
                                     f"{n - 1} validation positions)"))
    return out


def _as_guess(f: Finding) -> Finding:
    """A finding about the pass closest to the reported score, when none reproduces it."""
    return make_finding(f.code, f.rule, (f.path, f.line), f.message + " (in the pass closest to the reported score; "
                        "none reproduces it)", evidence=f.evidence, severity="warning", confidence="low")


def _first_duplicate_event(c: L.Candidate) -> dict | None:
    seen: set[int] = set()
    for _, event in sorted(c.pass_.events, key=lambda re: re[1]["t"]):
        pos = set(event["positions"].tolist())
        if pos & seen:
            return event
        seen |= pos
    return None


def _first_evaluation_scores(ledgers, counted: L.Candidate, n: int) -> np.ndarray:
    """Per position, when it was first scored by an evaluation: a loss computed without autograd, or
    one of the reported pass. (A training loss scores its tokens too, but only to train on them.)"""
    first = np.full(n, np.inf)
    for led in ledgers:
        for e in led["scores"]:
            if not e["grad"]:
                np.minimum.at(first, e["positions"], e["t"])
    np.minimum.at(first, counted.positions, counted.times)
    return first


def _check_order(c, ledgers, passes, first_score_t, first_update_t, first_grad_update_t, locator, summary,
                 delimiter: np.ndarray) -> list[Finding]:
    """TTT-1 and TTT-2 on the order of scores and updates. A position holding a delimiter (a
    document's BOS: a boundary token) is left out: per-document TTT reads it as the first input of
    the next document before the previous one's last target is scored, and it carries no content."""
    out = []
    n = first_score_t.size
    early = np.flatnonzero(np.isfinite(first_update_t) & (first_update_t < first_score_t) & ~delimiter)
    early = early[early >= 1]
    violation = None
    if early.size:
        first = int(early[np.argmin(first_update_t[early])])
        m = L.mutation_at(ledgers, first, "first_update_seq")
        where = locator.innermost(m["site"]) if m else locator.innermost(())
        what = "an optimizer step" if m and m["kind"] == "optimizer" else "a direct write (calibration, cache or parameter)"
        out.append(make_finding("RP020", "TTT-1", where, f"{what} used {early.size} validation positions before they were "
                            f"scored (first: position {first}); only already-scored tokens may influence the model",
                            evidence=f"{m['kind']} {m['name']} at {_site_text(m['site'])}" if m else ""))
        violation = {"position": first, "update": (m or {}).get("name"), "kind": (m or {}).get("kind"), "line": where[1], "rule": "TTT-1"}
    counted_t = np.full(n, -np.inf)
    np.maximum.at(counted_t, c.positions, c.times)
    rescored = (counted_t > first_grad_update_t) & (first_score_t < first_grad_update_t) & ~delimiter
    rescored[0] = False
    interleaved = _updated_during_a_scoring_pass(passes, c.pass_, first_grad_update_t)
    # s_1 after a score-first adaptation (the update came while a pass was still scoring, after it
    # scored the position): TTT-2. An adaptation phase of its own, after the evaluation that scored
    # the position had ended, trained on validation tokens the reported pass had not scored: TTT-1.
    for rule, positions in (("TTT-2", np.flatnonzero(rescored & interleaved)), ("TTT-1", np.flatnonzero(rescored & ~interleaved))):
        if not positions.size:
            continue
        p = int(positions[0])
        first_event = _score_event_at(ledgers, p, first_score_t[p])
        counted_event = _score_event_at(ledgers, p, counted_t[p])
        where = locator.first_difference(counted_event["site"], first_event["site"]) if first_event and counted_event else locator.innermost(c.pass_.site)
        evidence = (f"first scored at {_site_text(first_event['site']) if first_event else '?'}; counted at "
                    f"{_site_text(counted_event['site']) if counted_event else '?'}")
        if rule == "TTT-2":
            out.append(make_finding("RP021", "TTT-2", where, f"the reported sum re-scores {positions.size} positions after the "
                                    f"model was updated on them (first: position {p}): it reports s_1, not the first-pass s_0",
                                    evidence=evidence))
        else:
            m = L.mutation_at(ledgers, p, "first_grad_update_seq")
            where = locator.innermost(m["site"]) if m else where
            out.append(make_finding("RP022", "TTT-1", where, f"a separate adaptation phase trained on {positions.size} validation "
                                    f"positions before the reported pass scored them (first: position {p}); an earlier "
                                    "evaluation had scored them, but its score is not the one reported: only tokens already "
                                    "scored by the reported pass may train the model",
                                    evidence=(f"{m['kind']} {m['name']} at {_site_text(m['site'])}; " if m else "") + evidence))
        violation = violation or {"position": p, "update": "re-score after update" if rule == "TTT-2" else "adaptation phase",
                                  "line": where[1], "rule": rule}
    summary["first_violation"] = violation
    return out


def _check_discarded(ledgers, discarded: set, counted: L.Candidate, locator, summary) -> list[Finding]:
    """TTT-4 (disputed): optimizer steps on validation positions the reported pass had not scored yet,
    whose updates nothing read again (a compile warm-up on a throw-away adapter). Not TTT-1: no score
    depends on them."""
    steps = [m for led in ledgers for m in led["mutations"] if (led["rank"], m["seq"]) in discarded]
    counted_first = np.full(ledgers[0]["stream_len"], np.inf)
    np.minimum.at(counted_first, counted.positions, counted.times)
    counted_first[0] = -np.inf  # position 0 is never a target
    unscored = np.zeros(counted_first.size, dtype=bool)
    early = []
    for m in steps:
        for a, b in m.get("fed_ranges", ()):
            before = counted_first[a:b] > m["t"]
            unscored[a:b] |= before
            if before.any():
                early.append(m)
    summary["discarded_updates"] = len(steps)
    if not early:
        return []
    first = min(early, key=lambda m: m["t"])
    return [make_finding("RP023", "TTT-4", locator.innermost(first["site"]), f"{len(steps)} optimizer step(s) trained on "
                         f"{int(unscored.sum())} validation positions before they were scored, on parameters that no "
                         "later score or update read (a warm-up on a throw-away copy): no reported score depends on "
                         "them, but backward passes on unscored validation tokens are disputed (merged in #1530 and "
                         "#1610, objected to by reviewers)", severity="warning", confidence="high",
                         evidence=f"{first['kind']} {first['name']} at {_site_text(first['site'])}")]


def _updated_during_a_scoring_pass(passes: list[L.Pass], counted: L.Pass, first_update_t: np.ndarray) -> np.ndarray:
    """Per position: its first update came while a pass that had already scored it was still scoring,
    the shape of a score-first adaptation. The pass is an evaluation (scores without autograd) or the
    reported pass itself (a per-document TTT scores and trains on one loss); a training loop's own
    losses are not scores."""
    out = np.zeros(first_update_t.size, dtype=bool)
    for p in passes:
        end = p.end_time
        for _, e in p.events:
            if e["grad"] and p is not counted:
                continue
            pos = e["positions"]
            update_t = first_update_t[pos]
            out[pos[(e["t"] < update_t) & (update_t < end)]] = True
    return out


def _score_event_at(ledgers, position: int, t: float) -> dict | None:
    for led in ledgers:
        for e in led["scores"]:
            if e["t"] == t and position in e["positions"]:
                return e
    return None


def _merged_emulation(ledgers) -> list[str]:
    """The shims any rank applied, in the order first applied."""
    return list(dict.fromkeys(name for led in ledgers for name in led.get("emulation", [])))


def _merged_opaque(ledgers) -> dict:
    """Per opaque call (custom op, Triton kernel): calls, calls given validation tokens, positions."""
    out: dict = {}
    for led in ledgers:
        for label, entry in led.get("opaque", {}).items():
            merged = out.setdefault(label, dict(calls=0, val_calls=0, val_positions=0))
            for key in merged:
                merged[key] += entry[key]
    return out


def _check_gaps(ledgers, locator) -> list[Finding]:
    """What the emulation could not provide (the run stopped there): a warning, not a verdict."""
    out = []
    gaps = {(g["code"], g["detail"]): g for led in ledgers for g in led.get("gaps", [])}
    for (code, detail), _ in gaps.items():
        message = f"the replay could not run the submission to its end on this machine: {detail}"
        out.append(make_finding(code, "FMT-1", locator.innermost(()), message, severity="warning", confidence="low"))
    return out


def _check_c2(ledgers, locator) -> list[Finding]:
    bad = [b for led in ledgers for b in led["c2"]]
    if not bad:
        return []
    first = min(bad, key=lambda b: b["seq"])
    rows = sum(b["rows"] for b in bad)
    return [make_finding("RP030", "C2", locator.innermost(first["site"]), f"{rows} scored distributions do not sum to 1 over the "
                     f"vocabulary (e.g. {first['worst']:.4f}): the score must come from a normalised distribution",
                     evidence=f"{first['space']} read at the target, {first['rows']} of {first['of']} rows off")]


def _check_network(ledgers, locator) -> list[Finding]:
    attempts = [a for led in ledgers for a in led["network"]]
    if not attempts:
        return []
    a = attempts[0]
    return [make_finding("RP040", "NET-1", locator.innermost(a["site"]), f"{len(attempts)} network access attempt(s), first to "
                     f"{a['host']}:{a['port']}; evaluation must be self-contained")]


def _check_budget(c, ledgers, budget_s, locator, summary) -> list[Finding]:
    scores = [e for led in ledgers for e in led["scores"]]
    if not scores:
        summary["eval_seconds"] = None
        return []
    end = c.pass_.end_time if c is not None else max(e["t"] for e in scores)
    first_score = min(e["t"] for e in scores)
    # evaluation starts after the last optimizer step on training data only (no validation position)
    train_steps = [m["t"] for led in ledgers for m in led["mutations"] if m["kind"] == "optimizer" and not m["fed"] and m["t"] <= end]
    start = max(train_steps) if train_steps else first_score
    seconds = end - start
    summary["eval_seconds"] = seconds
    if seconds > budget_s:
        return [make_finding("RP050", "BUD-E", locator.innermost(c.pass_.site if c else ()), f"evaluation took {seconds:.1f} s "
                         f"in the replay, over the {budget_s:.0f} s budget")]
    return []


def timeline(ledgers: list[dict], limit: int = 2000) -> list[dict]:
    """Scores and updates in time order, consecutive events of one kind and site merged."""
    events = [("score", led["rank"], e) for led in ledgers for e in led["scores"]]
    events += [("update", led["rank"], m) for led in ledgers for m in led["mutations"] if m["fed"]]
    events.sort(key=lambda x: x[2]["t"])
    out: list[dict] = []
    for kind, rank, e in events:
        line = e["site"][-1][1] if e["site"] else 0
        lo, hi = (int(e["positions"].min()), int(e["positions"].max())) if kind == "score" else (e["fed_min"], e["fed_max"])
        count = int(e["positions"].size) if kind == "score" else int(e["fed"])
        last = out[-1] if out else None
        if last and last["kind"] == kind and last["line"] == line and last["rank"] == rank and kind == "score":
            last["positions"] = [min(last["positions"][0], lo), max(last["positions"][1], hi)]
            last["count"] += count
            last["events"] += 1
            continue
        if len(out) >= limit:
            break
        entry = {"kind": kind, "rank": rank, "line": line, "positions": [lo, hi], "count": count, "events": 1}
        if kind == "score":
            entry["grad"] = bool(e["grad"])
        else:
            entry["update"] = f"{e['kind']}:{e['name']}"
            entry["unscored"] = e["unscored"]
        out.append(entry)
    return out
