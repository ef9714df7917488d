"""Configuration and log authority (audit/static/config.py, audit/static/inert.py).

Each case audits a small submission written here: a C1 violation (the target hashed into a cache
key) behind a configuration the logs decide. The verdict must follow the logs of the seeds the
submission reports, skip source code a log echoes, read `disabled` as off, carry a logged value
into a callee through a keyword argument, and treat a zero-weight or never-active channel as inert.
"""

import json

from audit.static.engine import context_from_snippet, run_rules
from audit.static.rules.pg105_target_in_key import TargetInKey

CODE = '''
import os
import torch
import torch.nn.functional as F


class Hyperparameters:
    ngram_enabled = bool(int(os.environ.get("NGRAM_ENABLED", "1")))
    seq_len = int(os.environ.get("SEQ_LEN", "1024"))


def ngram_logprob(table, ctx_hash, tgt, alpha):
    key = (ctx_hash ^ (tgt * 1000003)) & 1048575
    return alpha * table[key]


def eval_val(args, model, table, val_tokens):
    loss_sum = torch.zeros((), dtype=torch.float64)
    for w in range(0, val_tokens.numel() - args.seq_len, args.seq_len):
        x = val_tokens[w : w + args.seq_len].long()[None]
        y = val_tokens[w + 1 : w + args.seq_len + 1].long()[None]
        nll = F.cross_entropy(model(x).flatten(0, 1), y.flatten(), reduction="none")
        if args.ngram_enabled:
            nll = nll - ngram_logprob(table, x * 31, y.flatten(), alpha=args.ngram_alpha)
        loss_sum += nll.double().sum()
    return float(loss_sum)
'''

COUNTED = '''
import torch
import torch.nn.functional as F


def eval_val(args, model, table, val_tokens, log0):
    loss_sum = torch.zeros((), dtype=torch.float64)
    hits = 0
    for w in range(0, val_tokens.numel() - args.seq_len, args.seq_len):
        x = val_tokens[w : w + args.seq_len].long()[None]
        y = val_tokens[w + 1 : w + args.seq_len + 1].long()[None]
        nll = F.cross_entropy(model(x).flatten(0, 1), y.flatten(), reduction="none")
        found = table.lookup(x)
        if found.any():
            hits += 1
            key = (x * 31 ^ (y * 1000003)) & 1048575
            nll = nll - table.weights[key]
        loss_sum += nll.double().sum()
    log0(f"ngram_hits:{hits}")
    return float(loss_sum)
'''


def _c1(files: dict) -> list[str]:
    """Severities of the C1 findings on the submission `files`."""
    ctx = context_from_snippet(files)
    return [f.severity for f in run_rules(ctx, [TargetInKey()])]


def _meta(seeds) -> str:
    return json.dumps({"name": "x", "author": "a", "val_bpb": 1.1, "seeds": seeds})


def test_the_reported_seeds_logs_decide_not_the_first_log_by_name():
    # an ablation log sorts first and ran without the cache; the reported seed ran with it
    files = {"train_gpt.py": CODE, "ablation_seed7.log": "ngram_enabled: False\n",
             "train_seed42.log": "ngram_enabled: True\n", "submission.json": _meta([42])}
    assert "error" in _c1(files)
    files["submission.json"] = _meta([7])
    assert _c1(files) == []


def test_reported_logs_that_disagree_are_named():
    files = {"train_gpt.py": CODE, "train_seed1.log": "ngram_enabled: True\n",
             "train_seed2.log": "ngram_enabled: False\n", "submission.json": _meta([1, 2])}
    ctx = context_from_snippet(files)
    assert "disagree on ngram_enabled" in ctx.config_source


def test_source_echoed_by_a_log_is_not_config():
    code = CODE + "\nDEFAULTS = dict(\n    ngram_enabled=False,\n)\n"
    log = "".join(line + "\n" for line in code.splitlines()) + "ngram_enabled: True\n"
    assert "error" in _c1({"train_gpt.py": code, "train_seed1.log": log})


def test_a_disabled_line_is_a_non_event():
    code = CODE.replace('"NGRAM_ENABLED", "1"', '"NGRAM_ENABLED", "0"')
    assert "error" in _c1({"train_gpt.py": code, "train_seed1.log": "ngram_enabled: True\n"})
    assert _c1({"train_gpt.py": code, "train_seed1.log": "ngram_enabled: disabled\n"}) == []


def test_a_keyword_argument_carries_the_logged_weight_into_the_callee():
    # alpha=args.ngram_alpha: the callee's `alpha * table[key]` is inert when the run logged 0
    assert _c1({"train_gpt.py": CODE, "train_seed1.log": "ngram_alpha: 0.0\n"}) == ["note"]
    assert _c1({"train_gpt.py": CODE, "train_seed1.log": "ngram_alpha: 0.3\n"}) == ["error"]


def test_a_channel_whose_logged_counter_is_zero_is_inert():
    assert _c1({"train_gpt.py": COUNTED, "train_seed1.log": "ngram_hits: 0\n"}) == ["note"]
    assert _c1({"train_gpt.py": COUNTED, "train_seed1.log": "ngram_hits: 5120\n"}) == ["error"]


def test_the_log_that_prints_the_reported_score_is_the_reported_run():
    # two runs of seed 42: the training log ran the cache; the re-evaluation whose score
    # submission.json reports ran without it
    meta = json.dumps({"name": "x", "author": "a", "val_bpb": 1.0712345,
                       "seed_results": {"42": {"val_bpb": 1.07123456}}})
    files = {"train_gpt.py": CODE, "train_seed42.log": "ngram_enabled: True\nfinal val_loss:2.1 val_bpb:1.09871234\n",
             "z_rerun/seed42.log": "ngram_enabled: False\nfinal val_loss:2.0 val_bpb:1.07123456\n",
             "submission.json": meta}
    assert _c1(files) == []
