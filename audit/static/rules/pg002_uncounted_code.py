"""PG002 CODE-1: code that runs outside train_gpt.py (helpers, exec(open()), native code) and is
not counted in the logged code size."""

from __future__ import annotations

import ast
import re

from audit.static.evidence import (
    ARTIFACT_LIMIT, calls_from_modules, code_inventory, normalization, python_files, run_logs, string_constants,
)
from audit.static.rule import Rule

_BUILD_TOOLS = re.compile(r"(^|[\s/'\"])(g\+\+|gcc|clang\+?\+?|nvcc|make|cmake|lrzip|zpaq|ninja)(\s|$|['\"])")
_BUILD_CALLS = ("torch.utils.cpp_extension.load", "torch.utils.cpp_extension.load_inline",
                "cpp_extension.load", "cpp_extension.load_inline", "ctypes.CDLL", "ctypes.cdll.LoadLibrary",
                "cffi.FFI")
_SHELL_CALLS = ("subprocess.run", "subprocess.call", "subprocess.check_call", "subprocess.check_output",
                "subprocess.Popen", "os.system", "os.popen")


class UncountedCode(Rule):
    """"All counted code should live in train_gpt.py" (README FAQ). Code that runs but lives
    elsewhere (imported helper modules, `exec(open("other.py").read())`, C++/CUDA compiled at run
    time, external binaries such as lrzip) must be counted in the artifact. Robby955 on #1412: a
    74-byte train_gpt.py exec'ing a 78,688-byte file brought the total to 16,054,963 bytes.

    Maintainers did not enforce this for merged #1514 (about 27 KB of ngram_tilt.py and a .cpp
    kernel uncounted), so it is a warning (rules.md section D2) that reports three totals: the code
    the logs counted, the entry as shipped (raw and as an lzma+base85 wrapper) and all shipped
    code, with what the artifact would be if everything were counted.
    """

    code = "PG002"
    rule = "CODE-1"
    severity = "warning"
    confidence = "high"
    references = ("#1412", "#1514", "#1855", "README FAQ")
    summary = "code outside train_gpt.py runs but is not counted in the code bytes"

    VALID = [
        "import torch\nprint(torch.zeros(1))\n",
        {
            "train_gpt.py": "from helper import f\nf()\n",
            "helper.py": "def f():\n    return 1\n",
            "train_seed1.log": "Code size: 200 bytes\nTotal submission size: 15000000 bytes\n",
        },
    ]
    INVALID = [
        {
            "train_gpt.py": "from ngram_tilt import tilt\ntilt()\n",
            "ngram_tilt.py": "def tilt():\n" + "    x = 1\n" * 400,
            "train_seed1.log": "Code size: 40 bytes\nTotal submission size: 15990040 bytes\n",
        },
        {
            "train_gpt.py": 'exec(open(__file__.replace("train_gpt.py", "train_gpt_decode.py")).read())\n',
            "train_gpt_decode.py": "import torch\n" + "x = torch.zeros(1)\n" * 50,
            "train_seed1.log": "Code size: 74 bytes\nTotal submission size: 15990074 bytes\n",
        },
        "import subprocess\nsubprocess.run(['g++', '-O3', 'kernel.cpp', '-o', 'k.so'])\n",
    ]

    def check(self, ctx):
        inventory = code_inventory(ctx)
        if inventory is None:
            return
        norm = normalization(ctx)
        triggers: list[tuple[str, int, str]] = []  # (original path, line, what)
        for note in (norm.notes if norm else []):
            if note.kind in ("helper", "indirection"):
                triggers.append((note.path, note.line, note.detail))
        for src in python_files(ctx):
            for call, name in calls_from_modules(src, ("torch", "ctypes", "cffi", "subprocess", "os", "cpp_extension")):
                if name.endswith(_BUILD_CALLS):
                    triggers.append((*src.line_map(call.lineno), f"native code built at run time: {name}(...)"))
                elif name in _SHELL_CALLS and any(_BUILD_TOOLS.search(s) for s in string_constants(call)):
                    tool = next(_BUILD_TOOLS.search(s).group(2) for s in string_constants(call) if _BUILD_TOOLS.search(s))
                    triggers.append((*src.line_map(call.lineno), f"external tool `{tool}` run from the code"))
        referenced_native = [p for p in inventory.native if p.rsplit("/", 1)[-1] in (norm.text if norm else "")]
        if referenced_native:
            triggers.append((inventory.entry, 0, "native sources shipped and referenced: " + ", ".join(referenced_native)))
        if not triggers:
            return
        logged = [r.code_bytes for r in run_logs(ctx).values() if r.code_bytes is not None]
        models = [r.model_bytes for r in run_logs(ctx).values() if r.model_bytes is not None]
        running = inventory.entry_bytes + sum(inventory.shipped.get(p, 0) for p in inventory.inlined) + sum(
            inventory.shipped.get(p, 0) for p in referenced_native)
        if logged and max(logged) >= running and not referenced_native and not any(
                "native" in what or "external tool" in what for _, _, what in triggers):
            return  # the logs counted everything that runs
        totals = (f"counted code {max(logged):,} B (logs)" if logged else "no logged code size") + (
            f"; {inventory.entry} as shipped {inventory.entry_bytes:,} B"
            f"{' (a self-extracting wrapper)' if inventory.entry_is_wrapper else ''}, as an lzma+base85 wrapper "
            f"{inventory.wrapped_bytes:,} B; all shipped code {inventory.shipped_bytes:,} B"
            f" ({len(inventory.shipped)} files)")
        if models:
            total = max(models) + inventory.shipped_bytes
            totals += f"; model {max(models):,} B + all shipped code = {total:,} B" + (
                f", over the {ARTIFACT_LIMIT:,}-byte limit" if total > ARTIFACT_LIMIT else "")
        path, line = next(((p, n) for p, n, _ in triggers if n > 0), (inventory.entry, 0))
        what = "; ".join(dict.fromkeys(w for _, _, w in triggers))
        yield self.finding(None, line, f"code outside {inventory.entry} runs ({what}): {totals}",
                           evidence=what, path=path)
