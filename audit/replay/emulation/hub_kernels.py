"""A stand-in for the Hugging Face `kernels` package, installed only where it cannot be imported.

Some records fetch FlashAttention from the kernels hub at start-up
(`get_kernel("kernels-community/flash-attn3").flash_attn_interface.flash_attn_func`). The replay
never downloads: a FlashAttention repository (named flash-attn / flash-attention, FA3 when the name
says 3) gets the FlashAttention stand-ins of audit.replay.emulation.flash_attn, both at the kernel's
top level and as its `flash_attn_interface`; any other kernel stops the run with an RP091 gap
naming it.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import types

from audit.replay.emulation import EmulationGap
from audit.replay.emulation import flash_attn as fa

_FLASH = re.compile(r"flash[-_]?att(n|ention)", re.IGNORECASE)
_VERSION_3 = re.compile(r"(attn|attention)[-_]?3|fa3|hopper", re.IGNORECASE)


def stand_in_kernel(repo_id: str, record) -> types.ModuleType:
    """The module get_kernel(repo_id) gives under the replay (EmulationGap for a kernel it lacks)."""
    if not _FLASH.search(repo_id):
        raise EmulationGap("RP091", f"hub kernel {repo_id}", f"the kernels-hub kernel {repo_id} is not available "
                           "to the replay (it never downloads) and has no stand-in")
    functions, label = (fa.FA3, fa.FA3_LABEL) if _VERSION_3.search(repo_id) else (fa.FA2, fa.FA2_LABEL)
    kernel = fa._module(repo_id, f"{label}, from kernels-hub {repo_id}", record, functions)
    kernel.flash_attn_interface = fa._module(f"{repo_id}.flash_attn_interface", f"{label}, from kernels-hub {repo_id}",
                                             record, functions)
    return kernel


def install(record) -> None:
    if importlib.util.find_spec("kernels") is not None:
        return
    module = types.ModuleType("kernels", "golf replay stand-in for the kernels hub (audit.replay.emulation.hub_kernels)")

    def get_kernel(repo_id: str, *args, **kwargs) -> types.ModuleType:
        return stand_in_kernel(str(repo_id), record)

    def has_kernel(repo_id: str, *args, **kwargs) -> bool:
        return bool(_FLASH.search(str(repo_id)))

    module.get_kernel, module.has_kernel = get_kernel, has_kernel
    sys.modules["kernels"] = module
