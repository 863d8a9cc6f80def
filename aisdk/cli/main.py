"""`aisdk`: the parser, the command groups, and the one way a command fails.

argparse, not typer/click: it is in the standard library, adds nothing to
install and nothing to start-up time, and the commands are few and flat.

Every failure is one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from aisdk.cli import agents, auth, bench, bus, chaos, compat, contracts, db, demo, dlq, evaluate, qa, sessions, trace
from aisdk.cli.errors import CommandError

Command = Callable[[argparse.Namespace], int]
EXIT_FAILED = 1
EXIT_INTERRUPTED = 128 + signal.SIGINT
# What a shell reports for a writer killed by SIGPIPE (`aisdk ... | head`).
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE

# Each group adds its subcommands; the order is the order of `aisdk --help`.
GROUPS = (contracts, bus, auth, db, trace, compat, bench, qa, evaluate, agents, sessions, demo, chaos, dlq)
# Long-running commands report reconnects and failed handlers on stderr.
VERBOSE = ("serve", "server")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aisdk", description="Contract-first messaging for AI components.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.register(sub)
    return parser


def _failure(command: str, e: Exception) -> str:
    from codegen.toolchain import ToolchainError
    from runtime.errors import PlatformError

    if isinstance(e, ToolchainError):
        # buf's own report (lint findings, a plugin's message) comes first;
        # the last line says what failed.
        first, _, detail = str(e).partition("\n")
        if detail:
            print(detail, file=sys.stderr)
        return f"aisdk {command}: {first}"
    if isinstance(e, CommandError | PlatformError):
        return f"aisdk {command}: {e}"
    return f"aisdk {command}: {type(e).__name__}: {e}"


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO if args.command in VERBOSE else logging.ERROR, format="aisdk: %(message)s"
    )
    func: Command = args.func
    try:
        return func(args)
    except (BrokenPipeError, KeyboardInterrupt):
        raise
    except Exception as e:  # noqa: BLE001 - the contract is one line, never a traceback
        print(_failure(args.command, e), file=sys.stderr)
        return EXIT_FAILED


def _stdout_gone() -> None:
    """The reader left: point stdout at /dev/null so that the interpreter's
    final flush does not report the broken pipe again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        code = _run(args)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        _stdout_gone()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
