"""Build the bundled demo corpus golf/data/corpus/kjv_chapters.jsonl.xz (run once, by hand).

Source: the King James Bible as printed by the `bible` program of Debian's bible-kjv package
(`apt-get install bible-kjv`, which pulls the text package bible-kjv-text). One document per
chapter: a heading line ("Genesis 1"), a blank line, then one numbered verse per line.

The chapters are stored in a frozen shuffled order (seed below), like FineWeb's
docs_selected.jsonl, so that "validation = the first documents" is a fair sample of the corpus
rather than the opening chapters of Genesis. Output is JSON lines {"title", "text"}, xz-compressed.

Usage: python scripts/build_corpus.py [--out golf/data/corpus/kjv_chapters.jsonl.xz]
"""

from __future__ import annotations

import argparse
import json
import lzma
import random
import shutil
import subprocess
import sys
from pathlib import Path

SHUFFLE_SEED = 20240520
WHOLE_BIBLE = "Gen1:1-Rev22:21"
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "golf" / "data" / "corpus" / "kjv_chapters.jsonl.xz"


def bible_text() -> str:
    """The whole Bible, pretty-printed: chapter headings on their own line, one verse per line."""
    if shutil.which("bible") is None:
        sys.exit("the `bible` program is missing: apt-get install bible-kjv")
    # -l with a huge width keeps each verse on one line (pretty-printing otherwise wraps at 79).
    return subprocess.run(["bible", "-l", "1000000", WHOLE_BIBLE], check=True, capture_output=True, text=True).stdout


def split_chapters(text: str) -> list[dict[str, str]]:
    """Chapter documents from the pretty-printed text (headings are the unindented lines)."""
    chapters: list[dict[str, str]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            chapters.append({"title": line.strip(), "verses": []})
        else:
            chapters[-1]["verses"].append(line.strip())
    return [{"title": c["title"], "text": c["title"] + "\n\n" + "\n".join(c["verses"])} for c in chapters]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    docs = split_chapters(bible_text())
    random.Random(SHUFFLE_SEED).shuffle(docs)
    payload = "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs).encode("utf-8")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(lzma.compress(payload, preset=9 | lzma.PRESET_EXTREME))
    text_bytes = sum(len(d["text"].encode("utf-8")) for d in docs)
    print(f"{len(docs)} chapters, {text_bytes} bytes of text, {args.out.stat().st_size} bytes compressed -> {args.out}")


if __name__ == "__main__":
    main()
