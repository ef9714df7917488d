"""PG112 CALIB-2: an evaluation knob is set after scoring, then the validation set is re-scored."""

from audit.static.flow_rule import FlowRule
from audit.static.rules import _legal


class KnobTunedOnValidation(FlowRule):
    """No tuning of eval-time knobs on validation outcomes: a temperature (or gate, or mixing
    weight) written into the model after the validation set was scored (`inference_temp.fill_(0.98)`)
    and then used in a second scoring of the same set. Fixed hyperparameters chosen across whole
    training runs are allowed (FAQ); a post-hoc value applied in a re-score is not.

    Precedent: #1004's author after #991 was closed ("T=0.98 on re-scored tokens was illegal");
    cocohearts on #1991 and #2098 ("validation-outcome tuning").
    """

    code = "PG112"
    rule = "CALIB-2"
    severity = "error"
    confidence = "medium"
    references = ("#991", "#1004", "#1991", "#2098", "#642")
    summary = "an eval knob is set after scoring and the validation set is scored again with it"

    VALID = _legal.ALL + [
        _legal.HEADER + '''

def main():
    args = Hyperparameters()
    model = build_model(args)
    val_tokens = load_validation_tokens(args.val_files, args.seq_len)
    luts = build_luts(args)
    for step in range(20000):
        if step % 4000 == 0:
            print(f"step:{step} val_bpb:{eval_val(args, model, val_tokens, luts):.4f}")
        model.late_gate_ramp.fill_(min(step / 10000, 1.0))
        train_step(model, args)
    print(f"final val_bpb:{eval_val(args, model, val_tokens, luts):.4f}")
''',
    ]
    INVALID = [
        _legal.NO_TTT.replace(
            '    print(f"final val_bpb:{val_bpb:.6f}")',
            '    print(f"final val_bpb:{val_bpb:.6f}")\n'
            '    model.inference_temp.fill_(0.98)\n'
            '    val_bpb = eval_val(args, model, val_tokens, base_bytes_lut)\n'
            '    print(f"final_T0.98 val_bpb:{val_bpb:.6f}")',
        ),
        _legal.NO_TTT.replace(
            '    print(f"final val_bpb:{val_bpb:.6f}")',
            '    print(f"final val_bpb:{val_bpb:.6f}")\n'
            '    model.logit_temperature = 0.97\n'
            '    val_bpb = eval_val(args, model, val_tokens, base_bytes_lut)\n'
            '    print(f"final_T val_bpb:{val_bpb:.6f}")',
        ),
    ]
