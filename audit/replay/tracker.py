"""The token ledger's recorder: a TorchFunctionMode that follows validation positions through a run.

Every integer tensor that holds validation tokens carries a *position shadow*: an int64 tensor of
the same shape whose entries are the tokens' indices in the validation stream (-1 where an element
is not a validation token). Shadows are created when a tensor is built from numpy/bytes whose
content equals a stretch of the stream (`tag_if_validation`), and are carried through
data-movement ops (slicing, views, cat/stack, gather of tokens, to/clone, setitem, copy_) by
running the same op on the shadow. Any other op that reads a shadowed tensor *consumes* those
positions (an embedding lookup, a comparison); a loss op whose target is shadowed *scores* them:
cross_entropy and nll_loss, or a gather/advanced index of a probability or log-probability row at
the target. A score records the per-position losses, whether autograd was recording, the Python
stack inside the submission, and (for a few probe positions) the full distribution entering the
loss; a gathered distribution is also checked to sum to 1 (C2). The per-target loss tensor the run
gets back carries a *loss shadow* (instance ids) through slices, casts, masks and elementwise maths,
and its instances are marked counted where they reach a sum, a mean or .item(): a sliding window
that computes the loss of every row but sums only its last rows counts only those.

Mutations are optimizer steps (the global optimizer step hooks), in-place writes to the storage of
a parameter or buffer seen in a forward, writes keyed by validation positions into any tensor (a
cache), and version-counter or storage changes noticed between scores. Each is attributed the
positions consumed since the previous mutation: those read under autograd into a floating result
(one a gradient could flow through) for optimizer steps, all of them for direct writes.

The per-op cost is one dict lookup per tensor argument when no shadowed tensor is involved: the
mode never inspects float tensors it has no reason to look at. Per validation position the recorder
keeps only the 16-bit stream and its content index; which event first scored, updated or fed a
position is kept as runs of positions (audit.replay.intervals), so the full validation set costs
about 2 bytes per position plus what each scoring event records.
"""

from __future__ import annotations

import os
import sys
import time
import weakref
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from audit.replay import intervals
from audit.replay.intervals import EMPTY as EMPTY_RUNS, FirstEvents, PositionSet, runs_of

_wall = time.time  # the real clock, kept before the boot module makes the run's clocks virtual

_LIBRARY_DIRS = tuple(
    os.path.dirname(os.path.abspath(m.__file__)) + os.sep for m in (torch, np, weakref, os) if getattr(m, "__file__", None)
) + (os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep,)

# data movement: the output's elements are input elements, so the shadow follows by the same op
_MOVE = {
    "__getitem__", "view", "view_as", "reshape", "reshape_as", "flatten", "unflatten", "squeeze", "unsqueeze",
    "permute", "transpose", "t", "T", "mT", "movedim", "moveaxis", "swapaxes", "swapdims", "narrow", "select",
    "index_select", "gather", "take", "take_along_dim", "cat", "concat", "concatenate", "stack", "hstack",
    "vstack", "roll", "expand", "expand_as", "repeat", "repeat_interleave", "split", "chunk", "unbind",
    "tensor_split", "unfold", "flip", "fliplr", "as_strided", "masked_select", "tile", "broadcast_to",
    "split_with_sizes", "diagonal", "ravel", "clone", "contiguous", "detach", "to", "long", "int", "short",
    "type", "cpu", "cuda", "pin_memory", "__deepcopy__",
}
# same elements, same layout: the input's shadow is the output's (moved to its device)
_SAME = {"clone", "contiguous", "detach", "to", "long", "int", "short", "type", "cpu", "cuda", "pin_memory", "__deepcopy__"}
_INDEXED_WRITES = {"index_put_", "index_add_", "scatter_add_", "scatter_", "scatter_reduce_", "put_", "index_copy_", "index_fill_", "masked_scatter_"}
_AUGMENTED = {f"__i{op}__" for op in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "and", "or", "xor",
                                       "lshift", "rshift", "matmul")}
_FLOAT_CASTS = {"double", "float", "half", "bfloat16"}
# writes whose values come from no input (a re-initialised adapter): not fed by the tokens consumed before
_DATA_FREE_WRITES = {"uniform_", "normal_", "zero_", "random_", "bernoulli_", "exponential_", "geometric_", "cauchy_",
                     "log_normal_"}
_SCORE_CE = {"cross_entropy"}
_SCORE_NLL = {"nll_loss"}

# reading metadata is not reading the tokens
_META = {
    "numel", "nelement", "size", "dim", "ndimension", "ndim", "shape", "dtype", "device", "is_floating_point",
    "element_size", "stride", "storage_offset", "data_ptr", "is_contiguous", "__len__", "requires_grad",
    "is_cuda", "is_leaf", "grad_fn", "untyped_storage", "__hash__", "get_device", "is_complex", "layout",
    "__get__", "_version", "names", "is_sparse", "is_inference",
} | {
    # in place, but on the tensor's autograd flags or names, never its values: not a write
    "requires_grad_", "retain_grad", "detach_", "rename_",
}

(K_OTHER, K_MOVE, K_GETITEM, K_GATHER, K_SETITEM, K_COPY, K_INPLACE, K_INDEXED, K_CE, K_NLL, K_META, K_SELECT,
 K_OPAQUE) = range(13)
_TORCH_NAMESPACES = {"aten", "prims", "_c10d_functional", "c10d", "quantized", "profiler"}


def _classify(func) -> int:
    if isinstance(func, (torch._ops.OpOverloadPacket, torch._ops.OpOverload)):
        # a custom op (torch.library): its body runs outside the mode
        namespace = getattr(func, "namespace", None) or str(func).split(".")[0]
        return K_OTHER if namespace in _TORCH_NAMESPACES else K_OPAQUE
    name = getattr(func, "__name__", "")
    if name in _META or getattr(getattr(func, "__self__", None), "__name__", "") in _META:
        return K_META
    if name == "__getitem__":
        return K_GETITEM
    if name in ("where", "masked_fill"):
        return K_SELECT
    if name in ("gather", "take_along_dim"):
        return K_GATHER
    if name == "__setitem__":
        return K_SETITEM
    if name == "copy_":
        return K_COPY
    if name in _INDEXED_WRITES:
        return K_INDEXED
    if name in _SCORE_CE:
        return K_CE
    if name in _SCORE_NLL:
        return K_NLL
    if name in _MOVE:
        return K_MOVE
    if (name.endswith("_") and not name.startswith("_")) or name in _AUGMENTED:
        return K_INPLACE
    return K_OTHER


def _written(kind: int, args, kwargs):
    """The tensor an in-place op writes (nn.init functions pass it by keyword), or None."""
    if kind < K_SETITEM or kind > K_INDEXED:
        return None
    dst = args[0] if args else kwargs.get("tensor", kwargs.get("input"))
    return dst if isinstance(dst, torch.Tensor) else None


def _may_carry_grad(out) -> bool:
    return any(isinstance(o, torch.Tensor) and (o.is_floating_point() or o.is_complex())
               for o in (out if type(out) in (list, tuple) else (out,)))


def _shares_storage(a, b) -> bool:
    """Whether two tensors are views of one storage (what an in-place write to one does to the other)."""
    try:
        return isinstance(a, torch.Tensor) and a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()
    except Exception:  # a tensor without storage (meta, fake): treat as a copy
        return False


def _is_int(t) -> bool:
    return isinstance(t, torch.Tensor) and not t.is_floating_point() and not t.is_complex() and t.dtype != torch.bool


@dataclass
class Site:
    """Where in the submission an event happened: its frames (file, line, function), outermost first."""

    frames: tuple

    @property
    def key(self) -> tuple:
        return tuple((f, line) for f, line, _ in self.frames)


@dataclass
class LedgerData:
    """What one process recorded (pickled by the boot module, read by the auditor)."""

    rank: int = 0
    world: int = 1
    stream_len: int = 0
    tagged: list = field(default_factory=list)  # (start, length, how) of each tagged load
    scores: list = field(default_factory=list)  # dicts: seq, t, positions, losses, grad, kind, site
    mutations: list = field(default_factory=list)  # dicts: seq, t, kind, name, site, fed, fed_grad, unscored...
    lookups: list = field(default_factory=list)  # dicts: seq, site, table_len, dtype (target-indexed tables)
    c2: list = field(default_factory=list)  # dicts: seq, site, rows, worst (distributions that do not sum to 1)
    dists: dict = field(default_factory=dict)  # position -> list of (seq, log-distribution)
    network: list = field(default_factory=list)  # dicts: host, port, site, t
    untraced_losses: int = 0  # loss calls after the val tokens were loaded whose targets carried no shadow
    untraced_targets: int = 0  # the target elements of those calls made without autograd
    opaque: dict = field(default_factory=dict)  # label -> {calls, val_calls, val_positions}: calls the mode cannot see into
    emulation: list = field(default_factory=list)  # the CUDA-emulation shims applied (audit.replay.emulation)
    gaps: list = field(default_factory=list)  # dicts: code, what, detail (what the emulation could not provide)
    bytes_per_position: float = 0.0  # the recorder's memory per validation position (stream, content index, first-event tables)
    fingerprint: float | None = None  # sum of the tracked parameters when the first score was made
    # first-event tables (audit.replay.intervals): per position, the first update / gradient-fed update / score
    first_update_seq: dict | None = None
    first_grad_update_seq: dict | None = None
    first_score_seq: dict | None = None
    started: float = 0.0
    finished: float = 0.0


class Tracker(TorchFunctionMode):
    """Records the ledger of one process. Enter it (globally, or with `with`) before the run."""

    def __init__(self, stream: np.ndarray, submission_files: tuple[str, ...] = (), capture: tuple[int, ...] = (),
                 rank: int = 0, world: int = 1, starts: list[int] | tuple[int, ...] = (0,)):
        super().__init__()
        self.starts = [int(x) for x in starts]
        stream = np.asarray(stream)
        # token ids of every tokenizer here fit 16 bits: half the memory of the run's own int32 copy
        narrow = stream.size and 0 <= stream.min() and stream.max() < (1 << 16)
        self.stream = np.ascontiguousarray(stream, dtype=np.uint16 if narrow else np.int32)
        n = int(self.stream.size)
        self.submission_files = tuple(os.path.abspath(f) for f in submission_files)
        self.capture = frozenset(int(p) for p in capture)
        self.ledger = LedgerData(rank=rank, world=world, stream_len=n, started=_wall())
        self._first_update, self._first_grad_update, self._first_score = FirstEvents(), FirstEvents(), FirstEvents()
        self._shadows: dict[int, tuple] = {}
        self._kinds: dict = {}
        self._seq = 0
        self._consumed_any = PositionSet()  # validation positions read since the last update
        self._consumed_grad = PositionSet()  # ... of them, with autograd on
        self._reset_consumed = False
        self._tracked: dict[int, tuple] = {}  # storage ptr -> (weakref, version, data_ptr)
        self._seen_modules: "weakref.WeakSet" = weakref.WeakSet()
        self._in_step = 0
        self._forward_depth = 0  # module forwards under way (a top-level forward starts at 0)
        self._content_index = None
        self._hooks = []
        self._instances = 0  # scored (position, loss) instances so far
        # parameters a validation-fed optimizer step changed: id -> (weakref, the steps' optimizer serials);
        # reading one records those serials on the next event, so the analysis can tell an update that
        # reached a score from one on a throw-away adapter (a compile warm-up) that nothing read again
        self._watched: dict[int, tuple] = {}
        self._reads: set = set()
        self._optimizers: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
        self._optimizer_count = 0  # serials are never reused, though optimizers are freed
        self._reduced = np.zeros(1 << 16, dtype=bool)  # per instance: did it reach a sum

    # ----- set-up -------------------------------------------------------------------------------
    def install_hooks(self) -> None:
        """Global optimizer-step and module-forward hooks (removed by remove_hooks)."""
        from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
        from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

        self._hooks = [
            register_optimizer_step_pre_hook(self._pre_step),
            register_optimizer_step_post_hook(self._post_step),
            register_module_forward_pre_hook(self._module_pre_forward),
            register_module_forward_hook(self._module_post_forward, always_call=True),
        ]

    def remove_hooks(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []

    # ----- tagging the validation tokens ----------------------------------------------------------
    def tag_if_validation(self, tensor, how: str = "tensor"):
        """If `tensor` (1-D integers) equals a stretch of the validation stream, give it a shadow."""
        if not _is_int(tensor) or tensor.dim() != 1 or tensor.numel() < 2 or id(tensor) in self._shadows:
            return tensor
        n = tensor.numel()
        if n > self.stream.size:
            return tensor
        values = tensor.detach().to("cpu", torch.int64).numpy()
        start = self._find_in_stream(values)
        if start is None:
            return tensor
        shadow = torch.arange(start, start + n, dtype=torch.int64, device=tensor.device)
        self._register(tensor, shadow)
        self.ledger.tagged.append((int(start), int(n), how))
        return tensor

    # Streams longer than this get a sampled content index: the 4-grams starting at every
    # INDEX_STRIDE-th position, 12/INDEX_STRIDE bytes per position instead of 12
    FULL_INDEX_UP_TO = 1 << 24
    INDEX_STRIDE = 64

    def _find_in_stream(self, values: np.ndarray) -> int | None:
        """Where `values` starts in the stream (None if nowhere): tried at the shard starts and at the
        content index's hits. With a sampled index a stretch is found when it holds a sampled
        position, so one shorter than INDEX_STRIDE + 3 tokens may be missed on a full-size stream."""
        n = values.size
        probe = min(n, 16)
        candidates = []
        if self._content_index is None:
            stride = 1 if self.stream.size <= self.FULL_INDEX_UP_TO else self.INDEX_STRIDE
            keys = self._gram_keys(self.stream, stride)
            order = np.argsort(keys, kind="stable").astype(np.int32)
            self._content_index = (keys[order], order, stride)
        keys, order, stride = self._content_index
        if n >= 4:
            offsets = np.arange(min(stride, n - 3))
            query = self._gram_keys(values[: offsets[-1] + 4])
            lo, hi = np.searchsorted(keys, query), np.searchsorted(keys, query, side="right")
            for o, a, b in zip(offsets.tolist(), lo.tolist(), hi.tolist()):
                candidates += [int(i) * stride - o for i in order[a:b][:64] if int(i) * stride >= o]
        for start in candidates + self.starts:
            start = int(start)
            if start + n <= self.stream.size and np.array_equal(self.stream[start:start + probe], values[:probe]):
                if np.array_equal(self.stream[start:start + n], values):
                    return start
        return None

    @staticmethod
    def _gram_keys(tokens: np.ndarray, stride: int = 1) -> np.ndarray:
        """The 16-bit-packed keys of the 4-grams starting at every `stride`-th position (strided
        slices: a sampled index never holds a full-length temporary)."""
        grams = max(tokens.size - 3, 0)
        key = np.zeros(-(-grams // stride), dtype=np.uint64)
        for k in range(4):
            key = (key << np.uint64(16)) | tokens[k:k + grams:stride].astype(np.uint64)
        return key

    def _register(self, tensor, shadow, loss: bool = False) -> None:
        key = id(tensor)
        shadows = self._shadows
        self._shadows[key] = (weakref.ref(tensor, lambda _r, k=key: shadows.pop(k, None)), shadow, loss)

    def _shadow_of(self, t):
        """The position shadow of a token tensor (None for anything else)."""
        entry = self._shadows.get(id(t))
        if entry is not None and not entry[2] and entry[0]() is t:
            return entry[1]
        return None

    def _loss_of(self, t):
        """The instance ids of a tensor of recorded losses (None for anything else)."""
        entry = self._shadows.get(id(t))
        if entry is not None and entry[2] and entry[0]() is t:
            return entry[1]
        return None

    # ----- the mode -----------------------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        if kwargs is None:
            kwargs = {}
        kind = self._kinds.get(func)
        if kind is None:
            kind = self._kinds[func] = _classify(func)
        if self._watched and not self._in_step and kind != K_META:
            self._note_reads(func, kind, args, kwargs)
        shadows = self._shadows
        hit = False
        if shadows:
            for a in args:
                if id(a) in shadows:
                    hit = True
                    break
                if type(a) in (list, tuple):
                    for b in a:
                        if id(b) in shadows:
                            hit = True
                            break
                    if hit:
                        break
            if not hit and kwargs:
                for a in kwargs.values():
                    if id(a) in shadows:
                        hit = True
                        break
        if kind == K_OPAQUE:
            out = func(*args, **kwargs)
            with torch._C.DisableTorchFunction():
                self.opaque_call(str(func), self._positions_in(args, kwargs) if hit else np.zeros(0, dtype=np.int64))
            return out
        if not hit or kind == K_META:
            written = _written(kind, args, kwargs) if not self._in_step else None
            if written is not None:
                self._check_direct_write(func, (written,))
            if kind == K_CE or kind == K_NLL:
                self._untraced_loss(args, kwargs)
            out = func(*args, **kwargs)
            if written is not None:
                self._resync(written)
            if kind == K_COPY and args and id(args[0]) in shadows:
                shadows.pop(id(args[0]), None)  # overwritten by untracked values
            return out
        return self._slow(func, kind, args, kwargs)

    # ----- ops that touch shadowed tensors ---------------------------------------------------------
    def _slow(self, func, kind, args, kwargs):
        written = _written(kind, args, kwargs) if not self._in_step else None
        if written is not None:
            self._check_direct_write(func, (written,))
        out = func(*args, **kwargs)
        if written is not None:
            self._resync(written)
        # only a floating result can carry a gradient: finding document starts by comparing the
        # tokens, under autograd, does not feed the next optimizer step
        grad = torch.is_grad_enabled() and not torch.is_inference_mode_enabled() and _may_carry_grad(out)
        with torch._C.DisableTorchFunction():
            losses = self._tagged_args(args, kwargs, loss=True)
            if losses:
                self._loss_flow(func, kind, args, kwargs, out, losses)
            if not self._tagged_args(args, kwargs, loss=False):
                return out
            if kind == K_MOVE:
                self._propagate(func, args, kwargs, out, grad)
            elif kind == K_GETITEM:
                self._getitem(args, out, grad)
            elif kind == K_GATHER:
                self._gather(func, args, kwargs, out, grad)
            elif kind == K_SELECT:
                self._select(func, args, kwargs, out, grad)
            elif kind == K_SETITEM:
                self._setitem(args, grad)
            elif kind == K_COPY:
                self._copy(args, grad)
            elif kind == K_CE or kind == K_NLL:
                self._loss(kind, args, kwargs, out, grad)
            elif kind == K_INDEXED:
                positions = self._positions_in(args, kwargs)
                self._consume(positions, grad)
                target = args[0] if args else None
                if isinstance(target, torch.Tensor) and self._shadow_of(target) is None and getattr(func, "__name__", "").endswith("_"):
                    self._mutation("indexed-write", getattr(func, "__name__", "?"), extra=positions, grad_fed=grad)
            else:
                self._consume(self._positions_in(args, kwargs), grad)
                if kind == K_INPLACE and args and self._shadow_of(args[0]) is not None and id(args[0]) in self._shadows:
                    self._shadows.pop(id(args[0]), None)  # arithmetic in place: no longer tokens
        return out

    def _tagged_args(self, args, kwargs, loss: bool) -> list:
        """(tensor, shadow) of the arguments carrying a loss (or a position) shadow."""
        get = self._loss_of if loss else self._shadow_of
        found = []
        for a in list(args) + list(kwargs.values()):
            for b in (a if type(a) in (list, tuple) else (a,)):
                if isinstance(b, torch.Tensor):
                    ids = get(b)
                    if ids is not None:
                        found.append((b, ids))
        return found

    # ----- where the recorded losses go: which of them reach a sum ---------------------------------
    def _loss_flow(self, func, kind, args, kwargs, out, found) -> None:
        """Carry instance ids through moves and elementwise maths; mark them counted at a reduction.

        A loss tensor sliced, cast, masked (multiplied by a 0/1 mask, where, masked_fill) or mapped
        elementwise keeps its instance ids; summed, averaged, read with .item()/.tolist(), or
        folded into a smaller tensor by any other op, its instances are counted ("reduced")."""
        name = getattr(func, "__name__", "")
        data = args[0] if args else None
        if kind == K_SETITEM:
            dst, index, value = args[0], args[1], args[2]
            ids = self._loss_of(value) if isinstance(value, torch.Tensor) else None
            if ids is not None and dst.is_floating_point():
                dids = self._loss_of(dst)
                if dids is None:
                    dids = torch.full(dst.shape, -1, dtype=torch.int64, device=dst.device)
                    self._register(dst, dids, loss=True)
                dids[index] = ids.to(dids.device)
            return
        outs = out if type(out) in (list, tuple) else (out,)
        if not all(isinstance(o, torch.Tensor) for o in outs):
            self._reduce(found)  # .item(), .tolist(), float(...)
            return
        if kind in (K_MOVE, K_GETITEM, K_GATHER) or name in _FLOAT_CASTS:
            sdata = self._loss_of(data) if isinstance(data, torch.Tensor) else None
            if type(data) in (list, tuple):
                sdata = type(data)(self._loss_of(t) if self._loss_of(t) is not None else
                                   torch.full(t.shape, -1, dtype=torch.int64, device=t.device) for t in data)
            if sdata is None:
                return  # a loss used as an index or similar: not a sum
            if name in _SAME or name in _FLOAT_CASTS:
                res = (sdata,)
            else:
                skw = {k: v for k, v in kwargs.items() if k not in ("out", "dtype", "memory_format", "device", "non_blocking")}
                try:
                    res = func(sdata, *args[1:], **skw)
                except Exception:
                    self._reduce(found)
                    return
                res = tuple(res) if type(res) in (list, tuple) else (res,)
            for o, r in zip(outs, res):
                if isinstance(r, torch.Tensor) and r.shape == o.shape:
                    self._register(o, r.to(o.device), loss=True)
            return
        if kind == K_SELECT:
            self._select_ids(func, args, out)
            return
        largest = max(ids.numel() for _, ids in found)
        if out.numel() < largest:
            self._reduce(found)  # sum, mean, or anything else that folds the losses together
            return
        ids = found[0][1]
        try:
            ids = ids.to(out.device).expand(out.shape) if ids.shape != out.shape else ids.to(out.device)
        except RuntimeError:
            self._reduce(found)
            return
        if name in ("mul", "__mul__", "__rmul__", "multiply", "mul_", "__imul__"):
            other = next((a for a in args if isinstance(a, torch.Tensor) and a is not found[0][0]), None)
            if other is not None:  # a 0/1 mask drops what it zeroes
                ids = torch.where((other != 0).to(out.device).expand(out.shape), ids, -1)
        self._register(out, ids.clone() if ids.data_ptr() == found[0][1].data_ptr() else ids, loss=True)

    def _select_ids(self, func, args, out) -> None:
        name = getattr(func, "__name__", "")
        if name == "masked_fill":
            cond, a, b = ~args[1], args[0], None
        elif len(args) == 3 and isinstance(args[1], torch.Tensor) and args[1].dtype == torch.bool and args[0].dtype != torch.bool:
            cond, a, b = args[1], args[0], args[2]
        elif len(args) == 3:
            cond, a, b = args
        else:
            return

        def ids(x):
            got = self._loss_of(x) if isinstance(x, torch.Tensor) else None
            return got if got is not None else torch.full((), -1, dtype=torch.int64, device=out.device)

        merged = torch.where(cond.to(out.device), ids(a).to(out.device), ids(b).to(out.device))
        if merged.shape == out.shape:
            self._register(out, merged, loss=True)

    def _reduce(self, found) -> None:
        for _, ids in found:
            flat = ids.reshape(-1)
            hit = flat[flat >= 0].cpu().numpy()
            if hit.size:
                self._reduced[hit] = True

    def _positions_in(self, args, kwargs) -> np.ndarray:
        found = []
        for a in list(args) + list(kwargs.values()):
            items = a if type(a) in (list, tuple) else (a,)
            for b in items:
                s = self._shadow_of(b) if isinstance(b, torch.Tensor) else None
                if s is not None:
                    p = s.reshape(-1).cpu().numpy()
                    found.append(p[p >= 0])
        if not found:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate(found)

    def _consume(self, positions: np.ndarray, grad: bool) -> None:
        if positions.size == 0:
            return
        if self._reset_consumed:
            self._consumed_any, self._consumed_grad, self._reset_consumed = PositionSet(), PositionSet(), False
        self._consumed_any.add(positions)
        if grad:
            self._consumed_grad.add(positions)

    def _propagate(self, func, args, kwargs, out, grad) -> None:
        name = getattr(func, "__name__", "")
        data = args[0] if args else None
        if type(data) in (list, tuple):
            if not any(self._shadow_of(t) is not None for t in data if isinstance(t, torch.Tensor)):
                self._consume(self._positions_in(args, kwargs), grad)
                return
            sdata = type(data)(self._shadow_or_blank(t) if isinstance(t, torch.Tensor) else t for t in data)
        else:
            s = self._shadow_of(data) if isinstance(data, torch.Tensor) else None
            if s is None:
                self._consume(self._positions_in(args, kwargs), grad)
                return
            sdata = s
        outs = out if type(out) in (list, tuple) else (out,)
        if not all(_is_int(o) for o in outs):
            self._consume(self._positions_in(args, kwargs), grad)  # tokens turned into floats: a use
            return
        if name in _SAME:
            # the shadow aliases the input's where the output does (to/detach of the same tensor) and
            # is a copy where the output is (clone): a write into a clone must not unmark its source
            if sdata.shape != outs[0].shape:
                souts = None
            elif _shares_storage(data, outs[0]):
                souts = (sdata.to(outs[0].device),)
            else:
                souts = (sdata.to(outs[0].device, copy=True),)
        else:
            skw = {k: v for k, v in kwargs.items() if k not in ("out", "dtype", "memory_format", "device", "non_blocking")}
            try:
                res = func(sdata, *args[1:], **skw)
            except Exception:
                res = None
            souts = None if res is None else (tuple(res) if type(res) in (list, tuple) else (res,))
        if souts is None or len(souts) != len(outs):
            return
        for o, so in zip(outs, souts):
            if isinstance(so, torch.Tensor) and so.shape == o.shape:
                self._register(o, so.to(o.device))

    def _select(self, func, args, kwargs, out, grad) -> None:
        """where(cond, a, b) / a.where(cond, b) / a.masked_fill(mask, v): tokens from a or b, -1 for fills."""
        name = getattr(func, "__name__", "")
        if name == "masked_fill":
            data, mask = args[0], args[1]
            sources = (None, data, None)
            cond = ~mask if isinstance(mask, torch.Tensor) else None
        elif len(args) == 3 and isinstance(args[1], torch.Tensor) and args[1].dtype == torch.bool and isinstance(args[0], torch.Tensor) and args[0].dtype != torch.bool:
            cond, sources = args[1], (None, args[0], args[2])  # Tensor.where(self, cond, other)
        elif len(args) == 3:
            cond, sources = args[0], args
        else:
            cond = None
        if cond is None or not _is_int(out):
            self._consume(self._positions_in(args, kwargs), grad)
            return
        a, b = sources[1], sources[2]
        sa = self._shadow_or_blank(a) if isinstance(a, torch.Tensor) else torch.full((), -1, dtype=torch.int64, device=out.device)
        sb = self._shadow_or_blank(b) if isinstance(b, torch.Tensor) else torch.full((), -1, dtype=torch.int64, device=out.device)
        shadow = torch.where(cond.to(out.device), sa.to(out.device), sb.to(out.device))
        if shadow.shape == out.shape:
            self._register(out, shadow)

    def _shadow_or_blank(self, t):
        s = self._shadow_of(t)
        if s is not None:
            return s
        return torch.full(t.shape, -1, dtype=torch.int64, device=t.device)

    def _getitem(self, args, out, grad) -> None:
        data, index = args[0], args[1]
        s = self._shadow_of(data)
        idx_items = index if type(index) is tuple else (index,)
        if s is not None:
            if _is_int(out):
                self._register(out, s[index].to(out.device))
            return
        # the index is shadowed: a lookup of a table by tokens, or a loss at the targets
        last = idx_items[-1] if idx_items else None
        target_shadow = self._shadow_of(last) if isinstance(last, torch.Tensor) else None
        if (target_shadow is not None and data.is_floating_point() and data.dim() >= 2
                and len(idx_items) == data.dim() and all(isinstance(i, torch.Tensor) for i in idx_items)):
            # data[rows..., targets]: read each row of a distribution at its target
            *lead, tgt = torch.broadcast_tensors(*idx_items)
            flat = torch.zeros_like(tgt, dtype=torch.int64)
            for dim_size, i in zip(data.shape[:-1], lead):
                flat = flat * dim_size + i.long()
            rows = data.reshape(-1, data.shape[-1])[flat.reshape(-1)]
            self._score_rows("index", rows, target_shadow.expand(tgt.shape).reshape(-1), out, grad)
            return
        positions = self._positions_in(args, {})
        self._consume(positions, grad)
        self._lookup(data)

    def _gather(self, func, args, kwargs, out, grad) -> None:
        data = args[0] if args else kwargs.get("input")
        s = self._shadow_of(data) if isinstance(data, torch.Tensor) else None
        if s is not None:
            self._propagate(func, args, kwargs, out, grad)
            return
        name = getattr(func, "__name__", "")
        if name == "gather":
            dim = args[1] if len(args) > 1 else kwargs.get("dim")
            index = args[2] if len(args) > 2 else kwargs.get("index")
        else:
            index = args[1] if len(args) > 1 else kwargs.get("indices")
            dim = args[2] if len(args) > 2 else kwargs.get("dim")
        ishadow = self._shadow_of(index) if isinstance(index, torch.Tensor) else None
        if (ishadow is not None and isinstance(dim, int) and data.is_floating_point() and data.dim() >= 2
                and index.dim() == data.dim() and index.shape[dim] == 1):
            moved = data.movedim(dim, -1)
            rows = moved.reshape(-1, moved.shape[-1])
            tgt = index.movedim(dim, -1).reshape(-1)
            if rows.shape[0] == tgt.numel():
                self._score_rows("gather", rows, ishadow.movedim(dim, -1).reshape(-1), out, grad)
                return
        self._consume(self._positions_in(args, kwargs), grad)
        self._lookup(data)

    def _setitem(self, args, grad) -> None:
        dst, index, value = args[0], args[1], args[2]
        vs = self._shadow_of(value) if isinstance(value, torch.Tensor) else None
        ds = self._shadow_of(dst)
        if _is_int(dst) and (vs is not None or ds is not None):
            if ds is None:
                ds = torch.full(dst.shape, -1, dtype=torch.int64, device=dst.device)
                self._register(dst, ds)
            ds[index] = vs.to(ds.device) if vs is not None else -1
            return
        positions = self._positions_in(args, {})
        self._consume(positions, grad)
        if not _is_int(dst) or ds is None:
            self._mutation("indexed-write", "__setitem__", extra=positions, grad_fed=grad)

    def _copy(self, args, grad) -> None:
        dst, src = args[0], args[1]
        ss = self._shadow_of(src) if isinstance(src, torch.Tensor) else None
        if ss is not None and _is_int(dst):
            self._register(dst, ss.expand(dst.shape).to(dst.device).clone())
            return
        if ss is None:
            self._shadows.pop(id(dst), None)
            return
        self._consume(self._positions_in(args, {}), grad)

    def _untraced_loss(self, args, kwargs) -> None:
        """A loss call whose targets carry no shadow, once validation tokens have been scored: counted,
        with its target elements when made without autograd, as an evaluation is (a few dummy calls,
        or training steps on training data, cannot be a scoring pass over the whole set)."""
        if not self.ledger.scores:
            return
        target = args[1] if len(args) > 1 else kwargs.get("target")
        self.ledger.untraced_losses += 1
        if isinstance(target, torch.Tensor) and not (torch.is_grad_enabled() and not torch.is_inference_mode_enabled()):
            self.ledger.untraced_targets += int(target.numel())

    def _loss(self, kind, args, kwargs, out, grad) -> None:
        inp = args[0] if args else kwargs.get("input")
        target = args[1] if len(args) > 1 else kwargs.get("target")
        ts = self._shadow_of(target) if isinstance(target, torch.Tensor) else None
        if ts is None or not isinstance(inp, torch.Tensor) or not inp.is_floating_point():
            self._consume(self._positions_in(args, kwargs), grad)
            self._untraced_loss(args, kwargs)
            return
        opts = {k: v for k, v in kwargs.items() if k in ("weight", "ignore_index", "label_smoothing")}
        for i, key in enumerate(("weight", "size_average", "ignore_index", "reduce", "reduction", "label_smoothing")[: max(0, len(args) - 2)]):
            if key in ("weight", "ignore_index", "label_smoothing"):
                opts[key] = args[2 + i]
        reduction = kwargs.get("reduction", args[6] if len(args) > 6 else "mean")
        fn = F.cross_entropy if kind == K_CE else F.nll_loss
        if reduction == "none":
            per = out
        else:
            per = fn(inp, target, reduction="none", **opts)
        rows = inp.movedim(1, -1).reshape(-1, inp.shape[1]) if inp.dim() > 1 else inp.reshape(1, -1)
        ignore = opts.get("ignore_index", -100)
        keep = target.reshape(-1) != ignore
        self._record_score("ce" if kind == K_CE else "nll", ts.reshape(-1), per.reshape(-1), keep, rows,
                           "logits" if kind == K_CE else "logprobs", grad, out if reduction == "none" else None)

    def _score_rows(self, kind, rows, positions, gathered, grad) -> None:
        lo, hi = float(rows.min()), float(rows.max())
        if lo >= 0.0:  # probabilities, normalised or not (C2 checks the sums)
            space, losses = "probs", -torch.log(gathered.reshape(-1).double())
        elif hi <= 1e-6:
            space, losses = "logprobs", -gathered.reshape(-1).double()
        else:  # raw logits read at the target (e.g. a hand-written logsumexp - logit): not a score
            self._consume(positions[positions >= 0].cpu().numpy(), grad)
            return
        self._record_score(kind, positions, losses, None, rows, space, grad, gathered)

    def _note_reads(self, func, kind, args, kwargs) -> None:
        """Which validation-fed updates an op reads (a watched parameter among its arguments). A
        re-initialisation from no input (zero_, normal_) erases them instead; setting an attribute
        (p.grad = None) reads nothing."""
        name = getattr(func, "__name__", "")
        if name == "__set__":
            return
        watched = self._watched
        if kind == K_INPLACE and name in _DATA_FREE_WRITES:
            dst = args[0] if args else kwargs.get("tensor")
            entry = watched.get(id(dst))
            if entry is not None and entry[0]() is dst:
                del watched[id(dst)]
            return
        for a in list(args) + list(kwargs.values()):
            for b in (a if type(a) in (list, tuple) else (a,)):
                entry = watched.get(id(b))
                if entry is not None and entry[0]() is b:
                    self._reads |= entry[1]

    def _take_reads(self) -> list:
        """The optimizer serials read since the previous event (then forgotten)."""
        reads, self._reads = sorted(self._reads), set()
        return reads

    def _watch(self, optimizer, params) -> int:
        """Watch the parameters a validation-fed step of `optimizer` changed; returns its serial."""
        serial = self._optimizers.get(optimizer)
        if serial is None:
            self._optimizer_count += 1
            serial = self._optimizers[optimizer] = self._optimizer_count
        watched = self._watched
        for p in params:
            entry = watched.get(id(p))
            if entry is None or entry[0]() is not p:
                key = id(p)
                entry = watched[key] = (weakref.ref(p, lambda _r, k=key: watched.pop(k, None)), set())
            entry[1].add(serial)
        return serial

    def _record_score(self, kind, positions, losses, keep, rows, space, grad, output) -> None:
        """Record one scoring op. `output` is the per-target tensor the run gets back (its loss
        instances are followed to the sums that count them), or None for a reduced loss."""
        pos = positions.detach().cpu().numpy()
        mask = pos >= 1  # the first token of the stream is never a target
        if keep is not None:
            mask &= keep.cpu().numpy()
        self._consume(pos[pos >= 0], grad)
        if not mask.any():
            return
        self._check_versions()
        if self.ledger.fingerprint is None:
            self.ledger.fingerprint = self._fingerprint()
        seq = self._next_seq()
        site = self._site()
        sel = np.flatnonzero(mask)
        p = pos[sel]
        values = losses.detach().reshape(-1).double().cpu().numpy()[sel]
        led = self.ledger
        self._first_score.mark(runs_of(p), seq)
        base = self._new_instances(p.size)
        if output is None:
            self._reduced[base:base + p.size] = True
        else:
            ids = torch.full((output.numel(),), -1, dtype=torch.int64)
            ids[torch.from_numpy(sel)] = torch.arange(base, base + p.size, dtype=torch.int64)
            self._register(output, ids.reshape(output.shape).to(output.device), loss=True)
        led.scores.append(dict(seq=seq, t=_wall(), positions=p.astype(np.int64), losses=values, grad=grad,
                               kind=kind, site=site, instance_base=base, reads=self._take_reads()))
        if space != "logits":
            self._check_normalised(rows, space, sel, seq, site)
        if self.capture:
            hits = [i for i, q in enumerate(p.tolist()) if q in self.capture]
            for i in hits:
                row = rows[int(sel[i])].detach().double()
                logd = torch.log_softmax(row, -1) if space == "logits" else (torch.log(row) if space == "probs" else row)
                led.dists.setdefault(int(p[i]), []).append((seq, logd.cpu().numpy()))

    def _new_instances(self, n: int) -> int:
        base = self._instances
        self._instances += n
        if self._instances > self._reduced.size:
            grown = np.zeros(max(self._instances, 2 * self._reduced.size), dtype=bool)
            grown[: self._reduced.size] = self._reduced
            self._reduced = grown
        return base

    def _check_normalised(self, rows, space, sel, seq, site) -> None:
        picked = rows[torch.as_tensor(sel, device=rows.device)].double()
        total = picked.sum(-1) if space == "probs" else torch.logsumexp(picked, -1).exp()
        dev = (total - 1.0).abs()
        bad = dev > 1e-3
        if bool(bad.any()):
            self.ledger.c2.append(dict(seq=seq, site=site, rows=int(bad.sum()), of=int(dev.numel()),
                                       worst=float(total[dev.argmax()]), space=space))

    def _lookup(self, table) -> None:
        if isinstance(table, torch.Tensor) and not table.requires_grad and len(self.ledger.lookups) < 1000:
            self.ledger.lookups.append(dict(seq=self._seq, site=self._site(), table_len=int(table.shape[0]) if table.dim() else 0,
                                            dtype=str(table.dtype)))

    # ----- mutations ----------------------------------------------------------------------------
    def _module_pre_forward(self, module, args):
        if self._forward_depth == 0:
            # a parameter changed unseen (outside the mode) is charged with what was read before this
            # forward, not with the batch the forward is about to read and score
            self._check_versions()
        self._forward_depth += 1
        if module in self._seen_modules:
            return None
        for m in module.modules():
            self._seen_modules.add(m)
        for t in list(module.parameters()) + list(module.buffers()):
            self._track(t)
        return None

    def _module_post_forward(self, module, args, output):
        self._forward_depth = max(0, self._forward_depth - 1)
        return None

    def _track(self, t) -> None:
        try:
            key = t.untyped_storage().data_ptr()
        except Exception:
            return
        if key:
            self._tracked[key] = (weakref.ref(t), t._version, t.data_ptr())

    def _check_direct_write(self, func, args) -> None:
        dst = args[0]
        if type(dst) in (list, tuple) or not isinstance(dst, torch.Tensor):
            return
        try:
            key = dst.untyped_storage().data_ptr()
        except Exception:
            return
        entry = self._tracked.get(key)
        if entry is None:
            return
        name = getattr(func, "__name__", "?")
        if name not in _DATA_FREE_WRITES:
            grad_fed = bool(self._consumed_grad) and not self._reset_consumed
            self._mutation("write", name, grad_fed=grad_fed)

    def _resync(self, dst) -> None:
        """After a seen write: the tracked tensor's version as it is now (one call may bump it more
        than once, e.g. nn.init.uniform_ seen both as itself and as Tensor.uniform_)."""
        if type(dst) in (list, tuple) or not isinstance(dst, torch.Tensor):
            return
        try:
            key = dst.untyped_storage().data_ptr()
        except Exception:
            return
        entry = self._tracked.get(key)
        t = entry[0]() if entry is not None else None
        if t is not None:
            self._tracked[key] = (entry[0], t._version, t.data_ptr())

    def _fingerprint(self) -> float:
        """A checksum of every tracked parameter and buffer (to tell whether two runs evaluate the same model)."""
        total = 0.0
        for ref, _, _ in self._tracked.values():
            t = ref()
            if t is not None and t.is_floating_point():
                total += float(t.detach().double().sum())
        return total

    def _check_versions(self) -> None:
        changed = False
        for key, (ref, version, ptr) in list(self._tracked.items()):
            t = ref()
            if t is None:
                del self._tracked[key]
                continue
            if t._version != version or t.data_ptr() != ptr:
                changed = True
                self._tracked[key] = (ref, t._version, t.data_ptr())
        if changed:
            self._mutation("unobserved", "version-counter", grad_fed=bool(self._consumed_grad) and not self._reset_consumed)

    def _pre_step(self, optimizer, args, kwargs):
        self._in_step += 1

    def _post_step(self, optimizer, args, kwargs):
        self._in_step = max(0, self._in_step - 1)
        params = [p for g in optimizer.param_groups for p in g["params"]]
        for p in params:
            self._track(p)
        fed = not self._reset_consumed and bool(self._consumed_grad)
        serial = self._watch(optimizer, params) if fed else 0
        self._mutation("optimizer", type(optimizer).__name__, grad_fed=True, grad_only=True, optimizer=serial)

    def _mutation(self, kind, name, extra=None, grad_fed=False, grad_only=False, optimizer=0) -> None:
        led = self.ledger
        consumed = EMPTY_RUNS if self._reset_consumed else (self._consumed_grad if grad_only else self._consumed_any).runs()
        fed_runs = intervals.union(consumed, runs_of(extra)) if extra is not None and extra.size else consumed
        fed = intervals.size(fed_runs)
        seq = self._next_seq()
        self._first_update.mark(fed_runs, seq)
        if grad_fed:
            self._first_grad_update.mark(fed_runs, seq)
        unscored = self._first_score.unseen(fed_runs)
        led.mutations.append(dict(seq=seq, t=_wall(), kind=kind, name=name, site=self._site(), fed=fed,
                                  fed_min=int(fed_runs[0, 0]) if fed else -1, fed_max=int(fed_runs[-1, 1]) - 1 if fed else -1,
                                  grad_fed=bool(grad_fed and fed), unscored=intervals.size(unscored),
                                  first_unscored=int(unscored[0, 0]) if len(unscored) else -1,
                                  fed_ranges=fed_runs, optimizer=optimizer, reads=self._take_reads()))
        self._reset_consumed = True

    # ----- bookkeeping --------------------------------------------------------------------------
    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _site(self) -> tuple:
        """The frames of the run's own code (the submission and what it imports, not torch, numpy,
        the standard library or the auditor) on the stack, outermost first."""
        frames = []
        f = sys._getframe(2)
        while f is not None:
            name = f.f_code.co_filename
            if not name.startswith(_LIBRARY_DIRS) and not name.startswith("<"):
                frames.append((name, f.f_lineno, f.f_code.co_name))
            f = f.f_back
        return tuple(reversed(frames))

    def opaque_call(self, label: str, positions: np.ndarray) -> None:
        """A computation the mode cannot see into (a custom op's body, a Triton kernel): its outputs
        may depend on all its inputs, so the validation positions among them count as consumed
        (an update that follows was fed them) and the call is listed."""
        entry = self.ledger.opaque.setdefault(label, dict(calls=0, val_calls=0, val_positions=0))
        entry["calls"] += 1
        if positions.size:
            entry["val_calls"] += 1
            entry["val_positions"] += int(positions.size)
            self._consume(positions, torch.is_grad_enabled())

    def opaque_tensors(self, label: str, tensors) -> None:
        """opaque_call for the tensors a kernel launch receives."""
        with torch._C.DisableTorchFunction():
            self.opaque_call(label, self._positions_in(tuple(tensors), {}))

    def network_attempt(self, host, port) -> None:
        self.ledger.network.append(dict(host=str(host), port=port, site=self._site(), t=_wall()))

    def finish(self) -> LedgerData:
        self._check_versions()
        led = self.ledger
        firsts = (self._first_update, self._first_grad_update, self._first_score)
        memory = self.stream.nbytes + sum(t.nbytes for t in (self._content_index or ())[:2]) + sum(f.nbytes for f in firsts)
        led.bytes_per_position = memory / max(1, self.stream.size)
        led.first_update_seq, led.first_grad_update_seq, led.first_score_seq = (f.table() for f in firsts)
        for event in self.ledger.scores:
            base = event["instance_base"]
            event["reduced"] = self._reduced[base:base + event["positions"].size].copy()
        self.ledger.finished = _wall()
        return self.ledger

