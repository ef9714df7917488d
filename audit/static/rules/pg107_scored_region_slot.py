"""PG107 SLOT-1: per-batch parameters optimised on the scored positions, then used to score them."""

from audit.static.flow_rule import FlowRule
from audit.static.rules import _legal


class ScoredRegionSlot(FlowRule):
    """SLOT optimises a per-batch/per-sample delta or logit bias (`torch.zeros(...,
    requires_grad=True)`) with a loss over the positions it then scores: the target of every scored
    position leaks into its own score (#1240 flip test: 100% violation). The rule flags a backward
    whose loss depends on tensors created with requires_grad in the same function and fed by the
    validation tokens, when the same loop iteration scores them afterwards.

    Precedent: Issue #1336 (open), #1240; Agora "FLAG/HOLD pending #1336"; no SLOT PR was merged.
    Context-only SLOT (loss over positions before the scored span, #1350) was never ruled on.
    """

    code = "PG107"
    rule = "SLOT-1"
    severity = "error"
    confidence = "high"
    references = ("#1229", "#1240", "Issue #1336", "#1319", "#1321")
    summary = "per-batch delta/logit bias optimised on the scored positions, then scoring them"

    VALID = _legal.ALL
    INVALID = [
        _legal.HEADER + '''

def eval_val_sliding_slot(args, model, val_tokens, base_bytes_lut):
    loss_sum = torch.zeros((), dtype=torch.float64)
    for w in range(0, val_tokens.numel() - args.seq_len, 64):
        x = val_tokens[w : w + args.seq_len].long()[None]
        y = val_tokens[w + 1 : w + args.seq_len + 1].long()[None]
        with torch.no_grad():
            hidden = model.forward_hidden(x)
        delta = torch.zeros(1, 1, hidden.size(-1), requires_grad=True)
        logit_bias = torch.zeros(1, 1, 1024, requires_grad=True)
        opt = torch.optim.AdamW([delta, logit_bias], lr=0.01)
        for _ in range(8):
            logits = model.head(hidden + delta) + logit_bias
            slot_loss = F.cross_entropy(logits[0, -64:], y[0, -64:])
            opt.zero_grad()
            slot_loss.backward()
            opt.step()
        with torch.no_grad():
            logits = model.head(hidden + delta) + logit_bias
            nll = F.cross_entropy(logits[0, -64:], y[0, -64:], reduction="none")
            loss_sum += nll.double().sum()
    return float(loss_sum)
''',
    ]
