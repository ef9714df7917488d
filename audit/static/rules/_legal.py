"""Legal submission shapes shared by the VALID snippets of the data-flow rules (written for the tests).

Each is a small train_gpt.py in the idiom of the records: a Hyperparameters class read from the
environment, an `eval_val` that scores under inference_mode, and the legal TTT variants: a chunked
score-first loop with an is_last_chunk guard, per-document LoRA TTT scored before each step, a
compile warm-up on torch.randint tokens, an online prefix-only n-gram hint table (the #1514 tilt
shape), a tilt keyed by the targets of earlier positions (the prefix of the scored one), score-first TTT
scored through an output buffer, TTT on the chunk the previous iteration scored, count tables
updated after scoring (one through a helper that creates missing rows), and a logit bias fitted only on already-scored context positions. Every data-flow rule must stay silent on all of them.
"""

HEADER = '''
import os, glob, math
import numpy as np
import torch
import torch.nn.functional as F


class Hyperparameters:
    val_files = os.path.join(os.environ.get("DATA_PATH", "./data"), "fineweb_val_*.bin")
    train_files = os.path.join(os.environ.get("DATA_PATH", "./data"), "fineweb_train_*.bin")
    ttt_enabled = bool(int(os.environ.get("TTT_ENABLED", "1")))
    ttt_epochs = int(os.environ.get("TTT_EPOCHS", 3))
    ttt_lr = float(os.environ.get("TTT_LR", 0.002))
    seq_len = int(os.environ.get("TRAIN_SEQ_LEN", 1024))


def load_validation_tokens(pattern, seq_len):
    files = sorted(glob.glob(pattern))
    tokens = torch.cat([torch.from_numpy(np.fromfile(f, dtype=np.uint16)) for f in files])
    usable = ((tokens.numel() - 1) // seq_len) * seq_len
    return tokens[: usable + 1]


def eval_val(args, model, val_tokens, base_bytes_lut):
    loss_sum = torch.zeros((), dtype=torch.float64)
    byte_sum = torch.zeros((), dtype=torch.float64)
    total = (val_tokens.numel() - 1) // args.seq_len
    with torch.inference_mode():
        for i in range(total):
            local = val_tokens[i * args.seq_len : (i + 1) * args.seq_len + 1].long()
            x = local[:-1].unsqueeze(0)
            y = local[1:].unsqueeze(0)
            loss = model(x, y)
            loss_sum += loss.double() * y.numel()
            byte_sum += base_bytes_lut[y].double().sum()
    return float(loss_sum / byte_sum / math.log(2))
'''

MAIN = '''

def main():
    args = Hyperparameters()
    model = build_model(args)
    train(model, args)
    val_tokens = load_validation_tokens(args.val_files, args.seq_len)
    base_bytes_lut = build_luts(args)
    val_bpb = eval_val(args, model, val_tokens, base_bytes_lut)
    print(f"final val_bpb:{{val_bpb:.6f}}")
    if args.ttt_enabled:
        ttt_bpb = {ttt}(args, model, val_tokens, base_bytes_lut)
        print(f"final_ttt val_bpb:{{ttt_bpb:.6f}}")
'''

SCORE_FIRST_TTT = HEADER + '''

def eval_val_sliding_ttt(args, model, val_tokens, base_bytes_lut):
    """Score-first TTT: chunk k is scored under no_grad, then trained on; the last chunk never."""
    chunk = 32768
    num_chunks = (val_tokens.numel() - 1) // chunk
    optimizer = torch.optim.SGD(model.parameters(), lr=args.ttt_lr, momentum=0.9)
    loss_sum = torch.zeros((), dtype=torch.float64)
    byte_sum = torch.zeros((), dtype=torch.float64)
    for ci in range(num_chunks):
        start = ci * chunk
        local = val_tokens[start : start + chunk + 1].long()
        x, y = local[:-1].unsqueeze(0), local[1:].unsqueeze(0)
        model.eval()
        with torch.no_grad():
            nll = model(x, y)
            loss_sum += nll.double() * y.numel()
            byte_sum += base_bytes_lut[y].double().sum()
        is_last_chunk = ci == num_chunks - 1
        if not is_last_chunk:
            model.train()
            for epoch in range(args.ttt_epochs):
                optimizer.zero_grad()
                loss = model(x, y)
                loss.backward()
                optimizer.step()
    return float(loss_sum / byte_sum / math.log(2))
''' + MAIN.format(ttt="eval_val_sliding_ttt")

LORA_DOC_TTT = HEADER + '''

def _score_chunk(ptl, loss_sum, co, cl):
    loss_sum += ptl[0, co : co + cl].double().sum()


def eval_val_ttt_lora(args, model, val_tokens, base_bytes_lut):
    """Per-document LoRA TTT: each chunk's loss is accumulated before the step; the last chunk of a
    document is never trained on; the adapter is reset for every document."""
    bos = (val_tokens == 1).nonzero().flatten().tolist() + [val_tokens.numel()]
    loss_sum = torch.zeros((), dtype=torch.float64)
    byte_sum = torch.zeros((), dtype=torch.float64)
    lora = make_lora(model)
    for ds, de in zip(bos[:-1], bos[1:]):
        lora.reset()
        opt = torch.optim.Adam(lora.parameters(), lr=args.ttt_lr)
        num_chunks = (de - ds + 255) // 256
        for ci in range(num_chunks):
            cs = ds + ci * 256
            ce = min(cs + 256, de - 1)
            x = val_tokens[cs:ce].long().unsqueeze(0)
            y = val_tokens[cs + 1 : ce + 1].long().unsqueeze(0)
            ptl = model(x, y, lora=lora)
            with torch.no_grad():
                _score_chunk(ptl, loss_sum, 0, ce - cs)
                byte_sum += base_bytes_lut[y].double().sum()
            if ci < num_chunks - 1:
                opt.zero_grad()
                ptl.mean().backward()
                opt.step()
    return float(loss_sum / byte_sum / math.log(2))
''' + MAIN.format(ttt="eval_val_ttt_lora")

PHASED_TTT_WITH_RANDINT_WARMUP = HEADER + '''

def global_sgd_on_scored(model, scored_tokens, args):
    """Global SGD over documents that were already scored in an earlier phase."""
    opt = torch.optim.SGD(model.parameters(), lr=args.ttt_lr)
    for bs in range(0, scored_tokens.numel() - 1, 4096):
        local = scored_tokens[bs : bs + 4097].long()
        loss = model(local[:-1].unsqueeze(0), local[1:].unsqueeze(0))
        opt.zero_grad()
        loss.backward()
        opt.step()


def warmup_compile(model, args):
    """Compile warm-up on synthetic tokens: no validation token is touched."""
    for _ in range(3):
        xw = torch.randint(0, 1024, (4, args.seq_len))
        yw = torch.randint(0, 1024, (4, args.seq_len))
        model(xw, yw).backward()


def eval_val_ttt_phased(args, model, val_tokens, base_bytes_lut):
    warmup_compile(model, args)
    num_phases = 3
    per_phase = (val_tokens.numel() - 1) // num_phases
    loss_sum = torch.zeros((), dtype=torch.float64)
    byte_sum = torch.zeros((), dtype=torch.float64)
    for pi in range(num_phases):
        start = pi * per_phase
        phase = val_tokens[start : start + per_phase + 1].long()
        with torch.inference_mode():
            nll = model(phase[:-1].unsqueeze(0), phase[1:].unsqueeze(0))
            loss_sum += nll.double() * per_phase
            byte_sum += base_bytes_lut[phase[1:]].double().sum()
        if pi < num_phases - 1:
            global_sgd_on_scored(model, phase, args)
    return float(loss_sum / byte_sum / math.log(2))
''' + MAIN.format(ttt="eval_val_ttt_phased")

NO_TTT = HEADER + MAIN.format(ttt="eval_val")

ONLINE_NGRAM_HINTS = HEADER + '''

def build_hints(tokens, order=3):
    """Online, prefix-only hints: the hint for position i is read before token i is counted."""
    counts = {}
    best = np.zeros(len(tokens), dtype=np.int64)
    for i, tok in enumerate(tokens.tolist()):
        ctx = tuple(tokens[max(0, i - order) : i].tolist())
        seen = counts.get(ctx)
        if seen:
            best[i] = max(seen, key=seen.get)
        counts.setdefault(ctx, {})[tok] = counts.get(ctx, {}).get(tok, 0) + 1
    return torch.from_numpy(best)


def eval_val_tilt(args, model, val_tokens, base_bytes_lut):
    hints = build_hints(val_tokens[:-1])
    loss_sum = torch.zeros((), dtype=torch.float64)
    for w in range(0, val_tokens.numel() - args.seq_len, args.seq_len):
        x = val_tokens[w : w + args.seq_len].long()[None]
        y = val_tokens[w + 1 : w + args.seq_len + 1].long()[None]
        logits = model.forward_logits(x)[0].float()
        h = hints[w : w + args.seq_len]
        tilted = logits.scatter_add(1, h[:, None], torch.full((h.numel(), 1), 0.5))
        loss_sum += F.cross_entropy(tilted, y[0], reduction="sum").double()
    return float(loss_sum)
''' + MAIN.format(ttt="eval_val_tilt")

# the hint key hashes the targets of earlier positions (`y[t - 2]`, `y[t - 1]` when `y[t]` is scored):
# the prefix of position t, though the tensor y holds targets; the fallback hint is the model's argmax
PREFIX_KEYED_TILT = HEADER + '''

def eval_val_prefix_tilt(args, model, val_tokens, base_bytes_lut):
    hints = {}
    loss_sum = 0.0
    for w in range(0, val_tokens.numel() - args.seq_len - 1, args.seq_len):
        x = val_tokens[w : w + args.seq_len].long()
        y = val_tokens[w + 1 : w + args.seq_len + 1].long()
        logp = F.log_softmax(model.forward_logits(x[None])[0].float(), -1)
        for t in range(2, args.seq_len):
            ctx = (int(y[t - 2]) * 1000003) ^ int(y[t - 1])
            hint = hints.get(ctx)
            if hint is None:
                hint = int(logp[t].argmax())
            tilted = F.log_softmax(logp[t] + 0.5 * F.one_hot(torch.tensor(hint), logp.shape[-1]), -1)
            loss_sum += -float(tilted[y[t]])
            hints[ctx] = int(y[t])
    return loss_sum
''' + MAIN.format(ttt="eval_val_prefix_tilt")

# score-first TTT whose scoring fills a buffer the caller passes in (an output parameter), then
# accumulates it; the update follows in the same chunk
OUTPUT_BUFFER_TTT = HEADER + '''


def score_chunk_into(model, x, y, nll_out):
    with torch.no_grad():
        logits = model.forward_logits(x[None])[0].float()
        nll_out[: y.numel()] = F.cross_entropy(logits, y, reduction="none")


def evaluate_with_ttt(args, model, val_tokens, base_bytes_lut):
    opt = torch.optim.SGD(model.parameters(), lr=args.ttt_lr)
    nll_store = torch.zeros(args.seq_len, dtype=torch.float32)
    loss_sum = torch.zeros((), dtype=torch.float64)
    for w in range(0, val_tokens.numel() - args.seq_len, args.seq_len):
        x = val_tokens[w : w + args.seq_len].long()
        y = val_tokens[w + 1 : w + args.seq_len + 1].long()
        score_chunk_into(model, x, y, nll_store)
        loss_sum += nll_store.double().sum()
        opt.zero_grad()
        F.cross_entropy(model.forward_logits(x[None])[0], y).backward()
        opt.step()
    return float(loss_sum)
''' + MAIN.format(ttt="evaluate_with_ttt")

# TTT that trains, at the top of each iteration, on the chunk the previous iteration scored and kept
# (the loop's back edge carries it)
LAGGED_TTT = HEADER + '''

def eval_val_lagged_ttt(args, model, val_tokens, base_bytes_lut):
    opt = torch.optim.SGD(model.parameters(), lr=args.ttt_lr)
    loss_sum = torch.zeros((), dtype=torch.float64)
    scored = None
    for w in range(0, val_tokens.numel() - args.seq_len, args.seq_len):
        if scored is not None:
            opt.zero_grad()
            model(scored[:-1][None], scored[1:][None]).backward()
            opt.step()
        chunk = val_tokens[w : w + args.seq_len + 1].long()
        with torch.no_grad():
            loss_sum += model(chunk[:-1][None], chunk[1:][None]).double() * args.seq_len
        scored = chunk
    return float(loss_sum)
''' + MAIN.format(ttt="eval_val_lagged_ttt")

# count tables updated after the tokens were scored: in place (`counts += bincount(y)`) and per
# chunk after its scoring loop, read by the next chunk
SCORE_FIRST_COUNTS = HEADER + '''

def eval_val_unigram_mix(args, model, val_tokens, base_bytes_lut):
    counts = torch.ones(1024, dtype=torch.float64)
    loss_sum = torch.zeros((), dtype=torch.float64)
    for w in range(0, val_tokens.numel() - args.seq_len, args.seq_len):
        x = val_tokens[w : w + args.seq_len].long()
        y = val_tokens[w + 1 : w + args.seq_len + 1].long()
        probs = 0.9 * F.softmax(model.forward_logits(x[None])[0].float(), -1) + 0.1 * counts / counts.sum()
        loss_sum += -torch.log(probs.gather(-1, y[:, None])).sum()
        counts += torch.bincount(y, minlength=1024)
    return float(loss_sum)
''' + MAIN.format(ttt="eval_val_unigram_mix")

SCORE_FIRST_CHUNK_TABLE = HEADER + '''

def eval_val_chunk_cache(args, model, val_tokens, base_bytes_lut):
    toks = val_tokens.long()
    counts = torch.ones(1024, 1024, dtype=torch.float64)
    loss_sum = torch.zeros((), dtype=torch.float64)
    for w in range(0, toks.numel() - args.seq_len, args.seq_len):
        x = toks[w : w + args.seq_len]
        y = toks[w + 1 : w + args.seq_len + 1]
        logits = model.forward_logits(x[None])[0].float()
        for t in range(args.seq_len):
            probs = 0.8 * F.softmax(logits[t], -1) + 0.2 * counts[x[t]] / counts[x[t]].sum()
            loss_sum += -torch.log(probs[y[t]])
        for t in range(args.seq_len):
            counts[x[t], y[t]] += 1.0
    return float(loss_sum)
''' + MAIN.format(ttt="eval_val_chunk_cache")

# a score-first backoff count table mixed as a full distribution; the update helper creates a
# missing row (`if row is None:`), which is a table write after scoring, not a prediction
SCORE_FIRST_BACKOFF_COUNTS = HEADER + '''

def bump(counts, history, tok, order=2):
    """Count tok after each suffix of the history (orders 0..order), creating rows on first use."""
    for k in range(min(order, len(history)) + 1):
        ctx = tuple(history[len(history) - k :])
        row = counts.get(ctx)
        if row is None:
            row = {}
            counts[ctx] = row
        row[tok] = row.get(tok, 0) + 1


def eval_val_backoff_mix(args, model, val_tokens, base_bytes_lut):
    counts = {}
    loss_sum = 0.0
    for w in range(0, val_tokens.numel() - args.seq_len, args.seq_len):
        x = val_tokens[w : w + args.seq_len].long()
        y = val_tokens[w + 1 : w + args.seq_len + 1].long()
        probs = F.softmax(model.forward_logits(x[None])[0].float(), -1)
        for t in range(args.seq_len):
            ctx = (int(x[t]),)
            row = counts.get(ctx, {})
            total = sum(row.values()) + probs.shape[-1]
            ngram = torch.tensor([(row.get(v, 0) + 1) / total for v in range(probs.shape[-1])])
            mixed = 0.9 * probs[t] + 0.1 * ngram
            loss_sum += -math.log(float(mixed[y[t]]))
            bump(counts, x[: t + 1].tolist(), int(y[t]))
    return loss_sum
''' + MAIN.format(ttt="eval_val_backoff_mix")

CONTEXT_ONLY_BIAS = HEADER + '''

def eval_val_context_bias(args, model, val_tokens, base_bytes_lut):
    """A logit bias fitted on each window's context positions [:s], which earlier windows scored,
    then applied to the new positions [s:]."""
    loss_sum = torch.zeros((), dtype=torch.float64)
    bias = torch.zeros(1024)
    for ws in range(0, val_tokens.numel() - args.seq_len, 64):
        chunk = val_tokens[ws : ws + args.seq_len + 1].long()
        x, y = chunk[:-1][None], chunk[1:][None]
        with torch.inference_mode():
            logits = model.forward_logits(x)[0].float()
        s = 0 if ws == 0 else args.seq_len - 64
        if s > 0:
            b = bias.clone().requires_grad_(True)
            opt = torch.optim.SGD([b], lr=0.05)
            for _ in range(5):
                opt.zero_grad()
                F.cross_entropy(logits[:s] + b, y[0][:s]).backward()
                opt.step()
            bias = b.detach()
        loss_sum += F.cross_entropy(logits[s:] + bias, y[0][s:], reduction="sum").double()
    return float(loss_sum)
''' + MAIN.format(ttt="eval_val_context_bias")

# -- the idioms of a pipeline packaged into one file (golf/bundle.py): a data-layout record holding
# both shard patterns, a byte-LUT builder reading vocabulary pieces, calibration through the record's
# train field, and score-first TTT that scores through helper functions and an accumulator object

LAYOUT = '''

from dataclasses import dataclass
import sentencepiece as spm


@dataclass(frozen=True)
class DataLayout:
    train_pattern: str
    val_pattern: str
    tokenizer_path: str


def resolve_layout(root):
    return DataLayout(os.path.join(root, "fineweb_train_*.bin"), os.path.join(root, "fineweb_val_*.bin"),
                      os.path.join(root, "tokenizer.model"))
'''

VOCABULARY_BYTE_LUTS = HEADER + LAYOUT + '''

def build_byte_luts(sp):
    """Bytes per vocabulary piece; a leading "▁" is a space byte, kept apart from the piece's text."""
    base_bytes = np.zeros(sp.vocab_size(), dtype=np.int32)
    leading_space = np.zeros(sp.vocab_size(), dtype=bool)
    for token_id in range(sp.vocab_size()):
        piece = sp.id_to_piece(token_id)
        if piece.startswith("▁"):
            leading_space[token_id] = True
            piece = piece[1:]
        base_bytes[token_id] = len(piece.encode("utf-8"))
    return torch.from_numpy(base_bytes), torch.from_numpy(leading_space)


def main():
    args = Hyperparameters()
    layout = resolve_layout(os.environ.get("DATA_PATH", "./data"))
    base_bytes_lut, _ = build_byte_luts(spm.SentencePieceProcessor(model_file=layout.tokenizer_path))
    model = build_model(args)
    train(model, args)
    val_tokens = load_validation_tokens(layout.val_pattern, args.seq_len)
    print(eval_val(args, model, val_tokens, base_bytes_lut))
'''

LAYOUT_TRAIN_CALIBRATION = HEADER + LAYOUT + '''

def calibration_batches(pattern, n, seq_len):
    tokens = torch.from_numpy(np.fromfile(sorted(glob.glob(pattern))[0], dtype=np.uint16)).long()
    return [tokens[i * seq_len : (i + 1) * seq_len][None] for i in range(n)]


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


def calibrate(model, args, layout):
    return collect_hessians(model, calibration_batches(layout.train_pattern, 64, args.seq_len))


def run_pipeline(args, layout):
    model = build_model(args)
    train(model, args)
    quantize(model, calibrate(model, args, layout))
    val_tokens = load_validation_tokens(layout.val_pattern, args.seq_len)
    print(eval_val(args, model, val_tokens, build_luts(args)))


def main():
    run_pipeline(Hyperparameters(), resolve_layout(os.environ.get("DATA_PATH", "./data")))
'''

SCORE_FIRST_TTT_HELPERS = HEADER + '''

class BpbAccumulator:
    def __init__(self):
        self.sums = torch.zeros(3, dtype=torch.float64)

    def add(self, nll, target_ids, base_bytes_lut):
        self.sums[0] += nll.double().sum()
        self.sums[1] += target_ids.numel()
        self.sums[2] += base_bytes_lut[target_ids].double().sum()

    @property
    def val_bpb(self):
        return float(self.sums[0] / self.sums[2] / math.log(2))


def score_chunk(model, val_tokens, start, end, base_bytes_lut, accumulator):
    local = val_tokens[start : end + 1].long()
    x, y = local[:-1][None], local[1:][None]
    nll = F.cross_entropy(model.forward_logits(x).flatten(0, 1), y.flatten(), reduction="none")
    accumulator.add(nll, y, base_bytes_lut)


def train_on_chunk(model, optimizer, val_tokens, start, end, epochs):
    local = val_tokens[start : end + 1].long()
    for _ in range(epochs):
        optimizer.zero_grad()
        model(local[:-1][None], local[1:][None]).backward()
        optimizer.step()


def eval_score_first_ttt(args, model, val_tokens, base_bytes_lut):
    """Each chunk is scored through the helpers first, then trained on; the last chunk never."""
    s0 = BpbAccumulator()
    optimizer = torch.optim.SGD(model.parameters(), lr=args.ttt_lr)
    chunk = 32768
    n_chunks = -(-(val_tokens.numel() - 1) // chunk)
    for c in range(n_chunks):
        start, end = c * chunk, min((c + 1) * chunk, val_tokens.numel() - 1)
        with torch.inference_mode():
            score_chunk(model, val_tokens, start, end, base_bytes_lut, s0)
        if c == n_chunks - 1:
            break
        train_on_chunk(model, optimizer, val_tokens, start, end, args.ttt_epochs)
    return s0.val_bpb


def main():
    args = Hyperparameters()
    model = build_model(args)
    train(model, args)
    val_tokens = load_validation_tokens(args.val_files, args.seq_len)
    print(f"final_ttt val_bpb:{eval_score_first_ttt(args, model, val_tokens, build_luts(args)):.6f}")
'''

PACKAGED_PIPELINE = [VOCABULARY_BYTE_LUTS, LAYOUT_TRAIN_CALIBRATION, SCORE_FIRST_TTT_HELPERS]

ALL = [SCORE_FIRST_TTT, LORA_DOC_TTT, PHASED_TTT_WITH_RANDINT_WARMUP, NO_TTT, ONLINE_NGRAM_HINTS, CONTEXT_ONLY_BIAS,
       PREFIX_KEYED_TILT, OUTPUT_BUFFER_TTT, LAGGED_TTT, SCORE_FIRST_COUNTS, SCORE_FIRST_CHUNK_TABLE,
       SCORE_FIRST_BACKOFF_COUNTS]
