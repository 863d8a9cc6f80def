"""Commands whose dependencies are an optional extra say which one, instead
of failing on an import deep inside."""

from __future__ import annotations

import importlib.util

from aisdk.cli.errors import CommandError

DIST = "aisdk-contracts"

# What a command group needs beyond the wheel's own dependencies, and how to
# get it. compat/ and generated/ai_betterproto are not in the wheel: the
# contract tooling runs in a checkout, where the editable install has them.
CHECKOUT_DEV = ("dev", "pip install -e '.[dev]' in a checkout of the project")
DEV = ("dev", f"pip install '{DIST}[dev]'")
BENCH = ("bench", f"pip install '{DIST}[bench]'")
COMPONENTS = ("components", f"pip install '{DIST}[components]'")
EVAL = ("eval", f"pip install '{DIST}[components,eval]'")


def missing(modules: tuple[str, ...]) -> list[str]:
    """The importable names among modules that are not installed."""
    gone = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:  # a parent package is missing
            found = False
        if not found:
            gone.append(name)
    return gone


def require(what: str, extra: tuple[str, str], modules: tuple[str, ...]) -> None:
    """Raise one line naming the extra when any of modules is not installed."""
    gone = missing(modules)
    if gone:
        name, how = extra
        raise CommandError(f"{what} needs the {name} extra ({', '.join(gone)} not installed): {how}")
