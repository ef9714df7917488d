"""PG108 DATA-1: the model trains on the validation set before the evaluation that scores it."""

from audit.static.flow_rule import FlowRule
from audit.static.rules import _legal
from audit.static.rules.pg101_ttt_update_before_score import PRE_EVAL_TTT, PRE_QUANT_TTT


class TrainOnValidation(FlowRule):
    """No training on validation data before it is scored: a training loop, TTT pass or pre-quant
    TTT whose batches come from the validation tokens (or a training loader whose glob resolves to
    `fineweb_val_*`), run to completion before the evaluation that reports the score. Found by the
    same data flow as TTT-1; DATA-1 names the case where the update is not part of a score-first
    loop at all. Data provenance that is not in the code (val shards symlinked as training shards,
    #44) needs the logs or the shard hashes.

    Precedent: README FAQ; 0hq on #44 and #152; cocohearts on #64, #179; Issue #1017.
    """

    code = "PG108"
    rule = "DATA-1"
    severity = "error"
    confidence = "high"
    references = ("#152", "#44", "#64", "#179", "Issue #1017")
    summary = "training on validation tokens before they are scored"

    VALID = _legal.ALL
    INVALID = [
        PRE_EVAL_TTT,
        PRE_QUANT_TTT,
        _legal.HEADER + '''

def main():
    args = Hyperparameters()
    model = build_model(args)
    opt = torch.optim.AdamW(model.parameters())
    train_tokens = load_validation_tokens(args.val_files, args.seq_len)
    for step in range(1000):
        i = step % ((train_tokens.numel() - 1) // args.seq_len)
        chunk = train_tokens[i * args.seq_len : (i + 1) * args.seq_len + 1].long()
        loss = model(chunk[:-1][None], chunk[1:][None])
        opt.zero_grad()
        loss.backward()
        opt.step()
    val_tokens = load_validation_tokens(args.val_files, args.seq_len)
    print(eval_val(args, model, val_tokens, build_luts(args)))
''',
        # the training loader's glob resolves to the validation shards
        _legal.HEADER + '''

class TokenLoader:
    def __init__(self, pattern):
        self.tokens = torch.cat([torch.from_numpy(np.fromfile(f, dtype=np.uint16)) for f in sorted(glob.glob(pattern))])
        self.pos = 0

    def next_batch(self, n):
        chunk = self.tokens[self.pos : self.pos + n + 1].long()
        self.pos += n
        return chunk[:-1][None], chunk[1:][None]


def main():
    args = Hyperparameters()
    model = build_model(args)
    opt = torch.optim.AdamW(model.parameters())
    train_loader = TokenLoader(os.path.join("./data", "fineweb_val_*.bin"))
    for step in range(1000):
        x, y = train_loader.next_batch(65536)
        opt.zero_grad()
        model(x, y).backward()
        opt.step()
    val_tokens = load_validation_tokens(args.val_files, args.seq_len)
    print(eval_val(args, model, val_tokens, build_luts(args)))
''',
    ]
