"""Two prompt workers and a restart, on a real nats-server and PostgreSQL:
every worker answers from the same stored templates, a worker started later
knows every template published before it (even one published while no
worker ran), and "latest" is the version published last."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from ai.prompt.v1 import prompt_bus, prompt_pb2
from aisdk.components import storage
from aisdk.components.prompt import store
from aisdk.components.prompt import PromptManager
from runtime.bus import Bus
from runtime.settings import BusSettings
from runtime.contract import Context
from tests.test_prompt_component import wait_stored


class Counting(PromptManager):
    """The real worker; it counts the context requests it answered."""

    def __init__(self, url: str) -> None:
        super().__init__(database_url=url)
        self.answered = 0

    async def context(self, request: prompt_pb2.ContextRequest, ctx: Context) -> prompt_pb2.ContextResult:
        result = await super().context(request, ctx)
        self.answered += 1
        return result


@pytest.fixture
async def url() -> AsyncIterator[str]:
    async with storage.temporary_database() as u:
        yield u


Start = Callable[[str], Awaitable[tuple[Bus, Counting]]]


@pytest.fixture
def tenant() -> str:
    """Its own tenant per test: the template stream outlives a test on the
    session's server, and a new per-tenant consumer replays its tenant."""
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture
async def start(nats_url: str, url: str, tenant: str) -> AsyncIterator[Start]:
    """Starts a worker on its own connection; all are closed after the test."""
    buses: list[Bus] = []

    async def worker(name: str) -> tuple[Bus, Counting]:
        bus = Bus(nats_url, BusSettings(name=name))
        await bus.connect()
        buses.append(bus)
        handler = Counting(url)
        await bus.serve(handler, tenants=[tenant])
        return bus, handler

    yield worker
    for b in buses:
        await b.close()


def template(version: str, text: str) -> prompt_pb2.PromptTemplate:
    return prompt_pb2.PromptTemplate(template_id="faq", template=text, version=version)


def ask(n: int, version: str = "") -> prompt_pb2.ContextRequest:
    return prompt_pb2.ContextRequest(request_id=f"r{n}", template_id="faq", template_version=version,
                                     variables={"q": f"question {n}"})


async def test_two_workers_answer_alike_and_a_restart_forgets_nothing(
    bus: Bus, start: Start, url: str, tenant: str
) -> None:
    (bus_a, a), (bus_b, b) = await start("prompt-a"), await start("prompt-b")
    client = prompt_bus.PromptServiceClient(bus, tenant)
    await client.templates(template("1", "v1: {q}"))
    await client.templates(template("2", "v2: {q}"))
    await wait_stored(url, 2)

    n = 0
    while a.answered < 3 or b.answered < 3:  # the queue group spreads requests over both workers
        n += 1
        assert n < 500, "one worker never got a request"
        r = await client.context(ask(n))
        assert (r.prompt, r.template_version) == (f"v2: question {n}", "2")
    assert (await client.context(ask(0, "1"))).prompt == "v1: question 0"

    await bus_a.close()
    await bus_b.close()
    _, later = await start("prompt-later")
    r = await client.context(ask(1))
    assert (r.prompt, later.answered) == ("v2: question 1", 1), "the restarted worker knows versions 1 and 2"


async def test_latest_is_the_version_published_last_not_a_sort(
    bus: Bus, start: Start, url: str, tenant: str
) -> None:
    await start("prompt-a")
    await start("prompt-b")
    client = prompt_bus.PromptServiceClient(bus, tenant)
    published = 0
    for version, latest in (("10", "10"), ("9", "9"), ("10", "10")):
        await client.templates(template(version, f"{{q}} from version {version}"))
        published += 1
        # The workers share one durable consumer: one of them stores each publication.
        await wait_stored(url, published)
        r = await client.context(ask(published))
        assert r.template_version == latest, f"after publishing {version}"
    assert (await client.context(ask(0, "9"))).prompt == "question 0 from version 9"


async def test_a_template_published_while_no_worker_runs_is_served_later(
    bus: Bus, start: Start, url: str, tenant: str
) -> None:
    client = prompt_bus.PromptServiceClient(bus, tenant)
    await client.templates(template("1", "kept: {q}"))
    await client.templates(template("2", "kept too: {q}"))
    _, later = await start("prompt-after")
    await wait_stored(url, 2)
    r = await client.context(ask(1))
    assert (r.prompt, r.template_version, later.answered) == ("kept too: question 1", "2", 1)
    assert (await client.context(ask(2, "1"))).prompt == "kept: question 2"


async def test_an_event_applied_late_does_not_displace_a_later_publication(url: str) -> None:
    """Workers sharing the consumer apply events in parallel, and a
    redelivery can come after a later event: the publisher's time decides."""
    pool = await storage.open_database("prompt", url=url)
    try:
        for message_id, version, published_us in (("m2", "new", 2_000), ("m1", "old", 1_000), ("m1", "old", 1_000)):
            async with pool.connection() as conn, conn.transaction():
                await store.publish(conn, "t", message_id, template(version, f"{version} {{q}}"), published_us)
        async with pool.connection() as conn:
            latest = await store.find(conn, "t", "faq", "")
            pinned = await store.find(conn, "t", "faq", "old")
    finally:
        await pool.close()
    assert latest is not None and latest.version == "new"
    assert pinned is not None and pinned.text == "old {q}"
