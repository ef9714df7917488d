"""Stand-ins, on PATH, for the GPU-machine programs the records run as child processes:
`nvidia-smi` (logged at start-up) prints one emulated device; `pyminify` (the code-size step)
copies its input unchanged, so the code size the run logs is the unminified one; `lrzip` (weight
compression) round-trips the bytes with xz (audit.replay.emulation.lrzip), so the weights come back
exact while the compressed sizes the run logs are xz's."""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import sys

from audit.replay.emulation import lrzip

_SCRIPTS = {
    "nvidia-smi": "#!/bin/sh\necho 'GPU 0: emulated CUDA device (CPU) — golf replay stand-in'\n",
    "pyminify": "#!/bin/sh\nfor last; do :; done\nif [ \"$last\" = \"-\" ] || [ -z \"$last\" ]; then cat; else cat \"$last\"; fi\n",
    "lrzip": f"#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(os.path.abspath(lrzip.__file__))} \"$@\"\n",
}


def install(record, folder: str) -> None:
    """Put a stand-in for each tool not already on PATH in `folder`, at the front of PATH."""
    missing = [name for name in _SCRIPTS if shutil.which(name) is None]
    if not missing:
        return
    os.makedirs(folder, exist_ok=True)
    for name in missing:
        path = os.path.join(folder, name)
        with open(path, "w") as f:
            f.write(_SCRIPTS[name])
        os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        record.note(f"{name} stand-in on PATH")
    os.environ["PATH"] = folder + os.pathsep + os.environ.get("PATH", "")
