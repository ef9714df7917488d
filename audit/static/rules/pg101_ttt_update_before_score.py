"""PG101 TTT-1: validation tokens update state before they are scored."""

from audit.static.flow_rule import FlowRule
from audit.static.rules import _legal


PRE_EVAL_TTT = _legal.HEADER + '''

def ttt_adapt(args, model, val_tokens):
    """TTT: adapt the model on the validation data before evaluation."""
    opt = torch.optim.SGD(model.parameters(), lr=args.ttt_lr)
    total_seqs = (val_tokens.numel() - 1) // args.seq_len
    for epoch in range(args.ttt_epochs):
        for i in range(total_seqs):
            local = val_tokens[i * args.seq_len : (i + 1) * args.seq_len + 1].long()
            loss = model(local[:-1].unsqueeze(0), local[1:].unsqueeze(0))
            opt.zero_grad()
            loss.backward()
            opt.step()


def main():
    args = Hyperparameters()
    model = build_model(args)
    val_tokens = load_validation_tokens(args.val_files, args.seq_len)
    luts = build_luts(args)
    if args.ttt_enabled:
        ttt_adapt(args, model, val_tokens)
    val_bpb = eval_val(args, model, val_tokens, luts)
    print(f"final val_bpb:{val_bpb:.4f}")
'''

# the same loop, training on the chunk it is about to score
SAME_LOOP_ADAPT_THEN_SCORE = _legal.HEADER + '''

def eval_val_adapt_then_score(args, model, val_tokens, base_bytes_lut):
    chunk = 32768
    opt = torch.optim.SGD(model.parameters(), lr=args.ttt_lr)
    loss_sum = torch.zeros((), dtype=torch.float64)
    for ci in range((val_tokens.numel() - 1) // chunk):
        cur = val_tokens[ci * chunk : (ci + 1) * chunk + 1].long()
        opt.zero_grad()
        model(cur[:-1][None], cur[1:][None]).backward()
        opt.step()
        with torch.no_grad():
            loss_sum += model(cur[:-1][None], cur[1:][None]).double() * chunk
    return float(loss_sum)
''' + _legal.MAIN.format(ttt="eval_val_adapt_then_score")

# the helper-based score-first loop with its two calls swapped: each chunk is trained on, then scored
HELPERS_ADAPT_THEN_SCORE = _legal.SCORE_FIRST_TTT_HELPERS.replace(
    "        with torch.inference_mode():\n"
    "            score_chunk(model, val_tokens, start, end, base_bytes_lut, s0)\n"
    "        if c == n_chunks - 1:\n"
    "            break\n"
    "        train_on_chunk(model, optimizer, val_tokens, start, end, args.ttt_epochs)\n",
    "        train_on_chunk(model, optimizer, val_tokens, start, end, args.ttt_epochs)\n"
    "        with torch.inference_mode():\n"
    "            score_chunk(model, val_tokens, start, end, base_bytes_lut, s0)\n",
)

PRE_QUANT_TTT = _legal.HEADER + '''

def pre_quant_adamw_ttt(h, model, val_data):
    opt = torch.optim.AdamW(model.parameters(), lr=h.ttt_lr)
    tokens = val_data.val_tokens
    for epoch in range(21):
        for s in range(0, tokens.numel() - h.seq_len, h.seq_len):
            chunk = tokens[s : s + h.seq_len + 1].long()
            opt.zero_grad()
            model(chunk[:-1][None], chunk[1:][None]).backward()
            opt.step()


def main():
    h = Hyperparameters()
    model = build_model(h)
    val_data = ValidationData(h)
    pre_quant_adamw_ttt(h, model, val_data)
    quantize(model)
    print(eval_val(h, model, val_data.val_tokens, val_data.base_bytes_lut))
'''


class UpdateBeforeScore(FlowRule):
    """Score-before-update (C3 of Issue #1017): a validation token may only influence model, adapter
    or cache state after it has been scored. The rule follows values derived from the validation
    tokens into `.backward()` / `torch.autograd.grad` and into writes of tables and caches, and
    checks along the control flow that each such update comes after the scoring of the same data:
    the score-first shape (chunk k scored under no_grad, then trained on, the last chunk never) passes,
    `ttt_adapt(model, val_tokens)` followed by `eval_val(...)` or a pre-quantisation TTT on
    `val_tokens` fails, wherever the functions are called from. Order is read on each function's
    control-flow graph: a count table filled over the whole validation set before the pass that
    scores with it (a complete cache) fails, an in-place add into a count tensor before the chunk
    is scored fails, and a table written after the position was scored, or an update on the chunk
    the previous iteration scored and kept, passes.

    Precedent: README FAQ ("only allowed to test-time train on validation set tokens you've already
    evaluated"); 0hq on #152; #402, #677; closed #442, #1735 (pre-quant AdamW TTT on val_tokens).
    """

    code = "PG101"
    rule = "TTT-1"
    severity = "error"
    confidence = "high"
    references = ("#152", "#442", "#1735", "#677", "Issue #1017")
    summary = "validation tokens update model/cache state before they are scored"

    VALID = _legal.ALL + [
        # trains on the previous chunk (scored one iteration earlier), then scores the current one
        _legal.HEADER + '''

def eval_val_lagged_ttt(args, model, val_tokens, base_bytes_lut):
    chunk = 32768
    num_chunks = (val_tokens.numel() - 1) // chunk
    opt = torch.optim.SGD(model.parameters(), lr=args.ttt_lr)
    loss_sum = torch.zeros((), dtype=torch.float64)
    for ci in range(num_chunks):
        if ci > 0:
            prev = val_tokens[(ci - 1) * chunk : ci * chunk + 1].long()
            opt.zero_grad()
            model(prev[:-1][None], prev[1:][None]).backward()
            opt.step()
        cur = val_tokens[ci * chunk : (ci + 1) * chunk + 1].long()
        with torch.no_grad():
            loss_sum += model(cur[:-1][None], cur[1:][None]).double() * chunk
    return float(loss_sum)
''' + _legal.MAIN.format(ttt="eval_val_lagged_ttt"),
    ]
    INVALID = [PRE_EVAL_TTT, SAME_LOOP_ADAPT_THEN_SCORE, PRE_QUANT_TTT, HELPERS_ADAPT_THEN_SCORE,
               # the chunk is scored through an output buffer the helper fills, after the update
               _legal.OUTPUT_BUFFER_TTT.replace(
                   "        score_chunk_into(model, x, y, nll_store)\n        loss_sum += nll_store.double().sum()\n", ""
               ).replace("        opt.step()\n", "        opt.step()\n        score_chunk_into(model, x, y, nll_store)\n"
                         "        loss_sum += nll_store.double().sum()\n"),
               # a complete cache: bigram counts over the whole validation set, then the scoring pass
               _legal.HEADER + '''

def eval_val_bigram_mix(args, model, val_tokens, base_bytes_lut):
    toks = val_tokens.long()
    counts = torch.ones(1024, 1024, dtype=torch.float64)
    for i in range(toks.numel() - 1):
        counts[toks[i], toks[i + 1]] += 1.0
    loss_sum = torch.zeros((), dtype=torch.float64)
    for w in range(0, toks.numel() - args.seq_len, args.seq_len):
        x = toks[w : w + args.seq_len]
        y = toks[w + 1 : w + args.seq_len + 1]
        ngram = counts[x] / counts[x].sum(-1, keepdim=True)
        probs = 0.8 * F.softmax(model.forward_logits(x[None])[0].float(), -1) + 0.2 * ngram
        loss_sum += -torch.log(probs.gather(-1, y[:, None])).sum()
    return float(loss_sum)
''' + _legal.MAIN.format(ttt="eval_val_bigram_mix"),
               # an in-place add into a count table before the chunk is scored
               _legal.SCORE_FIRST_COUNTS.replace("        counts += torch.bincount(y, minlength=1024)\n", "").replace(
                   "        probs = 0.9", "        counts += torch.bincount(y, minlength=1024)\n        probs = 0.9"),
               # the chunk kept for the next iteration's update is the next, unscored one
               _legal.LAGGED_TTT.replace(
                   "        scored = chunk\n",
                   "        scored = val_tokens[w + args.seq_len : w + 2 * args.seq_len + 1].long()\n")]
