"""PG102 TTT-2: the reported score is not the first, pre-adaptation pass (s_1 instead of s_0)."""

from audit.static.flow_rule import FlowRule
from audit.static.rules import _legal


class RescoreAfterAdaptation(FlowRule):
    """Single left-to-right scoring pass (C4 of Issue #1017): report s_0, the score of each token
    taken before the model adapted to it. Fails when the validation set is scored again after a
    function trained the model on it (score-first TTT, then `eval_val_sliding` on the adapted model,
    #991), and when tokens are scored inside an epoch loop that also trains on them, so that every
    epoch after the first scores adapted weights ("score every epoch, keep the last": the
    accumulator is reset in the epoch loop or only the final epoch is added, #568). A loop whose
    iterations visit different data (chunks, documents) is not an epoch loop; that is decided by
    data flow from the loop variable into the slices of the validation tokens. A second pass over
    the validation set that scores with a table the first pass filled from it (two-pass n-gram
    rescoring) fails as well.

    Precedent: valerio-oai on #991 (scoring s_0, training, re-scoring and reporting s_1), #568,
    #642, #684; Issue #1017 C4.
    """

    code = "PG102"
    rule = "TTT-2"
    severity = "error"
    confidence = "high"
    references = ("#991", "#568", "#642", "#684", "Issue #1017")
    summary = "validation tokens are scored again after the model trained on them (s_1 reported)"

    VALID = _legal.ALL + [
        # each TTT variant adapts a throw-away copy; the model that is scored last never trained
        _legal.SCORE_FIRST_TTT.replace(
            "        ttt_bpb = eval_val_sliding_ttt(args, model, val_tokens, base_bytes_lut)",
            "        ttt_bpb = eval_val_sliding_ttt(args, copy.deepcopy(model), val_tokens, base_bytes_lut)\n"
            "        base_bpb = eval_val(args, model, val_tokens, base_bytes_lut)",
        ).replace("import os, glob, math", "import copy, os, glob, math"),
    ]
    INVALID = [
        _legal.SCORE_FIRST_TTT.replace(
            '        print(f"final_ttt val_bpb:{ttt_bpb:.6f}")',
            '        model.inference_temp.fill_(0.98)\n'
            '        val_bpb_t = eval_val(args, model, val_tokens, base_bytes_lut)\n'
            '        print(f"final_ttt_T0.98 val_bpb:{val_bpb_t:.6f}")',
        ),
        _legal.HEADER + '''

def eval_val_ttt_lora(args, model, val_tokens, base_bytes_lut, docs):
    loss_sum = torch.zeros((), dtype=torch.float64)
    lora = make_lora(model)
    opt = torch.optim.Adam(lora.parameters(), lr=args.ttt_lr)
    for ds, dl in docs:
        batch_loss = torch.zeros((), dtype=torch.float64)
        lora.reset()
        for epoch in range(args.ttt_epochs):
            batch_loss.zero_()
            for ci in range(dl // 256):
                x = val_tokens[ds + ci * 256 : ds + ci * 256 + 256].long()[None]
                y = val_tokens[ds + ci * 256 + 1 : ds + ci * 256 + 257].long()[None]
                ptl = model(x, y, lora=lora)
                with torch.no_grad():
                    batch_loss += ptl.double().sum()
                opt.zero_grad()
                ptl.mean().backward()
                opt.step()
        loss_sum += batch_loss
    return float(loss_sum)


def main():
    args = Hyperparameters()
    model = build_model(args)
    val_tokens = load_validation_tokens(args.val_files, args.seq_len)
    print(eval_val_ttt_lora(args, model, val_tokens, build_luts(args), find_docs(val_tokens)))
''',
        # two passes: the first scores and fills a count table, the second re-scores with the table
        # complete over the validation set and is the one reported
        _legal.HEADER + '''

def eval_val_two_pass(args, model, val_tokens, base_bytes_lut):
    toks = val_tokens.long()
    counts = torch.ones(1024, 1024, dtype=torch.float64)
    first = torch.zeros((), dtype=torch.float64)
    for w in range(0, toks.numel() - args.seq_len, args.seq_len):
        x = toks[w : w + args.seq_len]
        y = toks[w + 1 : w + args.seq_len + 1]
        probs = 0.8 * F.softmax(model.forward_logits(x[None])[0].float(), -1) + 0.2 * counts[x] / counts[x].sum(-1, keepdim=True)
        first += -torch.log(probs.gather(-1, y[:, None])).sum()
        counts.index_put_((x, y), torch.ones(y.numel(), dtype=torch.float64), accumulate=True)
    second = torch.zeros((), dtype=torch.float64)
    for w in range(0, toks.numel() - args.seq_len, args.seq_len):
        x = toks[w : w + args.seq_len]
        y = toks[w + 1 : w + args.seq_len + 1]
        probs = 0.8 * F.softmax(model.forward_logits(x[None])[0].float(), -1) + 0.2 * counts[x] / counts[x].sum(-1, keepdim=True)
        second += -torch.log(probs.gather(-1, y[:, None])).sum()
    print(f"first pass loss {float(first):.4f}")
    return float(second)
''' + _legal.MAIN.format(ttt="eval_val_two_pass"),
    ]
