"""PG103 TTT-4: backward on validation tokens that are never scored first (warm-up, auxiliary)."""

from audit.static.flow_rule import FlowRule
from audit.static.rules import _legal


class AuxiliaryValBackward(FlowRule):
    """No backward/step on unscored validation tokens for any auxiliary purpose: a TTT compile
    warm-up run on real validation batches, a "legal slice" trained on before it is scored. The
    legal alternative is a warm-up on synthetic tokens (`torch.randint`), as #1626 did.

    Disputed, so a warning: #1530 and #1610 were merged with a val-token warm-up on throw-away LoRA
    weights (dexhunter/msisovic on #1530); cocohearts on #2139 objected to the same pattern. The
    maintainers' rule of thumb: allowed only if no state derived from token t can affect the score
    of token t.
    """

    code = "PG103"
    rule = "TTT-4"
    severity = "warning"
    confidence = "medium"
    references = ("#1530", "#1610", "#1626", "#2139", "#1240")
    summary = "backward on validation tokens that have not been scored (warm-up / auxiliary)"

    VALID = _legal.ALL + [_legal.SCORE_FIRST_TTT_HELPERS]  # scored through helpers and an accumulator
    INVALID = [
        _legal.HEADER + '''

def warmup_ttt_compile(model, val_tokens, args):
    """Warm the compiled TTT step up on the first validation batches (weights thrown away)."""
    lora = make_lora(model)
    opt = torch.optim.Adam(lora.parameters(), lr=args.ttt_lr)
    for i in range(3):
        local = val_tokens[i * 2048 : i * 2048 + 2049].long()
        loss = model(local[:-1][None], local[1:][None], lora=lora)
        opt.zero_grad()
        loss.backward()
        opt.step()
    del lora, opt


def main():
    args = Hyperparameters()
    model = build_model(args)
    val_tokens = load_validation_tokens(args.val_files, args.seq_len)
    warmup_ttt_compile(model, val_tokens, args)
    print(eval_val(args, model, val_tokens, build_luts(args)))
''',
    ]
