"""The same code on a three-node NATS cluster: requests cross routes, and a
worker whose node dies carries on from another node of its URL list."""

from __future__ import annotations

import asyncio

from ai.gateway.v1 import gateway_bus
from runtime.bus import Bus
from runtime.errors import NoResponders, RequestTimeout
from runtime.server import EmbeddedCluster
from runtime.settings import BusSettings
from tests.support import Gateway, llm_request, until


async def test_request_reply_across_the_cluster_survives_a_node_loss() -> None:
    with EmbeddedCluster(3) as cluster:
        a, b, c = cluster.urls
        worker = Bus([a, b, c], BusSettings(name="worker", reconnect_time_wait=0.1))
        await worker.connect()
        gw = Gateway()
        await worker.serve(gw)
        async with Bus([c, b, a], BusSettings(name="client", reconnect_time_wait=0.1)) as client_bus:
            client = gateway_bus.GatewayServiceClient(client_bus, "acme")

            async def ask(i: int) -> str:
                for _ in range(50):  # routes propagate interest asynchronously
                    try:
                        return (await client.requests(llm_request(request_id=f"r{i}"), timeout=1)).request_id
                    except (NoResponders, RequestTimeout):  # until the route carries the subscription
                        await asyncio.sleep(0.1)
                raise AssertionError("no reply across the cluster")

            assert await ask(0) == "r0"
            served_by = worker.nc.connected_url
            assert served_by is not None
            node = next(n for n in cluster.nodes if n.port == served_by.port)
            node.stop()
            await until(lambda: worker.nc.is_connected and worker.nc.connected_url is not None
                        and worker.nc.connected_url.port != served_by.port, timeout=20)
            assert await ask(1) == "r1"
        await worker.close()
    assert {"r0", "r1"} <= set(gw.seen)
