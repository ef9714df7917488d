"""Packages a submission declares (requirements.txt) that the replay's Python lacks.

The replay never installs anything: it runs what can run here and names the rest in one RP091 note
(`flash-linear-attention`, ...), so a reader knows the replay may have stopped at, or stood in for,
code those packages provide.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from audit.finding import Finding
from audit.replay.invariants import make_finding

REQUIREMENTS = "requirements.txt"
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def declared(text: str) -> list[str]:
    """The distribution names of a requirements file (options, URLs and comments skipped)."""
    names = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-") or "://" in line:
            continue
        if match := _NAME.match(line):
            names.append(match.group(1))
    return names


def _installed(name: str) -> bool:
    try:
        metadata.distribution(name)
        return True
    except metadata.PackageNotFoundError:
        return False


def missing_requirements(folder: Path) -> list[Finding]:
    """One RP091 note naming the declared packages that are not installed (none when all are)."""
    path = Path(folder) / REQUIREMENTS
    if not path.is_file():
        return []
    missing = [name for name in declared(path.read_text(errors="replace")) if not _installed(name)]
    if not missing:
        return []
    return [make_finding("RP091", "FMT-1", (REQUIREMENTS, 0),
                         f"the submission needs packages this replay does not install: {', '.join(missing)}; "
                         "only what runs without them was replayed", evidence=", ".join(missing), severity="note")]
