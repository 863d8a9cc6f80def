"""A consumer far slower than its producer on a core subject: its client
buffers at most the subscription's pending limit, drops the rest, and counts
every drop (Bus.slow_consumer_dropped); nothing crashes and every message is
either handled or counted as dropped."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ai.gateway.v1 import gateway_pb2
from ai.llmops.v1 import llmops_bus
from aisdk.cli.faults.outcome import Outcome, Size, until
from runtime.bus import Bus, Observed
from runtime.server import EmbeddedServer
from runtime.settings import BusSettings

NAME = "slow-consumer"
PENDING_LIMIT = 100
PAYLOAD = "x" * 1024


async def run(size: Size, workdir: Path) -> Outcome:
    out = Outcome(NAME, sent=size.slow_messages)
    seen: list[str] = []
    peak = 0

    async def slowly(o: Observed) -> None:
        await asyncio.sleep(0.001)
        seen.append(o.payload.alert_id if o.payload is not None else "")

    with EmbeddedServer(name="chaos-slow", jetstream=False) as server:
        async with Bus(server.url, BusSettings(name="chaos-slow", pending_msgs_limit=PENDING_LIMIT)) as consumer, \
                Bus(server.url, BusSettings(name="chaos-fast")) as producer:
            sub = await consumer.subscribe(llmops_bus.LLMOPS_COST_ALERTS, slowly, tenant_id="chaos")
            client = llmops_bus.LlmopsServiceClient(producer, "chaos")
            for i in range(size.slow_messages):
                await client.cost_alerts(gateway_pb2.CostAlert(alert_id=f"a{i}", message=PAYLOAD))
                if i % 256 == 0:
                    peak = max(peak, sub.pending_msgs)
            await producer.flush()

            def accounted() -> bool:
                nonlocal peak
                peak = max(peak, sub.pending_msgs)
                return len(seen) + consumer.slow_consumer_dropped >= size.slow_messages

            out.checks["every message handled or counted as dropped"] = await until(accounted)
            out.checks["the client buffered at most its pending limit"] = peak <= PENDING_LIMIT
            out.checks["the slow consumer was detected"] = consumer.slow_consumer_dropped > 0
            out.checks["the consumer is still connected"] = consumer.nc.is_connected
    dropped = consumer.slow_consumer_dropped
    out.processed = len(set(seen))
    out.duplicates = len(seen) - len(set(seen))
    # Core NATS is at-most-once: a drop is expected and counted; lost is
    # what went missing without being counted.
    out.lost = max(0, size.slow_messages - out.processed - dropped)
    out.detail.update(dropped=dropped, pending_limit=PENDING_LIMIT, peak_pending=peak)
    return out
