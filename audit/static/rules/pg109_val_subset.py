"""PG109 DATA-3: the reported score covers a subset or random sample of the validation set."""

from audit.static.flow_rule import FlowRule
from audit.static.rules import _legal


class ValidationSubset(FlowRule):
    """Score the full canonical validation set: no `[:subset]` prefix of the validation tokens and
    no random minibatches of it. The rule flags a reported accumulation fed by validation data drawn
    with random indices (`get_batch(..., "val")` with torch.randint inside), and a prefix slice of the
    validation tokens whose bound is not derived from their length, when the slice is scored.

    Precedent: README ("Validation always runs on the full fineweb_val_* split"); valerio-oai on
    #1835 (PPM scored on 3M tokens only); cocohearts on #2009 (20 random minibatches), #2109.
    """

    code = "PG109"
    rule = "DATA-3"
    severity = "error"
    confidence = "high"
    references = ("#2009", "#1835", "#2109")
    summary = "only a subset / random sample of the validation set is scored"

    VALID = _legal.ALL
    INVALID = [
        _legal.HEADER + '''

def get_batch(data_dir, split, batch_tokens, ctx_len):
    shards = sorted(glob.glob(os.path.join(data_dir, f"fineweb_{split}_*.bin")))
    shard = np.memmap(shards[0], dtype=np.uint16, mode="r")
    ix = torch.randint(len(shard) - ctx_len - 1, (batch_tokens // ctx_len,))
    x = torch.stack([torch.from_numpy(shard[i : i + ctx_len].astype(np.int64)) for i in ix])
    y = torch.stack([torch.from_numpy(shard[i + 1 : i + ctx_len + 1].astype(np.int64)) for i in ix])
    return x, y


def main():
    args = Hyperparameters()
    model = build_model(args)
    for step in range(1000):
        x, y = get_batch("./data", "train", 65536, 1024)
        model(x, y).backward()
    val_losses = []
    with torch.no_grad():
        for _ in range(20):
            x, y = get_batch("./data", "val", 65536, 1024)
            val_losses.append(model(x, y).item())
    print("val_bpb", np.mean(val_losses) / math.log(2) / 2.75)
''',
        _legal.HEADER + '''

def main():
    args = Hyperparameters()
    model = build_model(args)
    subset = int(os.environ.get("PPM_SUBSET_TOKENS", 3_000_000))
    val_tokens = load_validation_tokens(args.val_files, args.seq_len)
    scored = val_tokens[:subset]
    loss_sum = 0.0
    for w in range(0, scored.numel() - args.seq_len, args.seq_len):
        loss_sum += model(scored[w : w + args.seq_len][None], scored[w + 1 : w + args.seq_len + 1][None]).item()
    print("val_bpb", loss_sum)
''',
    ]
