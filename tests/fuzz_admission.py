"""A coverage-guided fuzz run (atheris) of the envelope decoder and the
admission of every operation in the registry; any exception other than a
PlatformError is a crash.

    python tests/fuzz_admission.py -runs=200000
"""

from __future__ import annotations

import sys
from typing import Any

import atheris

with atheris.instrument_imports():
    from ai import registry
    from runtime.bus import Bus
    from runtime.endpoint import Endpoint
    from runtime.errors import PlatformError
    from runtime.settings import BusSettings

SPECS = list(registry.SUBJECTS)


async def _never(payload: Any, ctx: Any) -> None:
    raise AssertionError("admission only")


BUS = Bus("nats://127.0.0.1:1", BusSettings(name="fuzz"))
ENDPOINTS = [Endpoint(BUS, s, _never, queue_group="q", concurrency=1, subject=s.subject("acme")) for s in SPECS]


def one(data: bytes) -> None:
    if not data:
        return
    ep = ENDPOINTS[data[0] % len(ENDPOINTS)]
    try:
        ep.open(ep.subject, data[1:])
    except PlatformError:
        pass


if __name__ == "__main__":
    atheris.Setup(sys.argv, one)
    atheris.Fuzz()
