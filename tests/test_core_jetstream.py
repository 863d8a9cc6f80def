"""JetStream told truthfully: "not enabled" only when the server says so;
streams and consumers follow the contract or fail naming the difference;
dead letters counted by what happened to them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from nats.js import api

from ai.agent.v1 import agent_bus, agent_pb2
from runtime.bus import Bus
from runtime.contract import Context, Durability
from runtime.jetstream import ConfigMismatch, JetStreamError, JetStreamUnavailable, consumer_name, stream_name
from runtime.server import EmbeddedServer
from runtime.settings import BusSettings
from tests.support import until

TENANT = "acme"
CONFIG = """
accounts {
  JS: { jetstream: enabled, users: [
    {user: full, password: full},
    {user: nojsapi, password: nojsapi, permissions: {publish: {deny: ["$JS.API.>"]}}}
  ]}
  PLAIN: { users: [ {user: plain, password: plain} ] }
}
"""


def task(task_id: str) -> agent_pb2.AgentTask:
    return agent_pb2.AgentTask(task_id=task_id, agent_id="manager", task_type="summarize")


def prefix() -> str:
    """Streams of their own per test: names derive from the prefix."""
    return "p" + uuid.uuid4().hex[:10]


def overrides(max_deliver: int = 3, ack_wait_ms: int = 2000) -> dict[str, Durability]:
    return {"agent.tasks": Durability("work_queue", max_deliver, ack_wait_ms, (50,), 60_000, 0)}


class Failing(agent_bus.AgentServiceHandler):
    async def tasks(self, request: agent_pb2.AgentTask, ctx: Context) -> None:
        raise RuntimeError("cannot")


@pytest.fixture(scope="module")
def accounts_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    conf = tmp_path_factory.mktemp("conf") / "accounts.conf"
    conf.write_text(CONFIG)
    with EmbeddedServer(extra_args=("-c", str(conf))) as server:
        yield server


async def test_an_account_without_jetstream_is_told_so(accounts_server: EmbeddedServer) -> None:
    async with Bus(accounts_server.url, BusSettings(user="plain", password="plain")) as bus:
        with pytest.raises(JetStreamUnavailable, match="not enabled"):
            await agent_bus.AgentServiceClient(bus, TENANT).tasks(task("a"))


async def test_a_permissions_error_is_not_reported_as_jetstream_off(accounts_server: EmbeddedServer) -> None:
    settings = BusSettings(user="nojsapi", password="nojsapi", jetstream_timeout=0.5)
    async with Bus(accounts_server.url, settings) as bus:
        with pytest.raises(JetStreamError) as failed:
            await agent_bus.AgentServiceClient(bus, TENANT).tasks(task("a"))
        message = str(failed.value)
        assert "-js" not in message
        assert "did not answer" in message and "ermissions violation" in message


async def test_consumer_settings_follow_the_contract(nats_url: str) -> None:
    p = prefix()
    async with Bus(nats_url, BusSettings(prefix=p, durability_overrides=overrides(3, 2000))) as bus:
        await bus.serve(Failing(), tenants=[TENANT])
    async with Bus(nats_url, BusSettings(prefix=p, durability_overrides=overrides(7, 3000))) as bus:
        service = await bus.serve(Failing(), tenants=[TENANT])
        info = await bus.nc.jetstream().consumer_info(
            stream_name(p, agent_bus.AGENT_TASKS), consumer_name(f"{service.endpoints[0].queue_group}_{TENANT}")
        )
    assert (info.config.max_deliver, info.config.ack_wait) == (7, 3.0)


class Watcher(agent_bus.AgentServiceHandler):
    async def results(self, request: agent_pb2.TaskResult, ctx: Context) -> None:
        pass


async def test_a_consumer_nats_cannot_update_is_refused_by_name(nats_url: str) -> None:
    p = prefix()
    spec = agent_bus.AGENT_RESULTS  # an event stream (limits): any ack policy is allowed on it
    async with Bus(nats_url, BusSettings(prefix=p)) as bus:
        js = bus.nc.jetstream()
        stream = stream_name(p, spec)
        await js.add_stream(api.StreamConfig(name=stream, subjects=[spec.wildcard(p)],
                                             retention=api.RetentionPolicy.LIMITS, duplicate_window=120.0))
        await js.add_consumer(stream, api.ConsumerConfig(durable_name=f"watcher_{TENANT}", ack_policy=api.AckPolicy.ALL,
                                                         filter_subject=spec.subject(TENANT, p)))
        with pytest.raises(ConfigMismatch, match="ack_policy: 'all' -> 'explicit'"):
            await bus.serve(Watcher(), tenants=[TENANT], consumer="watcher")


async def test_a_stream_nats_cannot_update_is_refused_by_name(nats_url: str) -> None:
    p = prefix()
    async with Bus(nats_url, BusSettings(prefix=p)) as bus:
        await bus.nc.jetstream().add_stream(api.StreamConfig(
            name=stream_name(p, agent_bus.AGENT_TASKS), subjects=[agent_bus.AGENT_TASKS.wildcard(p)],
            retention=api.RetentionPolicy.LIMITS,
        ))
        with pytest.raises(ConfigMismatch, match="retention: 'limits' -> 'workqueue'"):
            await agent_bus.AgentServiceClient(bus, TENANT).tasks(task("a"))


async def test_dead_letters_are_counted_as_stored_or_failed(nats_url: str, tmp_path: Path) -> None:
    p = prefix()
    async with Bus(nats_url, BusSettings(prefix=p, durability_overrides=overrides(max_deliver=1))) as bus:
        # An operator's limit on the dead-letter stream: one letter, then refusals.
        dlq = f"{p}_DLQ".upper()
        await bus.nc.jetstream().add_stream(api.StreamConfig(
            name=dlq, subjects=[f"{p}.dlq.>"], max_msgs=1, discard=api.DiscardPolicy.NEW,
        ))
        service = await bus.serve(Failing(), tenants=[TENANT])
        [endpoint] = service.endpoints
        client = agent_bus.AgentServiceClient(bus, TENANT)
        await client.tasks(task("one"))
        await until(lambda: endpoint.stats.dead_lettered + endpoint.stats.dead_letter_failed == 1)
        await client.tasks(task("two"))
        await until(lambda: endpoint.stats.dead_lettered + endpoint.stats.dead_letter_failed == 2)
        assert (endpoint.stats.dead_lettered, endpoint.stats.dead_letter_failed) == (1, 1)
        assert (bus.dead_letters, bus.dead_letters_failed) == (1, 1)
        # Counted once stored: the stream has it by now, and kept the operator's limit.
        info = await bus.nc.jetstream().stream_info(dlq)
        assert (info.state.messages, info.config.max_msgs) == (1, 1)
