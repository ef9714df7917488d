"""The perturbation probe (C1): the same run, same seed, with the validation tokens from position k on changed.

Position k gets a different token and every later ordinary token is redrawn (document boundaries,
BOS and other control ids, stay where they are, so that document-aware batching is unchanged).
Under a causal, score-first
evaluation nothing the counted pass reports for positions < k may change, and the full
distribution predicted at k (and at the captured earlier positions) must be bit-for-bit the same
up to float noise: it is committed before x_k is seen. A change means the score of an earlier
position read a later token (non-causal attention, a target-keyed mix, a temperature or any state
fitted on tokens before they were scored).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from audit.finding import Finding
from audit.replay import ledger as L
from audit.replay.invariants import PROBE_ATOL, Locator, make_finding
from golf.data.shards import list_shards, read_shard, write_shard

PROBE_SEED = 20240520


def probe_position(stream: np.ndarray, vocab_ids: np.ndarray) -> int:
    """The first perturbed position: the first ordinary token a little past the middle of the stream."""
    k = max(2, int(stream.size * 0.55))
    while k < stream.size - 1 and not np.isin(stream[k], vocab_ids):
        k += 1
    return k


def capture_positions(k: int) -> tuple[int, ...]:
    return tuple(sorted({k, k - 1, k - 2, k // 2, k // 3}))


def write_perturbed(data_dir: Path, val_pattern: str, out_dir: Path, k: int, vocab_ids: np.ndarray) -> Path:
    """A copy of the data folder (train shards linked) whose val stream differs from position k on;
    `vocab_ids` are the ordinary (non-boundary) token ids."""
    out_dir.mkdir(parents=True, exist_ok=True)
    val_files = list_shards(val_pattern)
    for item in Path(data_dir).iterdir():
        if item in val_files or not item.is_file():
            continue
        target = out_dir / item.name
        if not target.exists():
            target.symlink_to(item.resolve())
    rng = np.random.default_rng(PROBE_SEED)
    offset = 0
    for path in val_files:
        tokens = np.asarray(read_shard(path)).astype(np.int64)
        lo = max(k - offset, 0)
        if lo < tokens.size:
            changed = tokens.copy()
            ordinary = lo + np.flatnonzero(np.isin(tokens[lo:], vocab_ids))
            changed[ordinary] = rng.choice(vocab_ids, size=ordinary.size)
            if offset <= k < offset + tokens.size:  # the flipped token itself must differ
                others = vocab_ids[vocab_ids != tokens[lo]]
                changed[lo] = others[rng.integers(others.size)]
            tokens = changed
        write_shard(out_dir / path.name, tokens)
        offset += tokens.size
    return out_dir


def compare(counted: L.Candidate, probe_ledgers: list[dict], base_ledgers: list[dict], k: int, locator: Locator) -> tuple[list[Finding], dict]:
    """C1 findings from the baseline's counted pass and the same pass in the probe run."""
    before = (base_ledgers[0].get("fingerprint"), probe_ledgers[0].get("fingerprint"))
    if None not in before and abs(before[0] - before[1]) > 1e-9 * max(1.0, abs(before[0])):
        # the two runs trained different models: nothing can be concluded about the evaluation
        return [], {"perturbed_from": k, "inconclusive": "the model differs between the runs before the first "
                    "score (training is not deterministic)", "fingerprints": list(before)}
    key = L.site_key(counted.pass_.site)
    probe_pass = next((p for p in L.split_passes(probe_ledgers) if L.site_key(p.site) == key and p.index == counted.pass_.index), None)
    where = locator.innermost(counted.pass_.site)
    result = {"perturbed_from": k, "compared_positions": 0, "changed_positions": 0, "distributions_compared": 0,
              "distributions_changed": 0}
    if probe_pass is None:
        return [make_finding("RP061", "C1", where, f"perturbing validation tokens from position {k} on changed the scoring "
                         "itself (the counted pass did not happen again)", confidence="medium")], result
    probe_variant = next(c for c in L.candidates(probe_pass, np.zeros(base_ledgers[0]["stream_len"])) if c.variant == counted.variant)
    n = base_ledgers[0]["stream_len"]
    base_loss, probe_loss = _dense(counted, n), _dense(probe_variant, n)
    earlier = np.flatnonzero(~np.isnan(base_loss[:k]))
    delta = np.abs(probe_loss[earlier] - base_loss[earlier])
    moved = ~(delta <= PROBE_ATOL * np.maximum(1.0, np.abs(base_loss[earlier])))  # NaN (not scored again) counts
    changed = earlier[moved].tolist()
    result["compared_positions"] = int(earlier.size)
    result["changed_positions"] = len(changed)
    dist_changed = []
    for p in capture_positions(k):
        a = _counted_distribution(base_ledgers, counted, p)
        b = _counted_distribution(probe_ledgers, probe_variant, p)
        if a is None or b is None:
            continue
        result["distributions_compared"] += 1
        finite = np.isfinite(a) & np.isfinite(b)
        if a.shape != b.shape or np.any(np.isfinite(a) != np.isfinite(b)) or np.max(np.abs(np.exp(a[finite]) - np.exp(b[finite])), initial=0.0) > PROBE_ATOL:
            dist_changed.append(p)
    result["distributions_changed"] = len(dist_changed)
    findings = []
    if changed or dist_changed:
        first = min(changed + dist_changed)
        delta = abs(probe_loss[first] - base_loss[first])
        findings.append(make_finding("RP060", "C1", where, f"changing the validation tokens from position {k} on changed the "
                                 f"counted scores of {len(changed)} earlier positions and {len(dist_changed)} predicted "
                                 f"distributions at or before {k} (first: position {first}); a score may depend only on "
                                 "the tokens before it", evidence=f"|Δ loss| at {first}: {delta:.3g}"))
    return findings, result


def _dense(cand: L.Candidate, n: int) -> np.ndarray:
    """The candidate's loss per position (NaN where it scored none)."""
    out = np.full(n, np.nan)
    out[cand.positions] = cand.losses
    return out


def _counted_distribution(ledgers: list[dict], cand: L.Candidate, position: int) -> np.ndarray | None:
    """The full log-distribution captured at `position` by the event that made its counted score."""
    hit = np.flatnonzero(cand.positions == position)
    if hit.size == 0:
        return None
    t = cand.times[hit[0]]
    for led in ledgers:
        seqs = {e["seq"] for e in led["scores"] if e["t"] == t}
        for seq, dist in led["dists"].get(position, []):
            if seq in seqs:
                return dist
    return None

