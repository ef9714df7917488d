"""PG104 ORACLE-1: the ground truth selects which score counts."""

from audit.static.flow_rule import FlowRule
from audit.static.rules import _legal


class OracleSelection(FlowRule):
    """No selection using the ground truth: the per-token loss must not be the minimum over passes,
    epochs or experts, nor "keep whichever scorer gave the lower loss". The rule flags a comparison
    (`if new_nll < old_nll`) or a `min`/`torch.minimum` whose operands are both computed with the
    target tokens, inside the function that accumulates the reported loss. Comparing two whole
    evaluations to pick a checkpoint is not this rule.

    Precedent: valerio-oai on #573, #596, #605, #611, #614, #659, #685 (all closed).
    """

    code = "PG104"
    rule = "ORACLE-1"
    severity = "error"
    confidence = "high"
    references = ("#659", "#573", "#614", "#611", "#605", "#596", "#685")
    summary = "the lower of several target-dependent losses is kept (oracle selection)"

    VALID = _legal.ALL
    INVALID = [
        _legal.HEADER + '''

def eval_val_ngram(args, model, val_tokens, base_bytes_lut, ngram):
    loss_sum = torch.zeros((), dtype=torch.float64)
    for w in range(0, val_tokens.numel() - args.seq_len, args.seq_len):
        x = val_tokens[w : w + args.seq_len].long()
        y = val_tokens[w + 1 : w + args.seq_len + 1].long()
        log_sm = F.log_softmax(model.forward_logits(x[None])[0].float(), dim=-1)
        scored_nll = -log_sm.gather(1, y[:, None]).squeeze(1)
        for t in range(y.numel()):
            ng_lp = ngram.logprob_target(x[: t + 1].tolist(), int(y[t]))
            if ng_lp is None:
                continue
            new_nll = -ng_lp
            old_nll = scored_nll[t].item()
            if new_nll < old_nll:
                scored_nll[t] = new_nll
        loss_sum += scored_nll.double().sum()
    return float(loss_sum)
''',
        _legal.HEADER + '''

def eval_two_experts(args, model_a, model_b, val_tokens):
    loss_sum = torch.zeros((), dtype=torch.float64)
    for w in range(0, val_tokens.numel() - args.seq_len, args.seq_len):
        x = val_tokens[w : w + args.seq_len].long()[None]
        y = val_tokens[w + 1 : w + args.seq_len + 1].long()[None]
        nll_a = F.cross_entropy(model_a.forward_logits(x)[0], y[0], reduction="none")
        nll_b = F.cross_entropy(model_b.forward_logits(x)[0], y[0], reduction="none")
        loss_sum += torch.minimum(nll_a, nll_b).double().sum()
    return float(loss_sum)
''',
    ]
