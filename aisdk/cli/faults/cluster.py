"""A node of a three-node cluster is killed (SIGKILL) under load, with the
work queue's stream replicated on all three: the clients fail over, and no
acknowledged message is lost."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats.errors
from nats.js.errors import APIError

from aisdk.cli.faults.outcome import Outcome, Size, until
from aisdk.cli.faults.workloads import LlmopsOperations, Workload, publish_acked, settle
from aisdk.components.storage import temporary_database
from runtime.bus import Bus
from runtime.jetstream import stream_config
from runtime.server import EmbeddedCluster
from runtime.settings import BusSettings

NAME = "cluster-node-kill"
REPLICAS = 3


def settings(name: str, work: Workload) -> BusSettings:
    return BusSettings(name=name, durability_overrides=work.durability(), publish_wait=1.0,
                       jetstream_timeout=2.0, reconnect_time_wait=0.1, max_reconnect_wait=0.5)


async def replicated(bus: Bus, work: Workload) -> bool:
    """Create the stream with three replicas ahead of the runtime, as an
    operator would; the runtime leaves replicas alone. False until the
    cluster has elected its JetStream leader."""
    durability = work.durability()[work.spec.key]
    config = stream_config(bus.prefix, work.spec, durability).evolve(num_replicas=REPLICAS)
    try:
        await bus.nc.jetstream(timeout=2).add_stream(config)
    except (APIError, nats.errors.Error, asyncio.TimeoutError):
        return False
    return True


async def run(size: Size, workdir: Path) -> Outcome:
    out = Outcome(NAME, sent=size.messages)
    work = LlmopsOperations("chaos")
    with EmbeddedCluster(3, jetstream=True, name="chaos-cluster") as cluster:
        a, b, c = cluster.urls
        async with temporary_database() as db, \
                Bus([a, b, c], settings("chaos-worker", work)) as worker, \
                Bus([c, b, a], settings("chaos-producer", work)) as producer:
            out.checks["the stream has three replicas"] = await until(lambda: replicated(producer, work))
            await worker.serve(work.handler(db))
            acked: set[str] = set()
            sending = asyncio.create_task(publish_acked(producer, work, range(size.messages), acked))
            await until(lambda: len(acked) >= size.messages // 3 or sending.done())
            # The producer's own node: its failover is then certain to be exercised.
            url = producer.nc.connected_url
            assert url is not None
            victim = next(n for n in cluster.nodes if n.port == url.port)
            info = await producer.nc.jetstream(timeout=2).stream_info(work.stream)
            out.detail["killed_the_stream_leader"] = info.cluster is not None and info.cluster.leader == victim.name
            victim.kill()
            await sending

            def failed_over() -> bool:
                now = producer.nc.connected_url
                return (producer.nc.is_connected and now is not None and now.port != url.port
                        and worker.nc.is_connected)

            out.checks["the clients failed over"] = await until(failed_over)
            await settle(producer, work, db, acked, out)
    return out
