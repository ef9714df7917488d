"""The `golf` command: argparse subcommands, one module each, imported lazily.

Each command module exposes `add_arguments(parser)` and `run(args) -> int`. Modules must not import
torch at import time, so that `golf audit` and `golf rules` start fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from golf.errors import GolfError

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("golf.commands.data", "build the demo corpus shards or download FineWeb"),
    "train": ("golf.commands.train", "train, quantise and evaluate the reference model"),
    "audit": ("audit.cli", "audit a submission folder or file (static, and --replay)"),
    "validate": ("audit.runner.cli", "multi-seed validation of a submission folder with torchrun"),
    "submit": ("golf.commands.submit", "build submissions/<date>_<NAME>/ and audit it"),
    "leaderboard": ("audit.leaderboard_cli", "the record leaderboard of a clone, from its git history"),
    "rules": ("audit.rules_cli", "list the rule catalogue"),
    "explain": ("audit.explain_cli", "print one rule's documentation"),
}


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit code 2, without the usage dump."""

    def error(self, message: str):  # noqa: D401 - argparse API
        raise GolfError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="golf", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(command_parser)
        command_parser.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the `golf` command; returns the exit code (0 clean, 1 findings, 2 error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in COMMANDS and not any(a in ("-h", "--help") for a in argv[:1]):
            # Build only the parser of the command asked for: keeps start-up fast.
            parser = _Parser(prog="golf")
            sub = parser.add_subparsers(dest="command", parser_class=_Parser)
            module_name, help_text = COMMANDS[argv[0]]
            module = importlib.import_module(module_name)
            command_parser = sub.add_parser(argv[0], help=help_text, description=help_text)
            module.add_arguments(command_parser)
            command_parser.set_defaults(_module=module)
        else:
            parser = build_parser()
        args = parser.parse_args(argv)
        if getattr(args, "_module", None) is None:
            parser.print_help(sys.stderr)
            return 2
        return int(args._module.run(args) or 0)
    except GolfError as exc:
        print(f"golf: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("golf: interrupted", file=sys.stderr)
        return 2
    except SystemExit as exc:  # argparse --help exits 0
        return int(exc.code or 0) if isinstance(exc.code, int) else 2
    except Exception as exc:  # an internal error still gets one line, never a traceback
        if os.environ.get("GOLF_DEBUG"):
            raise
        print(f"golf: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
