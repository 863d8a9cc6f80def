"""Tenant isolation on a real nats-server run from the configuration
`aisdk auth init` writes: for each pair of tenants, every attack fails and
the attacker sees nothing, while the victim's own traffic works."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import nats.errors
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.errors import APIError

import ai.registry
from ai.agent.v1 import agent_bus, agent_pb2
from ai.envelope.v1 import envelope_pb2
from ai.gateway.v1 import gateway_bus
from aisdk.cli.main import main as aisdk
from runtime import Bus, BusSettings, Context, JetStreamError, NoResponders
from runtime.codec import envelope, open_envelope
from runtime.server import EmbeddedServer, contract_max_payload, free_port
from runtime.settings import credentials
from tests.support import Gateway, llm_request, until

TENANTS = ("acme", "globex")
PAIRS = [(a, v) for a in TENANTS for v in TENANTS if a != v]
SECRET = "victim-secret"


class Agents(agent_bus.AgentServiceHandler):
    """Memory recall (a subject of five tokens) and durable tasks, recorded."""

    def __init__(self) -> None:
        self.recalled: list[tuple[str, str]] = []
        self.worked: list[tuple[str, str]] = []

    async def memory_retrieve(self, request: agent_pb2.MemoryQuery, ctx: Context) -> agent_pb2.MemoryRecall:
        self.recalled.append((ctx.tenant_id, request.query_id))
        return agent_pb2.MemoryRecall(query_id=request.query_id)

    async def tasks(self, request: agent_pb2.AgentTask, ctx: Context) -> None:
        self.worked.append((ctx.tenant_id, request.task_id))


def memory_query(query_id: str) -> agent_pb2.MemoryQuery:
    return agent_pb2.MemoryQuery(query_id=query_id, agent_id="a1", order=agent_pb2.MEMORY_ORDER_RECENCY)


def init(directory: Path, tenants: tuple[str, ...], port: int, *extra: str) -> None:
    assert aisdk(["auth", "init", "--tenants", ",".join(tenants), "--dir", str(directory),
                  "--port", str(port), *extra]) == 0


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmbeddedServer, Path]]:
    directory = tmp_path_factory.mktemp("tenancy")
    init(directory, TENANTS, free_port())
    with EmbeddedServer(config=str(directory / "nats-server.conf")) as server:
        yield server, directory


def settings(directory: Path, who: str, **options: Any) -> BusSettings:
    tenant = who != "service"
    return BusSettings(name=who, provision_streams=not tenant, **credentials(str(directory / f"{who}.nk")),
                       **options)


@pytest.fixture(scope="module")
async def services(deployment: tuple[EmbeddedServer, Path]) -> AsyncIterator[tuple[Bus, Gateway, Agents]]:
    server, directory = deployment
    gateway, agents = Gateway("svc"), Agents()
    async with Bus(server.url, settings(directory, "service")) as bus:
        await bus.serve(gateway)
        await bus.serve(agents)
        yield bus, gateway, agents


async def connect(server: EmbeddedServer, directory: Path, who: str) -> tuple[Client, list[str]]:
    """A raw client as `who`, and what the server reported to it (violations)."""
    errors: list[str] = []

    async def on_error(e: Exception) -> None:
        errors.append(str(e))

    nc = await nats.connect(server.url, nkeys_seed=str(directory / f"{who}.nk"), error_cb=on_error,
                            allow_reconnect=False, max_reconnect_attempts=0)
    return nc, errors


class Listener:
    """Everything a client receives on `>` and `_INBOX.>`."""

    def __init__(self) -> None:
        self.seen: list[Msg] = []

    async def start(self, nc: Client) -> None:
        for subject in (">", "_INBOX.>"):
            await nc.subscribe(subject, cb=self.on_msg)
        await nc.flush()

    async def on_msg(self, msg: Msg) -> None:
        self.seen.append(msg)

    def leaked(self, marker: str) -> list[str]:
        return [m.subject for m in self.seen if marker.encode() in m.data]


async def victim_traffic(server: EmbeddedServer, directory: Path, victim: str, agents: Agents, marker: str) -> None:
    """The positive control: the victim's requests in both subject shapes and
    a durable publish all go through."""
    async with Bus(server.url, settings(directory, victim)) as bus:
        reply = await gateway_bus.GatewayServiceClient(bus, victim).requests(llm_request(marker, f"{marker}-1"))
        assert reply.response == f"svc: {marker}"
        recall = await agent_bus.AgentServiceClient(bus, victim).memory_retrieve(memory_query(f"{marker}-2"))
        assert recall.query_id == f"{marker}-2"
        task = agent_pb2.AgentTask(task_id=f"{marker}-3", agent_id="a1", task_type="summarize")
        await agent_bus.AgentServiceClient(bus, victim).tasks(task)
    await until(lambda: (victim, f"{marker}-3") in agents.worked)


@pytest.mark.parametrize(("attacker", "victim"), PAIRS)
async def test_the_attacker_sees_nothing_of_the_victims_traffic(
    deployment: tuple[EmbeddedServer, Path], services: tuple[Bus, Gateway, Agents], attacker: str, victim: str
) -> None:
    server, directory = deployment
    _, gateway, agents = services
    nc, _ = await connect(server, directory, attacker)
    listener = Listener()
    try:
        await listener.start(nc)
        marker = f"{SECRET}-{victim}-listen"
        await victim_traffic(server, directory, victim, agents, marker)
        # The attacker's own request, sent after the victim's traffic: once its
        # reply is back, whatever would have leaked had reached the listener.
        async with Bus(server.url, settings(directory, attacker)) as bus:
            await gateway_bus.GatewayServiceClient(bus, attacker).requests(llm_request("mine", "own-1"))
        await nc.flush()
        assert (attacker, "own-1") not in agents.recalled
        assert listener.leaked(marker) == []
        assert any(m.subject.startswith("_INBOX.") for m in listener.seen), "the listener saw its own replies"
    finally:
        await nc.close()


@pytest.mark.parametrize(("attacker", "victim"), PAIRS)
@pytest.mark.parametrize("shape", ["ai.x.y.T", "ai.x.y.z.T"])
async def test_requests_to_the_victims_subjects_find_no_responders(
    deployment: tuple[EmbeddedServer, Path], services: tuple[Bus, Gateway, Agents],
    attacker: str, victim: str, shape: str,
) -> None:
    server, directory = deployment
    _, gateway, agents = services
    rid = f"attack-{attacker}-{victim}-{len(shape)}"
    async with Bus(server.url, settings(directory, attacker)) as bus:
        # The typed client would stamp the victim as the envelope's tenant too.
        with pytest.raises(NoResponders):
            if shape == "ai.x.y.T":
                await gateway_bus.GatewayServiceClient(bus, victim).requests(llm_request("x", rid))
            else:
                await agent_bus.AgentServiceClient(bus, victim).memory_retrieve(memory_query(rid))
        # The positive control: the same request to the attacker's own tenant.
        if shape == "ai.x.y.T":
            await gateway_bus.GatewayServiceClient(bus, attacker).requests(llm_request("x", f"{rid}-own"))
        else:
            await agent_bus.AgentServiceClient(bus, attacker).memory_retrieve(memory_query(f"{rid}-own"))
    assert rid not in gateway.seen
    assert all(q != rid for _, q in agents.recalled)


@pytest.mark.parametrize(("attacker", "victim"), PAIRS)
async def test_publishes_to_the_victims_subjects_reach_nobody(
    deployment: tuple[EmbeddedServer, Path], services: tuple[Bus, Gateway, Agents], attacker: str, victim: str
) -> None:
    server, directory = deployment
    svc_bus, _, agents = services
    victim_nc, _ = await connect(server, directory, victim)
    victim_sees, services_see = Listener(), Listener()
    try:
        await victim_sees.start(victim_nc)
        for subject in ("ai.agent.status.*", "ai.gateway.cache.invalidate.*"):
            await svc_bus.nc.subscribe(subject, cb=services_see.on_msg)
        await svc_bus.flush()
        marker = f"attack-publish-{attacker}-{victim}"
        async with Bus(server.url, settings(directory, attacker)) as bus:
            for subject in (f"ai.agent.status.{victim}", f"ai.gateway.cache.invalidate.{victim}"):
                await bus.nc.publish(subject, marker.encode())
            # A durable publish to the victim's work queue is not stored for anyone.
            task = agent_pb2.AgentTask(task_id=marker, agent_id="a1", task_type="summarize")
            with pytest.raises(JetStreamError) as refused:
                await agent_bus.AgentServiceClient(bus, victim).tasks(task, timeout=1)
            assert "no JetStream stream answered" in str(refused.value)
            # The control, sent after: the attacker's publish on its own subject arrives.
            await bus.nc.publish(f"ai.agent.status.{attacker}", marker.encode())
        await until(lambda: any(m.subject == f"ai.agent.status.{attacker}" for m in services_see.seen))
        await victim_nc.flush()
        assert victim_sees.leaked(marker) == []
        assert [m.subject for m in services_see.seen if marker.encode() in m.data] == [f"ai.agent.status.{attacker}"]
        assert all(t != marker for _, t in agents.worked)
    finally:
        await victim_nc.close()


@pytest.mark.parametrize(("attacker", "victim"), PAIRS)
async def test_a_forged_reply_address_is_not_delivered(
    deployment: tuple[EmbeddedServer, Path], services: tuple[Bus, Gateway, Agents], attacker: str, victim: str
) -> None:
    server, directory = deployment
    _, gateway, _ = services
    victim_nc, _ = await connect(server, directory, victim)
    inbox = Listener()
    try:
        victim_inbox = victim_nc.new_inbox()
        await victim_nc.subscribe(victim_inbox, cb=inbox.on_msg)
        await victim_nc.flush()
        rid = f"forged-{attacker}-{victim}"
        async with Bus(server.url, settings(directory, attacker)) as bus:
            env = envelope(gateway_bus.GATEWAY_REQUESTS.request_name, "1.0", attacker, "x",
                           llm_request("x", rid).SerializeToString())
            await bus.nc.publish(f"ai.gateway.requests.{attacker}", env.SerializeToString(), reply=victim_inbox)
            await until(lambda: rid in gateway.seen)
            # The service answered the forged request before this one: once
            # this reply is back, the forged one went wherever it went.
            await gateway_bus.GatewayServiceClient(bus, attacker).requests(llm_request("x", f"{rid}-after"))
        await victim_nc.flush()
        assert inbox.seen == []
    finally:
        await victim_nc.close()


@pytest.mark.parametrize(("attacker", "victim"), PAIRS)
async def test_jetstream_of_the_victim_cannot_be_read(
    deployment: tuple[EmbeddedServer, Path], services: tuple[Bus, Gateway, Agents], attacker: str, victim: str
) -> None:
    server, directory = deployment
    svc_bus, _, _ = services
    victim_nc, _ = await connect(server, directory, victim)
    attacker_nc, _ = await connect(server, directory, attacker)
    stream = f"PRIVATE_{victim.upper()}"
    try:
        # The victim's own stream, in its own account, read by the victim (the control).
        vjs = victim_nc.jetstream()
        await vjs.add_stream(name=stream, subjects=[f"private.{victim}"])
        await vjs.publish(f"private.{victim}", SECRET.encode())
        assert (await vjs.get_msg(stream, 1)).data == SECRET.encode()
        platform = "AI_AGENT_TASKS"
        assert (await svc_bus.nc.jetstream().stream_info(platform)).state.messages >= 0
        ajs = attacker_nc.jetstream()
        for name in (stream, platform):
            with pytest.raises(APIError):
                await ajs.add_consumer(name, durable_name="thief")
            with pytest.raises(APIError):
                await ajs.get_msg(name, 1)
            # The next message of the services' consumer, asked for by hand.
            with pytest.raises(nats.errors.NoRespondersError):
                await attacker_nc.request(f"$JS.API.CONSUMER.MSG.NEXT.{name}.agent_workers",
                                          b'{"batch": 1, "no_wait": true}', timeout=2)
    finally:
        await vjs.delete_stream(stream)
        await victim_nc.close()
        await attacker_nc.close()


@pytest.mark.parametrize(("attacker", "victim"), PAIRS)
async def test_service_discovery_is_not_visible_to_tenants(
    deployment: tuple[EmbeddedServer, Path], services: tuple[Bus, Gateway, Agents], attacker: str, victim: str
) -> None:
    server, directory = deployment
    svc_bus, _, _ = services
    nc, _ = await connect(server, directory, attacker)
    try:
        with pytest.raises(nats.errors.NoRespondersError):
            await nc.request("$SRV.PING", b"", timeout=2)
        with pytest.raises(nats.errors.NoRespondersError):
            await nc.request("$SRV.INFO", b"", timeout=2)
    finally:
        await nc.close()
    # The control: the services see their own.
    answer = await svc_bus.nc.request("$SRV.PING", b"", timeout=2)
    assert json.loads(answer.data)["type"] == "io.nats.micro.v1.ping_response"


async def test_the_servers_stamp_names_the_caller_and_cannot_be_forged(
    deployment: tuple[EmbeddedServer, Path], services: tuple[Bus, Gateway, Agents]
) -> None:
    server, directory = deployment
    svc_bus, gateway, _ = services
    acme, _ = await connect(server, directory, "acme")
    try:
        env = envelope(gateway_bus.GATEWAY_REQUESTS.request_name, "1.0", "acme", "x",
                       llm_request("x", "stamp-1").SerializeToString())
        forged = json.dumps({"acc": "globex"})
        reply = await acme.request("ai.gateway.requests.acme", env.SerializeToString(), timeout=2,
                                   headers={"Nats-Request-Info": forged})
        # The server replaced the forged header with acme's account: served.
        assert open_envelope("r", reply.data).type != envelope_pb2.Error.DESCRIPTOR.full_name
    finally:
        await acme.close()
    # Inside the services' account nothing stamps: a stamp that names another
    # tenant than the subject's is refused, whatever the envelope says.
    env = envelope(gateway_bus.GATEWAY_REQUESTS.request_name, "1.0", "acme", "x",
                   llm_request("x", "stamp-2").SerializeToString())
    reply = await svc_bus.nc.request("ai.gateway.requests.acme", env.SerializeToString(), timeout=2,
                                     headers={"Nats-Request-Info": forged})
    answer = open_envelope("r", reply.data)
    error = envelope_pb2.Error.FromString(answer.data)
    assert error.code == envelope_pb2.Error.CODE_PERMISSION_DENIED
    assert "caller account 'globex'" in error.message
    assert "stamp-2" not in gateway.seen


async def test_a_reload_admits_a_new_tenant_and_keeps_connections_up(
    tmp_path: Path, services: tuple[Bus, Gateway, Agents]
) -> None:
    port = free_port()
    init(tmp_path, ("acme",), port)
    with EmbeddedServer(config=str(tmp_path / "nats-server.conf")) as server:
        async with Bus(server.url, settings(tmp_path, "service")) as svc, \
                Bus(server.url, settings(tmp_path, "acme")) as acme:
            await svc.serve(Gateway("svc"))
            acme_key = (tmp_path / "acme.nk").read_bytes()
            init(tmp_path, ("acme", "initech"), port)
            assert (tmp_path / "acme.nk").read_bytes() == acme_key
            server.reload()

            async def admitted() -> bool:
                try:
                    nc, _ = await connect(server, tmp_path, "initech")
                except (nats.errors.Error, asyncio.TimeoutError, OSError):  # not reloaded yet: refused or reset
                    return False
                await nc.close()
                return True

            deadline = asyncio.get_running_loop().time() + 10
            while not await admitted():
                assert asyncio.get_running_loop().time() < deadline, "the new tenant was never admitted"
            # Connections made before the reload stayed up and still work.
            reply = await gateway_bus.GatewayServiceClient(acme, "acme").requests(llm_request("still", "a1"))
            assert reply.response == "svc: still"


def test_auth_init_refuses_a_reserved_or_unsafe_tenant(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for bad in ("SERVICES", "a.b", "*"):
        assert aisdk(["auth", "init", "--tenants", bad, "--dir", str(tmp_path)]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("aisdk auth: ") and "\n" not in err, err
    assert not (tmp_path / "nats-server.conf").exists()



async def test_the_configuration_carries_what_the_contracts_need(deployment: tuple[EmbeddedServer, Path]) -> None:
    # rag.ingest's 16 MiB of document content, plus the envelope, fits.
    server, directory = deployment
    nc, _ = await connect(server, directory, "service")
    try:
        assert nc.max_payload == contract_max_payload(ai.registry.BY_KEY.values()) == 17 << 20
    finally:
        await nc.close()
