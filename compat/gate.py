"""The contract gate of a pull request: `python -m compat.gate`.

One script for CI and for pre-commit: it runs `aisdk check --against REF`
(lint, breaking, registry, rules, drift, properties; default REF
origin/main), prints the report as it goes, and writes it as Markdown to
the job summary (`$GITHUB_STEP_SUMMARY`, or `--summary FILE`). It exits
with the check's status, so a breaking change fails the job or the commit.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

DEFAULT_AGAINST = "origin/main"


def summary(report: str, against: str, passed: bool) -> str:
    """The report as a job summary: a verdict, then the check's own lines."""
    verdict = "passed" if passed else "failed"
    lines = [f"## Contract check against `{against}`: {verdict}", "", "```text", report.rstrip(), "```", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m compat.gate", description="aisdk check against a git ref, reported as a job summary.")
    parser.add_argument("--against", default=os.environ.get("CONTRACTS_AGAINST", DEFAULT_AGAINST),
                        help=f"git ref to compare with (default {DEFAULT_AGAINST}, or $CONTRACTS_AGAINST)")
    parser.add_argument("--summary", type=Path, default=None,
                        help="append the Markdown report here (default $GITHUB_STEP_SUMMARY, if set)")
    parser.add_argument("--examples", type=int, default=None, help="examples per property (aisdk check's default)")
    args = parser.parse_args(argv)
    cmd = [sys.executable, "-m", "aisdk.cli", "check", "--against", args.against]
    if args.examples is not None:
        cmd += ["--examples", str(args.examples)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    report = result.stdout + result.stderr
    sys.stdout.write(report)
    target = args.summary or (Path(os.environ["GITHUB_STEP_SUMMARY"]) if os.environ.get("GITHUB_STEP_SUMMARY") else None)
    if target is not None:
        with target.open("a", encoding="utf-8") as f:
            f.write(summary(report, args.against, result.returncode == 0))
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
