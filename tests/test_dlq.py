"""`aisdk dlq` on a real nats-server and the real LLMOps service: a message
that fails is dead-lettered with its reason and attempts; list filters by
operation, tenant and age; show decodes it; replay, once the cause is fixed,
re-drives the original envelope (id and trace context unchanged), its effect
happens once, and the letter is gone."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest

from ai.envelope.v1 import envelope_pb2
from ai.llmops.v1 import llmops_bus, llmops_pb2
from aisdk.cli import letters
from aisdk.components import storage
from aisdk.components.llmops import LlmOps
from aisdk.components.llmops.budgets import Budgets
from runtime import codec
from runtime.bus import Bus
from runtime.contract import Context
from runtime.errors import HandlerError
from runtime.server import EmbeddedServer
from runtime.settings import BusSettings
from tests.support import ROOT, aisdk, until

OPS = llmops_bus.LLMOPS_OPERATIONS
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class Fixable(LlmOps):
    """The real service behind a switch: while `broken`, every operation is
    refused as unprocessable, as a bad deployment would."""

    def __init__(self, url: str) -> None:
        super().__init__(budgets=Budgets(), database_url=url)
        self.broken = True
        self.seen: list[envelope_pb2.Envelope] = []

    async def operations(self, request: llmops_pb2.LlmOperation, ctx: Context) -> None:
        self.seen.append(ctx.envelope)  # type: ignore[attr-defined]
        if self.broken:
            raise HandlerError(envelope_pb2.Error.CODE_FAILED_PRECONDITION, "the model price table is missing")
        await super().operations(request, ctx)


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer(name="dlq-test") as s:
        yield s


@pytest.fixture
async def db() -> AsyncIterator[str]:
    async with storage.temporary_database() as url:
        yield url


def dlq(server: EmbeddedServer, *args: str) -> list[dict[str, Any]]:
    run = aisdk(ROOT, "dlq", *args, "--nats-url", server.url)
    assert run.returncode == 0, run.stderr
    return [json.loads(line) for line in run.stdout.splitlines()]


async def rows(url: str, tenant: str) -> int:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute("SELECT count(*) FROM llmops_operations WHERE tenant_id = %s", (tenant,))
        row = await cur.fetchone()
        return int(row[0]) if row else 0


async def test_a_letter_is_listed_shown_and_replayed_once_fixed(server: EmbeddedServer, db: str) -> None:
    service = Fixable(db)
    async with Bus(server.url, BusSettings(name="dlq-worker")) as worker, \
            Bus(server.url, BusSettings(name="dlq-producer")) as producer:
        await worker.serve(service)
        op = llmops_pb2.LlmOperation(operation_id="op-dlq-1", operation_type=llmops_pb2.OPERATION_TYPE_CHAT,
                                     status=llmops_pb2.OPERATION_STATUS_SUCCESS, model="m", cost=0.5)
        # A traced producer: the envelope carries the trace context.
        env = codec.envelope(OPS.request_name, OPS.schema_version, "dlqacme", "test", op.SerializeToString(),
                             traceparent=TRACEPARENT)
        js = producer.nc.jetstream()
        await js.publish(producer.subject(OPS, "dlqacme"), env.SerializeToString(), headers={"Nats-Msg-Id": env.id})
        found: list[letters.Letter] = []
        for _ in range(400):  # a bounded wait for the letter
            found = await letters.read(js, "ai", operation=OPS.key, tenant="dlqacme")
            if found:
                break
            await asyncio.sleep(0.05)
        assert len(found) == 1

        (listed,) = dlq(server, "list", "--operation", OPS.key, "--tenant", "dlqacme")
        assert listed["reason"].endswith("the model price table is missing")
        assert (listed["code"], listed["attempts"], listed["id"]) == ("CODE_FAILED_PRECONDITION", 1, env.id)
        assert listed["traceparent"] == TRACEPARENT
        assert dlq(server, "list", "--tenant", "dlqother") == []
        assert dlq(server, "list", "--operation", OPS.key, "--min-age", "1h") == []
        assert [r["seq"] for r in dlq(server, "list", "--max-age", "1h", "--tenant", "dlqacme")] == [listed["seq"]]

        (shown,) = dlq(server, "show", str(listed["seq"]))
        assert shown["payload"]["operation_id"] == "op-dlq-1"
        assert shown["envelope"]["traceparent"] == TRACEPARENT

        service.broken = False
        (replayed,) = dlq(server, "replay", str(listed["seq"]))
        assert replayed == {"replayed": listed["seq"], "subject": "ai.llmops.operations.dlqacme", "id": env.id}
        await until(lambda: len(service.seen) == 2)
        again = service.seen[-1]
        assert (again.id, again.traceparent, again.data) == (env.id, TRACEPARENT, env.data)
        stats = next(ep.stats for ep in worker.services[0].endpoints if ep.spec is OPS)
        await until(lambda: stats.handled >= 1)
        assert await rows(db, "dlqacme") == 1
        assert dlq(server, "list", "--tenant", "dlqacme") == []


def test_replay_of_a_missing_letter_is_one_line(server: EmbeddedServer) -> None:
    run = aisdk(ROOT, "dlq", "replay", "999999", "--nats-url", server.url)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [
        "aisdk dlq: no dead letter at sequence 999999 (see `aisdk dlq list`)"]


def test_a_bad_age_is_refused_before_connecting() -> None:
    run = aisdk(ROOT, "dlq", "list", "--min-age", "soon")
    assert run.returncode == 2
    assert "'soon' is not a duration such as 30s, 10m, 2h or 7d" in run.stderr
