"""PG111 CALIB-1: quantisation calibration (Hessian hooks) fed with validation tokens."""

from audit.static.flow_rule import FlowRule
from audit.static.rules import _legal


class CalibrationOnValidation(FlowRule):
    """GPTQ/quantisation calibration must use training data inside the training budget, or data the
    model generates itself, never unscored validation tokens. The rule flags a function that
    registers forward hooks (the Hessian collection of GPTQ) when it is called with validation
    tokens, and hooks registered in a function that then runs validation tokens through the model.

    Precedent: valerio-oai on #728 ("not allowed to calibrate on eval tokens you haven't already
    scored"); #1019 merged with AR self-generated calibration; the Agora ban of 22 March.
    """

    code = "PG111"
    rule = "CALIB-1"
    severity = "error"
    confidence = "high"
    references = ("#728", "#1019")
    summary = "calibration hooks (GPTQ Hessians) are fed validation tokens"

    VALID = _legal.ALL + [
        # calibrates on `layout.train_pattern`; the layout record also holds the val pattern
        _legal.LAYOUT_TRAIN_CALIBRATION,
        _legal.HEADER + '''

def collect_hessians(model, batches):
    hessians = {}

    def hook(mod, inp, out, name):
        x = inp[0].reshape(-1, inp[0].shape[-1]).float()
        hessians[name] = hessians.get(name, 0) + x.T @ x

    handles = [m.register_forward_hook(lambda m, i, o, n=n: hook(m, i, o, n)) for n, m in model.named_modules()]
    with torch.no_grad():
        for x in batches:
            model.forward_logits(x)
    for h in handles:
        h.remove()
    return hessians


def main():
    args = Hyperparameters()
    model = build_model(args)
    train_loader = TokenLoader(args.train_files)
    batches = [train_loader.next_batch(65536) for _ in range(64)]
    hessians = collect_hessians(model, batches)
    quantize(model, hessians)
    val_tokens = load_validation_tokens(args.val_files, args.seq_len)
    print(eval_val(args, model, val_tokens, build_luts(args)))
''',
    ]
    INVALID = [
        VALID[-1].replace(
            "batches = [train_loader.next_batch(65536) for _ in range(64)]\n    hessians",
            "val_tokens = load_validation_tokens(args.val_files, args.seq_len)\n"
            "    batches = [val_tokens[i * 2048 : (i + 1) * 2048][None] for i in range(64)]\n    hessians",
        ),
        _legal.LAYOUT_TRAIN_CALIBRATION.replace("layout.train_pattern", "layout.val_pattern"),
    ]
