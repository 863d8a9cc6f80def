"""The nats-server crashes (SIGKILL) during a stream of durable RAG ingests
and comes back on the same store: every acknowledged publish is processed,
once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aisdk.cli.faults.outcome import Outcome, Size, until
from aisdk.cli.faults.workloads import RagIngest, Workload, publish_acked, settle
from aisdk.components.storage import temporary_database
from runtime.bus import Bus
from runtime.server import EmbeddedServer
from runtime.settings import BusSettings

NAME = "nats-restart"
# Down long enough that publishes fail and the clients reconnect.
OUTAGE = 1.0


def settings(name: str, work: Workload) -> BusSettings:
    return BusSettings(name=name, durability_overrides=work.durability(), publish_wait=1.0,
                       jetstream_timeout=1.0, reconnect_time_wait=0.1, max_reconnect_wait=0.5)


async def run(size: Size, workdir: Path) -> Outcome:
    out = Outcome(NAME, sent=size.messages)
    work = RagIngest("chaos")
    # A store directory of its own, kept across the restart.
    server = EmbeddedServer(store_dir=str(workdir / "jetstream"), name="chaos-restart")
    server.start()
    try:
        async with temporary_database() as db, \
                Bus(server.url, settings("chaos-worker", work)) as worker, \
                Bus(server.url, settings("chaos-producer", work)) as producer:
            await worker.serve(work.handler(db))
            acked: set[str] = set()
            sending = asyncio.create_task(publish_acked(producer, work, range(size.messages), acked))
            await until(lambda: len(acked) >= size.messages // 3 or sending.done())
            before = len((await work.tally(db)).found)
            server.kill()
            await asyncio.sleep(OUTAGE)
            server.start()
            out.detail["processed_before_crash"] = before
            await sending
            out.checks["the clients reconnected"] = await until(
                lambda: worker.nc.is_connected and producer.nc.is_connected)
            await settle(producer, work, db, acked, out)
    finally:
        server.stop()
    return out
