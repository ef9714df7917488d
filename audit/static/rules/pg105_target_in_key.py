"""PG105 C1: the target token feeds a lookup key, so p(x_t) depends on x_t."""

from audit.static.flow_rule import FlowRule
from audit.static.rules import _legal


BACKOFF_MIXER = _legal.HEADER + '''

class BackoffMixer:
    def mix_and_score(self, logits, x_batch, y_batch):
        neural_p = F.softmax(logits, -1).gather(2, y_batch.unsqueeze(2)).squeeze(2)
        x_np = x_batch.cpu().numpy().astype(np.uint64)
        y_np = y_batch.cpu().numpy().astype(np.uint64)
        ctx_hash = x_np * np.uint64(1000003)
        full_key = ((ctx_hash ^ (y_np * np.uint64(998244353))) & np.uint64(0xFFFFF)).astype(np.int64)
        ngram_p = torch.tensor(self.full_counts[full_key] / np.maximum(self.ctx_counts[ctx_hash & 0xFFFFF], 1))
        return -torch.log(0.8 * neural_p + 0.2 * ngram_p)


def eval_val_mixed(args, model, mixer, val_tokens):
    loss_sum = torch.zeros((), dtype=torch.float64)
    for w in range(0, val_tokens.numel() - args.seq_len, args.seq_len):
        x = val_tokens[w : w + args.seq_len].long()[None]
        y = val_tokens[w + 1 : w + args.seq_len + 1].long()[None]
        nll = mixer.mix_and_score(model.forward_logits(x), x, y)
        loss_sum += nll.double().sum()
    return float(loss_sum)
'''


# the targets are read by fancy indexing with positions one past the inputs, not by a shifted slice
ARANGE_TARGET_KEY = _legal.HEADER + '''

def eval_hashed_cache(args, model, val_tokens):
    toks = val_tokens.numpy().astype(np.int64)
    table = np.zeros(1 << 22, dtype=np.float64)
    totals = np.ones(1 << 22, dtype=np.float64)
    loss_sum = 0.0
    for s in range(0, len(toks) - args.seq_len - 1, args.seq_len):
        e = s + args.seq_len
        prev = toks[np.arange(s, e)]
        nxt_idx = np.arange(s + 1, e + 1)
        nxt = toks[nxt_idx]
        key = ((prev * 1000003) ^ (nxt * 998244353)) & ((1 << 22) - 1)
        ctx = (prev * 1000003) & ((1 << 22) - 1)
        p_ngram = table[key] / totals[ctx]
        logp = F.log_softmax(model.forward_logits(torch.from_numpy(prev)[None])[0].float(), -1)
        p_model = logp.exp().gather(-1, torch.from_numpy(nxt)[:, None])[:, 0].numpy()
        loss_sum += float(-np.log(0.9 * p_model + 0.1 * p_ngram).sum())
        np.add.at(table, key, 1.0)
        np.add.at(totals, ctx, 1.0)
    return loss_sum
'''


class TargetInKey(FlowRule):
    """The probability of token t may depend only on the artifact and the strict prefix (C1 of
    Issue #1017). The rule follows the target tensor (validation tokens shifted by one, a read
    at the largest position offset of its function such as `toks[np.arange(s + 1, e + 1)]` or
    `int(v[pos + 1])`, and parameters that receive it; earlier positions and argmax choices are not
    targets) and flags it where it is hashed into a key (`ctx_hash ^ (tgt *
    prime)`), the hashed n-gram cache of the #779 family, and where a test on it decides whether a
position gets a prediction (a word-start gate reading the realised token's class, #1967/#2041).
The final log-prob lookup (`gather`,
    `cross_entropy`) and the byte LUTs are the target's legal uses.

    Precedent: valerio-oai on #779 and #1185; cocohearts on #2041, #2118, #2130; the mass closure of
    hashed n-gram caches on #677.
    """

    code = "PG105"
    rule = "C1"
    severity = "error"
    confidence = "high"
    references = ("#779", "#1185", "#677", "#1967", "#2041", "#2118", "#2130", "Issue #1017")
    summary = "the target token is hashed into a lookup key (target-keyed n-gram cache)"

    VALID = _legal.ALL + [
        _legal.HEADER + '''

class PrefixNgram:
    """Counts keyed by the context hash only; the distribution over all next tokens is mixed."""

    def __init__(self, vocab):
        self.counts = torch.zeros(1 << 20, vocab)

    def dist(self, x):
        ctx_hash = (x * 1000003) ^ (x.roll(1, dims=1) * 998244353)
        return self.counts[ctx_hash & ((1 << 20) - 1)]


def eval_mixed(args, model, ngram, val_tokens):
    loss_sum = torch.zeros((), dtype=torch.float64)
    for w in range(0, val_tokens.numel() - args.seq_len, args.seq_len):
        x = val_tokens[w : w + args.seq_len].long()[None]
        y = val_tokens[w + 1 : w + args.seq_len + 1].long()[None]
        p = 0.9 * F.softmax(model.forward_logits(x), -1) + 0.1 * F.normalize(ngram.dist(x), p=1, dim=-1)
        loss_sum += -torch.log(p.gather(-1, y[..., None])).double().sum()
    return float(loss_sum)
''',
        # `piece.startswith("▁")` tests vocabulary pieces, not the realised target
        _legal.VOCABULARY_BYTE_LUTS,
    ]
    INVALID = [
        _legal.ONLINE_NGRAM_HINTS.replace(
            "        if seen:\n",
            "        if seen and bool(starts_word_lut[tok]):\n",
        ).replace("build_hints(val_tokens[:-1])", "build_hints(val_tokens[1:])"),
        BACKOFF_MIXER,
        ARANGE_TARGET_KEY,
        # the positions are a selection of a range one past the window start; the context reads
        # `toks[jv - (3 - k)]` lie before them, `toks[jv]` is the target
        _legal.HEADER + '''

def eval_val_backoff(args, model, val_tokens, base_bytes_lut):
    toks = val_tokens.numpy().astype(np.int64)
    mask = (1 << 20) - 1
    ctx_counts = np.zeros(1 << 20)
    pair_counts = np.zeros(1 << 20)
    loss_sum = 0.0
    for ws in range(0, len(toks) - args.seq_len - 1, args.seq_len):
        positions = np.arange(ws + 1, ws + args.seq_len + 1)
        jv = positions[positions >= 3]
        h = np.zeros(len(jv), dtype=np.int64)
        for k in range(3):
            h = h * 1000003 + toks[jv - (3 - k)]
        cur = toks[jv]
        pair = (h ^ (cur * 998244353)) & mask
        p_ngram = (pair_counts[pair] + 1) / (ctx_counts[h & mask] + 1024)
        loss_sum += float(-np.log(p_ngram).sum())
        np.add.at(pair_counts, pair, 1)
        np.add.at(ctx_counts, h & mask, 1)
    return loss_sum
''' + _legal.MAIN.format(ttt="eval_val_backoff"),
    ]
