"""Triton kernel launches on the CPU.

Every launch (`kernel[grid](...)`, JITFunction.run) is intercepted. The kernel is identified by its
source, not its name: the source is normalised (comments, docstrings, blank space dropped) and
hashed for the report, and matched by what it computes against the kernels the records reuse:
  * softcapped cross-entropy forward (per-row loss and logsumexp of z = 2c·sigmoid(2x/c)),
  * its backward (d loss / d logits, scaled by the incoming per-row gradient),
  * a linear layer fused with leaky-ReLU² (forward: c = a·bᵀ and aux = leaky(c)²; backward:
    c = (a·bᵀ)·leaky²'(pre)), the slopes read from the kernel's own constants;
each is run by its torch equivalent, under the run's function modes, so the ledger sees it. Any
other kernel whose source names no half-precision type runs in Triton's interpreter (which
computes zeros in bf16, so never for those), reported to the ledger as an opaque call; else the
launch raises EmulationGap naming the kernel (a replay finding, not a crash).
"""

from __future__ import annotations

import hashlib
import inspect
import io
import re
import textwrap
import tokenize

import torch
import torch.nn.functional as F

from audit.replay.emulation import EmulationGap

_HALF = re.compile(r"\b(bfloat16|float16|fp16|bf16)\b")


def normalised_source(src: str) -> str:
    """The kernel's source without comments, docstrings, decorators and layout: one token per space."""
    out, prev = [], None
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                        tokenize.ENDMARKER):
            continue
        if tok.type == tokenize.STRING and prev in (None, ":"):  # a docstring
            continue
        out.append(tok.string)
        prev = tok.string
    text = " ".join(out)
    return text[text.find("def "):] if "def " in text else text


def kernel_hash(src: str) -> str:
    """The short name of a kernel in the report: a digest of its normalised source."""
    return hashlib.sha1(normalised_source(src).encode()).hexdigest()[:10]


# ----- torch equivalents --------------------------------------------------------------------------
def _softcapped_z(logits, softcap):
    return 2.0 * softcap * torch.sigmoid(logits.float() * (2.0 / softcap))


def softcapped_ce_forward(a: list) -> None:
    """a: logits, losses, lse, targets, (strides, sizes), softcap, ... (the kernel's parameter order)."""
    logits, losses, lse, targets, softcap = a[0], a[1], a[2], a[3], float(a[8])
    z = _softcapped_z(logits, softcap)
    losses.copy_(F.cross_entropy(z, targets.long(), reduction="none"))
    lse.copy_(torch.logsumexp(z, dim=-1))


def softcapped_ce_backward(a: list) -> None:
    """a: grad_logits, grad_losses, lse, logits, targets, (strides, sizes), softcap, ..."""
    grad_logits, grad_losses, lse, logits, targets, softcap = a[0], a[1], a[2], a[3], a[4], float(a[11])
    s = torch.sigmoid(logits.float() * (2.0 / softcap))
    probs = torch.exp(2.0 * softcap * s - lse[:, None])
    probs[torch.arange(probs.shape[0]), targets.long()] -= 1.0
    grad_logits.copy_(grad_losses.float()[:, None] * probs * (4.0 * s * (1.0 - s)))


def _leaky_square_constants(norm: str) -> tuple[float, float, float]:
    """(slope, positive factor, negative factor) of the fused leaky-ReLU² kernel's source."""
    number = r"([0-9]*\.?[0-9]+)"
    fwd = re.search(rf"tl \. where \( (\w+) > 0 , \1 , {number} \* \1 \)", norm)
    bwd = re.search(rf"tl \. where \( (\w+) > 0 , {number} \* \1 , {number} \* \1 \)", norm)
    if not fwd or not bwd:
        raise ValueError("constants not found")
    return float(fwd.group(2)), float(bwd.group(2)), float(bwd.group(3))


def linear_leaky_square(norm: str):
    slope, pos, neg = _leaky_square_constants(norm)

    def run(a: list, forward: bool) -> None:
        """a: a_desc, b_desc, c_desc, aux_desc, ... (tensor descriptors; FORWARD as a keyword)."""
        x, w, c, aux = (d.base for d in a[:4])
        out = (x.float() @ w.float().T).to(c.dtype)
        if forward:
            c.copy_(out)
            aux.copy_(torch.where(out > 0, out, slope * out).square())
        else:
            pre = aux
            c.copy_(out * torch.where(pre > 0, pos * pre, neg * pre))

    return run


def identify(norm: str, params: list[str]):
    """(label, runner(args, kwargs)) for a kernel the records reuse, else None."""
    calls = set(re.findall(r"tl \. (\w+)", norm))
    stores = norm.count("tl . store")
    if {"sigmoid", "exp", "log", "max"} <= calls and stores == 2 and len(params) >= 9:
        return "softcapped CE forward", lambda a, kw: softcapped_ce_forward(a)
    if {"sigmoid", "exp", "where"} <= calls and stores == 1 and len(params) >= 12 and "log" not in calls:
        return "softcapped CE backward", lambda a, kw: softcapped_ce_backward(a)
    if "dot" in calls and "where" in calls and ". store" in norm and ". load" in norm and len(params) >= 5:
        try:
            run = linear_leaky_square(norm)
        except ValueError:
            return None
        forward_name = next((p for p in params if p.upper() == "FORWARD"), None)
        if forward_name is None:
            return None
        return "linear + leaky-ReLU²", lambda a, kw: run(a, bool(kw.get(forward_name, True)))
    return None


def install(record, on_opaque) -> None:
    """Hook every Triton launch, compiled or interpreted (TRITON_INTERPRET=1 makes triton.jit return
    interpreted functions); `on_opaque(label, tensors)` tells the ledger of a kernel it cannot see into."""
    try:
        from triton.runtime.interpreter import InterpretedFunction
        from triton.runtime.jit import JITFunction
    except ImportError:
        return
    interpret = InterpretedFunction.run
    known: dict[int, tuple] = {}

    def resolve(fn):
        if id(fn) not in known:
            src = textwrap.dedent(inspect.getsource(fn))
            norm, params = normalised_source(src), list(inspect.signature(fn).parameters)
            known[id(fn)] = (kernel_hash(src), norm, params, identify(norm, params))
        return known[id(fn)]

    def run(self, *args, grid, warmup, **kwargs):
        h, norm, params, found = resolve(self.fn)
        # detached views: a kernel writes its outputs in place, outside autograd
        bound = [a.detach() if isinstance(a, torch.Tensor) else a
                 for a in list(args) + [kwargs[p] for p in params[len(args):] if p in kwargs]]
        if found is not None:
            label, runner = found
            record.note(f"triton kernel {h} -> torch {label}")
            runner(bound, kwargs)
            return None
        tensors = [a for a in bound if isinstance(a, torch.Tensor)]
        if not _HALF.search(norm) and all(type(a).__name__ != "TensorDescriptor" for a in bound):
            record.note(f"triton kernel {h} interpreted (fp32)")
            on_opaque(f"triton kernel {h}", tensors)
            runner = self if isinstance(self, InterpretedFunction) else InterpretedFunction(self.fn)
            return interpret(runner, *args, grid=grid, warmup=warmup, **kwargs)
        raise EmulationGap("RP071", f"triton kernel {h}", f"Triton kernel {self.fn.__name__} (source hash {h}) has no torch "
                           "equivalent in the replay and works in half precision (the interpreter computes zeros there)")

    JITFunction.run = run
    InterpretedFunction.run = run
