"""A stand-in for the `lrzip` program, put on PATH by tools.install where lrzip is missing: some
records compress their weight groups by running lrzip as a child process (`-z -L 9 -o OUT IN`, then
`-d -f -o OUT IN`). It takes lrzip's command line and round-trips the bytes with xz (lzma) in a
container of its own, so the run goes on and its decompressed weights are exact; the compressed
sizes it logs are xz's, not lrzip's. A real .lrz file is refused with one line (it cannot decode
lrzip's format), never misread.

    python -m audit.replay.emulation.lrzip [-z|-l|-b|-g|-n] [-L N] [-d] [-f] [-D] [-o OUT | -O DIR] [-S SUF] FILE...
"""

from __future__ import annotations

import getopt
import lzma
import os
import sys

MAGIC = b"GOLF-LRZIP-STANDIN-XZ\n"
SUFFIX = ".lrz"
# short options lrzip takes; the method and tuning flags are accepted and ignored (xz is used)
_FLAGS = "bcdDefghiklnqQrtTUvVz"
_WITH_VALUE = "L:N:o:O:p:S:w:m:"


def compress(data: bytes, level: int) -> bytes:
    return MAGIC + lzma.compress(data, preset=min(max(level, 0), 9))


def decompress(data: bytes) -> bytes:
    if not data.startswith(MAGIC):
        raise ValueError("not written by the replay's lrzip stand-in (a real lrzip file cannot be decoded here)")
    return lzma.decompress(data[len(MAGIC):])


def _output_name(path: str, decompressing: bool, opts: dict) -> str:
    suffix = opts.get("-S", SUFFIX)
    if "-o" in opts:
        return opts["-o"]
    if decompressing:
        name = path[: -len(suffix)] if path.endswith(suffix) else path + ".out"
    else:
        name = path + suffix
    return os.path.join(opts["-O"], os.path.basename(name)) if "-O" in opts else name


def main(argv: list[str]) -> int:
    try:
        pairs, files = getopt.gnu_getopt(argv, _FLAGS + _WITH_VALUE)
    except getopt.GetoptError as exc:
        print(f"lrzip (replay stand-in): {exc}", file=sys.stderr)
        return 2
    opts = dict(pairs)
    flags = {k for k, _ in pairs}
    decompressing = "-d" in flags
    level = int(opts.get("-L", "7"))
    if not files or files == ["-"]:
        data = sys.stdin.buffer.read()
        sys.stdout.buffer.write(decompress(data) if decompressing else compress(data, level))
        return 0
    for path in files:
        out = _output_name(path, decompressing, opts)
        if os.path.exists(out) and "-f" not in flags:
            print(f"lrzip (replay stand-in): {out} exists, use -f to overwrite", file=sys.stderr)
            return 1
        with open(path, "rb") as f:
            data = f.read()
        try:
            result = decompress(data) if decompressing else compress(data, level)
        except (ValueError, lzma.LZMAError) as exc:
            print(f"lrzip (replay stand-in): {path}: {exc}", file=sys.stderr)
            return 1
        with open(out, "wb") as f:
            f.write(result)
        if "-D" in flags:
            os.remove(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
