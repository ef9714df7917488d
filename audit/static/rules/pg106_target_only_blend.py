"""PG106 C2: a blend formed only at the target's probability, not over the whole vocabulary."""

from audit.static.flow_rule import FlowRule
from audit.static.rules import _legal
from audit.static.rules.pg105_target_in_key import BACKOFF_MIXER, TargetInKey


class TargetOnlyBlend(FlowRule):
    """The scored probability must come from a full normalised distribution over the token alphabet,
    committed before x_t (C2 of Issue #1017). The rule marks values looked up *at the target* (a
    `gather`/subscript/`.get` with the target tensor, or a helper returning one) and flags an
    arithmetic blend of two such values from different lookups, e.g. `(1 - a) * neural_p[y] +
    a * ngram_p[y]` or a log-space mix of a model log-prob and an n-gram log-prob of the target: the
    mixture is never formed for the other tokens, so it need not sum to one. Mixing the full
    distributions first and then gathering the target is legal.

    Precedent: valerio-oai on #779, #688, #727 ("do not renormalize correctly"), #1026, #1185; #886
    (sum of the blended "distribution" ≈ 277); cocohearts on #1991, #2076, #2080, #2083.
    """

    code = "PG106"
    rule = "C2"
    severity = "error"
    confidence = "medium"
    references = ("#779", "#659", "#886", "#1147", "#1991", "#2080", "Issue #1017")
    summary = "probabilities looked up at the target are blended (not a normalised distribution)"

    VALID = TargetInKey.VALID
    INVALID = [
        BACKOFF_MIXER,
        # the model's log-probs of the targets reach the blend through an output parameter
        _legal.HEADER + '''


def fill_model_logprobs(model, x, y, out):
    logp = F.log_softmax(model.forward_logits(x[None])[0].float(), -1)
    out[: y.numel()] = logp.gather(-1, y[:, None])[:, 0]


def eval_store_blend(args, model, ngram, val_tokens):
    buf = torch.zeros(args.seq_len)
    loss_sum = 0.0
    for w in range(0, val_tokens.numel() - args.seq_len, args.seq_len):
        x = val_tokens[w : w + args.seq_len].long()
        y = val_tokens[w + 1 : w + args.seq_len + 1].long()
        fill_model_logprobs(model, x, y, buf)
        for t in range(y.numel()):
            p_ngram = ngram.pair_counts.get((int(x[t]), int(y[t])), 0) / ngram.totals.get(int(x[t]), 1)
            loss_sum += -math.log(0.9 * math.exp(float(buf[t])) + 0.1 * p_ngram)
    return loss_sum
''',
        # the target is read one position past the model's last input (`int(v[pos + 1])`)
        _legal.HEADER + '''

def eval_unigram_blend(args, model, val_tokens):
    counts = {}
    seen = 0
    loss_sum = 0.0
    for pos in range(1, val_tokens.numel() - 1):
        nxt = int(val_tokens[pos + 1])
        window = val_tokens[max(0, pos - args.seq_len + 1) : pos + 1].long()
        probs = F.softmax(model.forward_logits(window[None])[0, -1].float(), -1)
        p_model = float(probs[nxt])
        p_count = (counts.get(nxt, 0) + 1) / (seen + 1024)
        loss_sum += -math.log(0.95 * p_model + 0.05 * p_count)
        counts[nxt] = counts.get(nxt, 0) + 1
        seen += 1
    return loss_sum
''',
        _legal.HEADER + '''

class Ngram:
    def logprob_target(self, context, target):
        d = self.counts.get(tuple(context[-3:]))
        if d is None:
            return None
        return math.log(d.get(target, 0) + 1) - math.log(sum(d.values()) + len(d))


def eval_val_mix(args, model, ngram, val_tokens):
    loss_sum = 0.0
    for w in range(0, val_tokens.numel() - args.seq_len, args.seq_len):
        x = val_tokens[w : w + args.seq_len].long()
        y = val_tokens[w + 1 : w + args.seq_len + 1].long()
        log_sm = F.log_softmax(model.forward_logits(x[None])[0].float(), dim=-1)
        model_lp = log_sm[torch.arange(y.numel()), y].tolist()
        for t in range(y.numel()):
            ng_lp = ngram.logprob_target(x[: t + 1].tolist(), int(y[t]))
            if ng_lp is not None:
                mixed = math.log(0.7 * math.exp(model_lp[t]) + 0.3 * math.exp(ng_lp))
                loss_sum += -mixed
            else:
                loss_sum += -model_lp[t]
    return loss_sum
''',
    ]
