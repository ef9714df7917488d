"""The CUDA emulation's parts on their own: the FlashAttention stand-in against an explicit reference
attention, the 3.12 f-string rewrite, Triton kernel identification by source, and the switch that
leaves a CUDA machine unemulated."""

import io
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import pytest
import torch

from audit.replay import emulation
from audit.replay.emulation import flash_attn as fa
from audit.replay.emulation import syntax
from audit.replay.emulation import triton as tri


def reference(q, k, v, scale=None, causal=False, window=(-1, -1), softcap=0.0):
    """softmax(q·kᵀ) with explicit loops for the masks, (B, T, H, D) layout, kv head = h // group."""
    b, tq, hq, d = q.shape
    tk, hk = k.shape[1], k.shape[2]
    scale = scale or 1 / math.sqrt(d)
    out = torch.zeros(b, tq, hq, d, dtype=torch.float64)
    lse = torch.zeros(b, hq, tq, dtype=torch.float64)
    for h in range(hq):
        kv = h // (hq // hk)
        s = torch.einsum("bqd,bkd->bqk", q[:, :, h].double(), k[:, :, kv].double()) * scale
        if softcap:
            s = softcap * torch.tanh(s / softcap)
        for i in range(tq):
            for j in range(tk):
                rel = j - (i + tk - tq)
                if (causal and rel > 0) or (window[0] >= 0 and rel < -window[0]) or (window[1] >= 0 and rel > window[1]):
                    s[:, i, j] = -math.inf
        lse[:, h] = torch.logsumexp(s, -1)
        out[:, :, h] = torch.softmax(s, -1) @ v[:, :, kv].double()
    return out, lse


@pytest.mark.parametrize("causal,window,softcap,heads", [
    (True, (-1, -1), 0.0, (4, 4)),
    (True, (5, 0), 0.0, (4, 2)),
    (False, (3, 2), 0.0, (4, 1)),
    (True, (-1, -1), 7.5, (6, 2)),
])
def test_flash_attention_stand_in_equals_the_reference(causal, window, softcap, heads):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 12, heads[0], 8, generator=g)
    k, v = torch.randn(2, 2, 12, heads[1], 8, generator=g).unbind(0)
    want, want_lse = reference(q, k, v, causal=causal, window=window, softcap=softcap)
    out = fa.fa3_func(q, k, v, causal=causal, window_size=window, softcap=softcap)
    assert torch.allclose(out.double(), want, atol=1e-5)
    out2, lse, dmask = fa.fa2_func(q, k, v, causal=causal, window_size=window, softcap=softcap, return_attn_probs=True)
    assert dmask is None and torch.allclose(out2.double(), want, atol=1e-5)
    assert torch.allclose(lse.double(), want_lse, atol=1e-5)
    out3, lse3 = fa.fa3_func(q, k, v, softmax_scale=0.2, causal=causal, window_size=window, softcap=softcap,
                             return_attn_probs=True)
    want3, want_lse3 = reference(q, k, v, scale=0.2, causal=causal, window=window, softcap=softcap)
    assert torch.allclose(out3.double(), want3, atol=1e-5) and torch.allclose(lse3.double(), want_lse3, atol=1e-5)


def test_more_keys_than_queries_align_the_last_query_with_the_last_key():
    g = torch.Generator().manual_seed(1)
    q, k, v = torch.randn(1, 4, 2, 8, generator=g), torch.randn(1, 9, 2, 8, generator=g), torch.randn(1, 9, 2, 8, generator=g)
    assert torch.allclose(fa.fa3_func(q, k, v, causal=True).double(), reference(q, k, v, causal=True)[0], atol=1e-5)


def test_varlen_attention_is_per_sequence_attention():
    g = torch.Generator().manual_seed(2)
    lengths = [5, 1, 9]
    cu = torch.tensor([0, 5, 6, 15], dtype=torch.int32)
    q, k, v = (torch.randn(15, 4, 8, generator=g) for _ in range(3))
    k, v = k[:, :2], v[:, :2]  # GQA
    out, lse = fa.fa3_varlen_func(q, k, v, cu, cu, max(lengths), max(lengths), causal=True, window_size=(3, -1),
                                  return_attn_probs=True)
    for a, b in zip(cu[:-1].tolist(), cu[1:].tolist()):
        want, want_lse = reference(q[None, a:b], k[None, a:b], v[None, a:b], causal=True, window=(3, -1))
        assert torch.allclose(out[a:b].double(), want[0], atol=1e-5)
        assert torch.allclose(lse[:, a:b].double(), want_lse[0], atol=1e-5)
    assert torch.equal(fa.fa2_varlen_func(q, k, v, cu, cu, 9, 9, causal=True), fa.fa3_varlen_func(q, k, v, cu, cu, 9, 9, causal=True))


def test_312_f_strings_are_rewritten_keeping_lines_and_values():
    source = 'd = {"a": 1}\nx = 2\ns = f"{d["a"]}-{f"{d["a"]:>{x}}"}-{\'q\'}"\nt = f\'{"plain"}\'\n'
    with pytest.raises(SyntaxError):
        compile(source, "f.py", "exec")
    code, sites = syntax.prepare(source, "/some/train_gpt.py")
    scope: dict = {}
    exec(code, scope)
    assert scope["s"] == "1- 1-q" and scope["t"] == "plain" and sites >= 2
    assert code.co_filename == "/some/train_gpt.py"
    code, sites = syntax.prepare("x = 1\n", "ok.py")
    assert sites == 0


def test_minified_code_with_312_f_strings_is_rewritten_too():
    # pyminify's output: no space between `)` and a keyword, which libcst's node checks refuse
    source = 'def f(m,z=1):\n\tn=sum((k)-(0 if k else z)for k in m.values())\n\treturn f"{", ".join(sorted(m))}:{n}"\n'
    code, sites = syntax.prepare(source, "min.py")
    scope: dict = {}
    exec(code, scope)
    assert sites == 1 and scope["f"]({"b": 1, "a": 2}) == "a, b:3"


def test_other_unparseable_syntax_is_unsupported_not_a_crash():
    with pytest.raises(syntax.UnsupportedSyntax, match="line 2"):
        syntax.prepare("x = 1\ntype Ids = list[int]\n", "t.py")
    with pytest.raises(syntax.UnsupportedSyntax):
        syntax.prepare("def (:\n", "t.py")


SOFTCAPPED_CE = '''
@triton.jit
def any_name(logits_ptr, out_ptr, lse_ptr, tgt_ptr, s0, s1, rows, cols, cap, BLOCK: tl.constexpr):
    """a docstring"""
    r = tl.program_id(0)
    x = tl.load(logits_ptr + r * s0 + tl.arange(0, BLOCK) * s1).to(tl.float32)  # a comment
    z = 2.0 * cap * tl.sigmoid(x * (2.0 / cap))
    m = tl.max(z, axis=0)
    lse = m + tl.log(tl.sum(tl.exp(z - m), axis=0))
    tl.store(lse_ptr + r, lse)
    tl.store(out_ptr + r, lse - tl.load(tgt_ptr + r))
'''


def test_a_triton_kernel_is_identified_by_its_source_not_its_name():
    norm = tri.normalised_source(SOFTCAPPED_CE)
    assert "docstring" not in norm and "comment" not in norm and norm.startswith("def any_name")
    renamed = SOFTCAPPED_CE.replace("any_name", "other").replace("# a comment", "")
    assert tri.identify(tri.normalised_source(renamed), ["p"] * 10)[0] == "softcapped CE forward"
    assert tri.kernel_hash(SOFTCAPPED_CE) == tri.kernel_hash(SOFTCAPPED_CE.replace("# a comment", "# another"))
    assert tri.identify(tri.normalised_source("def k(x_ptr, n):\n    tl.store(x_ptr, tl.load(x_ptr))\n"), ["x_ptr", "n"]) is None


def test_softcapped_ce_equivalents_match_autograd():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(6, 11, generator=g) * 20
    targets = torch.randint(0, 11, (6,), generator=g)
    losses, lse = torch.empty(6), torch.empty(6)
    tri.softcapped_ce_forward([logits, losses, lse, targets, 11, 1, 6, 11, 30.0])
    x = logits.clone().requires_grad_()
    z = 30.0 * torch.tanh(x / 30.0)
    want = torch.nn.functional.cross_entropy(z, targets, reduction="none")
    assert torch.allclose(losses, want.detach(), atol=1e-4)
    upstream = torch.rand(6, generator=g)
    want.backward(upstream)
    grad = torch.empty(6, 11)
    tri.softcapped_ce_backward([grad, upstream, lse, logits, targets, 11, 1, 11, 1, 6, 11, 30.0])
    assert torch.allclose(grad, x.grad, atol=1e-5)


@pytest.mark.parametrize("value,expected", [("1", True), ("0", False), ("off", False)])
def test_the_emulation_switch(monkeypatch, value, expected):
    assert emulation.wanted({"GOLF_REPLAY_EMULATE": value}) is expected


def test_auto_emulates_only_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert emulation.wanted({}) is False and emulation.wanted({"GOLF_REPLAY_EMULATE": "auto"}) is False
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert emulation.wanted({}) is True


def _stream_tracker():
    """A 200-token validation stream over ids 4..10 and a recorder of it with its hooks installed."""
    from audit.replay.tracker import Tracker

    stream = np.random.default_rng(0).integers(4, 11, size=200).astype(np.int64)
    tracker = Tracker(stream)
    tracker.install_hooks()
    return stream, tracker


@torch.library.custom_op("golftest::opaque_ce", mutates_args=())
def opaque_ce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(logits, targets, reduction="none")


def test_a_custom_op_is_opaque_its_val_inputs_feed_the_next_update():
    stream, tracker = _stream_tracker()
    model = torch.nn.Linear(4, 11)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    try:
        with tracker:
            val = tracker.tag_if_validation(torch.from_numpy(stream.copy()))
            y = val[1:33]
            weights = opaque_ce(torch.randn(32, 11), y)  # e.g. per-token losses weighting a training loss
            loss = (model(torch.randn(32, 4)).sum(-1) * weights).mean()
            loss.backward()
            opt.step()
    finally:
        tracker.remove_hooks()
    led = tracker.ledger
    assert led.opaque == {"golftest.opaque_ce.default": {"calls": 1, "val_calls": 1, "val_positions": 32}}
    assert not led.scores  # the loss inside the op is not visible
    (step,) = [m for m in led.mutations if m["kind"] == "optimizer"]
    assert step["fed"] == 32 and step["fed_min"] == 1 and step["unscored"] == 32


def test_a_cuda_autocast_region_in_fp32_lets_bf16_weights_meet_fp32_activations(monkeypatch):
    from audit.replay.emulation import autocast

    for owner in (torch, torch.amp, torch.cuda.amp):
        monkeypatch.setattr(owner, "autocast", owner.autocast)  # restored after the test
    record = emulation.Record()
    regions = autocast.install(True, record)
    weight, x = torch.randn(5, 4).bfloat16(), torch.randn(3, 4)
    with regions:
        with pytest.raises(RuntimeError):  # outside a region: the dtypes clash as they would on a GPU
            torch.nn.functional.linear(x, weight)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
            y = torch.nn.functional.linear(x, weight)
            z = x @ weight.T
    assert y.dtype == z.dtype == torch.float32 and torch.allclose(y, x @ weight.float().T)
    assert record.applied == ["autocast-cuda->cpu-fp32"] and regions.depth == 0


def test_re_initialising_an_adapter_is_not_an_update_fed_by_the_tokens_read_before():
    """Real TTT code re-draws its LoRA weights per document (uniform_/zero_): values from no input."""
    stream, tracker = _stream_tracker()
    adapter = torch.nn.Linear(4, 4)
    opt = torch.optim.SGD(adapter.parameters(), lr=0.1)
    try:
        with tracker:
            val = tracker.tag_if_validation(torch.from_numpy(stream.copy()))
            adapter(torch.randn(2, 4))  # the adapter's parameters are tracked from its first forward
            bos = val.float()  # reads every position into a tensor a gradient could flow through
            with torch.no_grad():
                torch.nn.init.uniform_(adapter.weight)
                adapter.bias.zero_()
            loss = adapter(torch.randn(2, 4)).sum()
            loss.backward()
            opt.step()
    finally:
        tracker.remove_hooks()
    kinds = [(m["kind"], m["name"], m["fed"]) for m in tracker.ledger.mutations]
    assert kinds == [("optimizer", "SGD", 200)], kinds  # the read is charged to the step, not to the re-draw
    del bos


DDP_ON_CUDA = """
import os, torch, torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from audit.replay import emulation
from audit.replay.emulation import distributed
record = emulation.Record()
distributed.install(record)
dist.init_process_group(backend="nccl")
model = DDP(torch.nn.Linear(4, 2), device_ids=[int(os.environ.get("LOCAL_RANK", "0"))], output_device=0)
model(torch.ones(3, 4)).sum().backward()
print(record.applied)
dist.destroy_process_group()
"""


def test_ddp_given_a_cuda_device_wraps_a_cpu_module(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "MASTER_PORT")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    done = subprocess.run([sys.executable, "-c", DDP_ON_CUDA], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "DistributedDataParallel device_ids dropped (module on the CPU)" in done.stdout
    assert "nccl->gloo" in done.stdout


def test_lrzip_stand_in_round_trips_the_records_command_lines(tmp_path):
    from audit.replay.emulation import tools

    record = emulation.Record()
    path_before = os.environ.get("PATH", "")
    try:
        os.environ["PATH"] = "/usr/bin:/bin"  # no lrzip here: the stand-in is installed
        tools.install(record, str(tmp_path / "tools"))
        env = dict(os.environ)
    finally:
        os.environ["PATH"] = path_before
    assert "lrzip stand-in on PATH" in record.applied
    payload = np.random.default_rng(0).integers(0, 7, 50_000, dtype=np.uint8).tobytes()
    (tmp_path / "w.bin").write_bytes(payload)
    run = lambda *args: subprocess.run(["lrzip", *args], env=env, cwd=tmp_path, capture_output=True, text=True)  # noqa: E731
    assert run("-z", "-L", "9", "-o", "w.lrz", "w.bin").returncode == 0
    assert 0 < (tmp_path / "w.lrz").stat().st_size < len(payload)
    assert run("-d", "-o", "back.bin", "w.lrz").returncode == 0
    assert (tmp_path / "back.bin").read_bytes() == payload
    refused = run("-d", "-o", "back.bin", "w.lrz")  # exists, no -f
    assert refused.returncode == 1 and "use -f" in refused.stderr
    assert run("-d", "-f", "-o", "back.bin", "w.lrz").returncode == 0
    (tmp_path / "real.lrz").write_bytes(b"LRZI\x00\x06" + payload[:100])  # lrzip's own format
    foreign = run("-d", "-f", "-o", "x.bin", "real.lrz")
    assert foreign.returncode == 1 and "cannot be decoded" in foreign.stderr and not (tmp_path / "x.bin").exists()


def test_a_pickle_the_weights_only_loader_refuses_is_read_back_as_before_torch_2_6(monkeypatch, tmp_path):
    from audit.replay.emulation import serialization

    monkeypatch.setattr(torch, "load", torch.load)  # restored after the test
    record = emulation.Record()
    serialization.install(record)
    state = {"w": torch.arange(3.0)}
    buffer = io.BytesIO(b"header")
    buffer.seek(6)
    torch.save(state, buffer, pickle_protocol=5)  # refused by the weights-only unpickler
    buffer.seek(6)
    assert torch.equal(torch.load(buffer)["w"], state["w"])  # retried from where the read began
    assert record.applied == ["torch.load retried with weights_only=False (the pre-2.6 default)"]
    path = tmp_path / "model.pt"
    torch.save(state, path, pickle_protocol=5)
    assert torch.equal(torch.load(path)["w"], state["w"])
    with pytest.raises(Exception, match="Weights only load failed"):  # an explicit choice is the caller's
        torch.load(path, weights_only=True)


def test_the_kernels_hub_stand_in_serves_flash_attention_and_names_any_other_kernel(monkeypatch):
    from audit.replay.emulation import EmulationGap, hub_kernels

    monkeypatch.delitem(sys.modules, "kernels", raising=False)
    monkeypatch.setattr(hub_kernels.importlib.util, "find_spec", lambda name: None)  # `kernels` not installed
    record = emulation.Record()
    hub_kernels.install(record)
    from kernels import get_kernel  # the stand-in

    q, k, v = (torch.randn(1, 16, 4, 8) for _ in range(3))
    fa3 = get_kernel("kernels-community/flash-attn3").flash_attn_interface
    assert torch.allclose(fa3.flash_attn_func(q, k, v, causal=True), fa.fa3_func(q, k, v, causal=True))
    out, lse, _ = get_kernel("kernels-community/flash-attn").flash_attn_func(q, k, v, causal=True, return_attn_probs=True)
    assert torch.allclose(out, fa.fa2_func(q, k, v, causal=True), atol=1e-6)  # FA2 returns (out, lse, None) here
    assert record.applied == [f"{fa.FA3_LABEL}, from kernels-hub kernels-community/flash-attn3",
                              f"{fa.FA2_LABEL}, from kernels-hub kernels-community/flash-attn"]
    with pytest.raises(EmulationGap, match="kernels-community/activation"):
        get_kernel("kernels-community/activation")
    monkeypatch.delitem(sys.modules, "kernels")
