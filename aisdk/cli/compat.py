"""`aisdk check | release`: compatibility against the released baselines.

compat/ is contract tooling for a checkout (it reads proto/, the baselines
and the betterproto flavour, and runs buf), so it is not in the wheel; the
heavy imports wait until a command runs, so `aisdk --help` stays fast.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from aisdk.cli import extras

# The steps and their default are compat's (plus the AsyncAPI step, which
# lives here, above compat); repeated so that `aisdk --help` works where
# compat is not installed. tests/test_cli.py keeps them equal.
STEPS = ("lint", "breaking", "registry", "rules", "versions", "drift", "properties", "asyncapi")
EXAMPLES = 30
_NEEDS = ("compat", "grpc_tools", "hypothesis", "betterproto", "ai_betterproto")


def cmd_check(args: argparse.Namespace) -> int:
    extras.require("aisdk check", extras.CHECKOUT_DEV, _NEEDS)
    from aisdk.cli import asyncapi_diff
    from codegen.toolchain import project_root
    from compat.check import run_check
    from compat.report import CompatError, errors

    found = run_check(project_root(), args.against, set(args.skip), args.examples,
                      more={asyncapi_diff.STEP: asyncapi_diff.check})
    failed = errors(found)
    if failed:
        raise CompatError(f"{len(failed)} error{'s' if len(failed) > 1 else ''}: see above")
    warnings = sum(f.severity == "warning" for f in found)
    note = f" ({warnings} warning{'s' if warnings > 1 else ''})" if warnings else ""
    print(f"aisdk check: ok{note}")
    return 0


def cmd_release(args: argparse.Namespace) -> int:
    extras.require("aisdk release", extras.CHECKOUT_DEV, _NEEDS)
    from codegen.toolchain import project_root
    from compat import images
    from compat.check import run_check
    from compat.report import CompatError, errors

    root = project_root()
    out = images.next_baseline(root, args.version)
    if errors(run_check(root, skip={"drift", "properties"})):
        raise CompatError(f"{out.stem} not released: the contracts break a released version (see above)")
    images.write_baseline(root, out)
    print(f"released {out.stem}: {out.relative_to(root)} (commit it)")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "check",
        help="lint, breaking changes, subject registry, drift and compatibility properties",
        description="Fails on any wire- or subject-breaking change against every released baseline "
        "(compat/baselines/) or against --against REF.",
    )
    p.add_argument(
        "--against",
        metavar="REF",
        help="a git ref (HEAD, main, a tag) or a .binpb image; default: every baseline in compat/baselines/",
    )
    p.add_argument("--skip", action="append", choices=STEPS, default=[], help="skip a check (repeatable)")
    # AISDK_CHECK_EXAMPLES lets a harness that runs the check many times (the
    # docs test) trade depth for time; the suite's own property run stays full.
    examples = int(os.environ.get("AISDK_CHECK_EXAMPLES", EXAMPLES))
    p.add_argument("--examples", type=int, default=examples,
                   help=f"examples per property (default {EXAMPLES}, or $AISDK_CHECK_EXAMPLES)")
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("release", help="cut the baseline of a contract release into compat/baselines/")
    p.add_argument("version", help="vMAJOR.MINOR.PATCH, newer than every baseline")
    p.set_defaults(func=cmd_release)
