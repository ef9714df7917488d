"""The run log: parameter-golf-style lines to OUT/train.log and stdout, written by rank 0 only.

A run's log opens, like the records', with the full source of the code that ran (ended by a line of
100 "="), then the hyperparameters (`name: value`, one per line), so that a log alone says what
produced its numbers.
"""

from __future__ import annotations

import sys
from pathlib import Path

SEPARATOR = "=" * 100


class RunLog:
    def __init__(self, path: str | Path, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, message: str, console: bool = True) -> None:
        if not self.enabled:
            return
        if console:
            print(message, flush=True)
        with self.path.open("a", encoding="utf-8") as f:
            print(message, file=f)

    def hyperparameters(self, values: dict) -> None:
        for name, value in values.items():
            self(f"{name}: {value}")

    def source_code(self, package: str = "golf") -> None:
        """The full source of every loaded module of `package`, file by file (log file only)."""
        for path in loaded_source_files(package):
            self(f"# ---- source: {path} ----", console=False)
            self(path.read_text(encoding="utf-8"), console=False)
        self(SEPARATOR, console=False)  # the records' end-of-code marker, which log parsers look for


def loaded_source_files(package: str = "golf") -> list[Path]:
    """The .py files of every module of `package` imported so far, in module-name order."""
    files = []
    for name, module in sorted(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if (name == package or name.startswith(package + ".")) and path and path.endswith(".py"):
            files.append(Path(path))
    return files
