"""PG110 PREFIX-1: validation tokens stored in the artifact and matched against the targets."""

from audit.static.flow_rule import FlowRule
from audit.static.rules import _legal


class PaidPrefix(FlowRule):
    """No "paid prefix": the artifact must not carry validation tokens. The rule flags a comparison
    between the target tensor and tokens read from a stored blob (lzma/zlib decompress,
    np.frombuffer, read_bytes), the shape of #168's `prefix_slice == tgt_slice`, which zeroes the
    loss wherever the stored tokens match.

    Precedent: README FAQ; 0hq on #168 ("isn't really a valid submission"); cocohearts on #262; 0hq
    on #275.
    """

    code = "PG110"
    rule = "PREFIX-1"
    severity = "error"
    confidence = "high"
    references = ("#168", "#262", "#275")
    summary = "targets are compared with validation tokens stored in the artifact (paid prefix)"

    VALID = _legal.ALL
    INVALID = [
        _legal.HEADER + '''
import lzma
from pathlib import Path


def load_paid_prefix(path):
    raw = lzma.decompress(Path(path).read_bytes())
    return torch.from_numpy(np.frombuffer(raw, dtype="<u2").copy()).long()


def eval_val_prefix(args, model, val_tokens, prefix_tokens):
    loss_sum = torch.zeros((), dtype=torch.float64)
    for w in range(0, val_tokens.numel() - args.seq_len, args.seq_len):
        x = val_tokens[w : w + args.seq_len].long()[None]
        y = val_tokens[w + 1 : w + args.seq_len + 1].long()[None]
        per_token = F.cross_entropy(model.forward_logits(x)[0], y[0], reduction="none")
        prefix_slice = prefix_tokens[w : w + args.seq_len]
        tgt_slice = y.reshape(-1)[: prefix_slice.numel()]
        match = prefix_slice == tgt_slice
        per_token[: match.numel()] *= (~match).float()
        loss_sum += per_token.double().sum()
    return float(loss_sum)


def main():
    args = Hyperparameters()
    model = build_model(args)
    val_tokens = load_validation_tokens(args.val_files, args.seq_len)
    print(eval_val_prefix(args, model, val_tokens, load_paid_prefix("prefix.xz")))
''',
    ]
