"""PostgreSQL crashes and restarts during a stream of durable RAG ingests:
the handlers fail, their messages are redelivered until the database is
back, and no document is left with part of its chunks."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aisdk.cli.faults.outcome import Outcome, Size, until
from aisdk.cli.faults.postgres import ScratchPostgres
from aisdk.cli.faults.workloads import RagIngest, publish_acked, settle
from runtime.bus import Bus
from runtime.server import EmbeddedServer
from runtime.settings import BusSettings

NAME = "postgres-restart"
OUTAGE = 1.0


async def run(size: Size, workdir: Path) -> Outcome:
    out = Outcome(NAME, sent=size.messages)
    work = RagIngest("chaos")
    pg = ScratchPostgres()
    # Longer than a handler waiting for a connection while the database is
    # down, so that a slow attempt is not also redelivered meanwhile.
    durability = work.durability(ack_wait_ms=30_000, max_deliver=50)
    try:
        db = await pg.start()
        with EmbeddedServer(name="chaos-pg") as server:
            async with Bus(server.url, BusSettings(name="chaos-worker", durability_overrides=durability)) as worker, \
                    Bus(server.url, BusSettings(name="chaos-producer", durability_overrides=durability)) as producer:
                service = await worker.serve(work.handler(db))
                acked: set[str] = set()
                sending = asyncio.create_task(publish_acked(producer, work, range(size.messages), acked))
                await until(lambda: len(acked) >= size.messages // 3 or sending.done())
                await pg.crash()
                await asyncio.sleep(OUTAGE)
                await pg.restart()
                await sending
                await settle(producer, work, db, acked, out)
                stats = next(ep.stats for ep in service.endpoints if ep.spec is work.spec)
                # How often the outage made a handler fail and its message come back.
                out.detail.update(handler_errors=stats.errors, retried=stats.retried)
    finally:
        await pg.remove()
    return out
