"""The `aisdk` command. argparse, not typer/click: it is in the standard
library, adds nothing to install and nothing to start-up time, and the
commands are few and flat.

Every failure is one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from runtime.errors import CliError, PlatformError

Command = Callable[[argparse.Namespace], int]
EXIT_USAGE = 2
EXIT_FAILED = 1


def _registry() -> Any:
    try:
        import ai.registry as registry
    except ImportError as e:
        raise CliError(f"generated code is missing or broken ({e}): run `aisdk gen`") from e
    return registry


def cmd_gen(args: argparse.Namespace) -> int:
    from codegen import toolchain

    out = toolchain.generate()
    print(f"generated {out}")
    return 0


def cmd_lint(args: argparse.Namespace) -> int:
    from codegen import toolchain

    toolchain.lint()
    print("buf lint: clean")
    return 0


def subject_rows(tenant: str | None) -> list[dict[str, Any]]:
    """The registry as plain rows: what `aisdk subjects --json` prints."""
    rows = []
    for spec in _registry().SUBJECTS:
        d = spec.durability
        rows.append(
            {
                "subject": spec.subject(tenant) if tenant else spec.template,
                "key": spec.key,
                "service": spec.service,
                "rpc": spec.rpc,
                "pattern": spec.pattern.value,
                "queue_group": spec.queue_group,
                "request_type": spec.request_name,
                "reply_type": spec.reply_name,
                "timeout_ms": spec.timeout_ms,
                "durable": d is not None,
                "durability": None
                if d is None
                else {
                    "retention": d.retention,
                    "max_deliver": d.max_deliver,
                    "ack_wait_ms": d.ack_wait_ms,
                    "backoff_ms": list(d.backoff_ms),
                    "duplicate_window_ms": d.duplicate_window_ms,
                    "max_age_s": d.max_age_s,
                },
                "reply_event": spec.reply_event,
                "schema_version": spec.schema_version,
                "source": spec.source,
            }
        )
    return rows


def cmd_subjects(args: argparse.Namespace) -> int:
    rows = subject_rows(args.tenant)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["subject"]) for r in rows)
    for r in rows:
        extra = []
        if r["queue_group"]:
            extra.append(f"queue={r['queue_group']}")
        if r["durable"]:
            extra.append("durable")
        if r["pattern"] in ("request_reply", "stream"):
            extra.append(f"-> {r['reply_type']} ({r['timeout_ms']} ms)")
        print(f"{r['subject']:<{width}}  {r['pattern']:<13}  {r['request_type']}  {' '.join(extra)}".rstrip())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aisdk", description="Contract-first messaging for AI components.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("gen", help="regenerate generated/ from proto/ (runs buf generate)")
    p.set_defaults(func=cmd_gen)
    p = sub.add_parser("lint", help="buf lint the contracts")
    p.set_defaults(func=cmd_lint)
    p = sub.add_parser("subjects", help="list the subject registry")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.add_argument("--tenant", help="fill in this tenant id")
    p.set_defaults(func=cmd_subjects)
    from runtime import cli_bus

    cli_bus.register(sub)
    import bench.cli  # noqa: F401 - registers `bench`
    import compat.cli  # noqa: F401 - registers `check` and `release`
    for register in _EXTENSIONS:
        register(sub)
    return parser


# Other modules add their commands here (name -> add_parser call), so this
# file does not grow with every feature.
_EXTENSIONS: list[Callable[[Any], None]] = []


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Long-running commands report reconnects and failed handlers; one-shot
    # commands keep stderr to the one line that explains a failure.
    quiet = args.command not in ("serve", "server")
    logging.basicConfig(level=logging.ERROR if quiet else logging.INFO, format="aisdk: %(message)s")
    func: Command = args.func
    try:
        return func(args)
    except PlatformError as e:
        print(f"aisdk {args.command}: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # noqa: BLE001 - the contract is one line, never a traceback
        from codegen.toolchain import ToolchainError

        if isinstance(e, ToolchainError):
            first, _, rest = str(e).partition("\n")
            print(f"aisdk {args.command}: {first}", file=sys.stderr)
            if rest:
                print(rest, file=sys.stderr)
            return EXIT_FAILED
        print(f"aisdk {args.command}: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    # Re-enter through the package module, so that commands registered on
    # runtime.cli (not on __main__) are seen.
    from runtime.cli import main as package_main

    sys.exit(package_main())
