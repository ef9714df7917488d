"""Fixture submissions of the replay tests (tests/fixtures/replay*, one family per folder).

A fixture folder holds either a whole train_gpt.py or only its variant.py; a run gets one file,
train_gpt.py = variant.py followed by the family's _shared.py, and expected lines are those of that
assembled file.
"""

from pathlib import Path
from typing import Callable


class FixtureFamily:
    def __init__(self, root: Path):
        self.root = root
        self.shared = root / "_shared.py"

    def source(self, name: str) -> str:
        """The fixture's train_gpt.py as a run sees it."""
        folder = self.root / name
        if (folder / "train_gpt.py").exists():
            return (folder / "train_gpt.py").read_text()
        return (folder / "variant.py").read_text() + "\n\n" + self.shared.read_text()

    def folders(self, into: Path) -> Callable[[str], Path]:
        """prepare(name): the run folder of one fixture under `into`, its train_gpt.py assembled once."""

        def prepare(name: str) -> Path:
            folder = into / name
            if not folder.exists():
                folder.mkdir()
                (folder / "train_gpt.py").write_text(self.source(name))
            return folder

        return prepare
