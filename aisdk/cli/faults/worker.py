"""A worker process of the worker-kill scenario: the real LLMOps service,
which holds one chosen operation after storing it and before the ack, so
that it can be killed at exactly that point.

    python -m aisdk.cli.faults.worker NATS_URL DATABASE_URL TENANT HOLD_KEY ACK_WAIT_MS

It prints one line per event on stdout: `ready`, `holding KEY`, `done KEY ATTEMPT`.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from ai.llmops.v1 import llmops_pb2
from aisdk.components.llmops import LlmOps
from aisdk.components.llmops.budgets import Budgets
from runtime.bus import Bus
from runtime.contract import Context
from runtime.settings import BusSettings
from aisdk.cli.faults.workloads import LlmopsOperations


def say(line: str) -> None:
    print(line, flush=True)


class Holding(LlmOps):
    def __init__(self, database_url: str, hold: str) -> None:
        super().__init__(budgets=Budgets(), database_url=database_url)
        self.hold = hold

    async def operations(self, request: llmops_pb2.LlmOperation, ctx: Context) -> None:
        await super().operations(request, ctx)
        if request.operation_id == self.hold and ctx.attempt == 1:
            # The effect is committed; the ack is not sent. Killed here, the
            # message is redelivered and must not be stored again.
            say(f"holding {request.operation_id}")
            await asyncio.Event().wait()
        say(f"done {request.operation_id} {ctx.attempt}")


async def main(url: str, database_url: str, tenant: str, hold: str, ack_wait_ms: int) -> None:
    work = LlmopsOperations(tenant)
    settings = BusSettings(name="chaos-worker", durability_overrides=work.durability(ack_wait_ms=ack_wait_ms))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with Bus(url, settings) as bus:
        await bus.serve(Holding(database_url, hold))
        say("ready")
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])))
