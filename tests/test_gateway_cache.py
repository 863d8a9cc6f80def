"""The gateway's response cache on a real nats-server with JetStream: two
workers (two connections) share one bucket, and an invalidation event reaches
the LRU of each."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from ai.gateway.v1 import gateway_bus, gateway_pb2
from aisdk.components.gateway.cache import InvalidCacheKey, ResponseCache, cache_key, embedding_key
from runtime import Bus, Context
from runtime.settings import BusSettings

MODEL = "local/extractive"
OTHER_MODEL = "gpt-4.1"
PROBE = "probe"


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


def chat(question: str) -> list[gateway_pb2.ChatMessage]:
    return [gateway_pb2.ChatMessage(role=gateway_pb2.ROLE_USER, content=question)]


PARAMS = gateway_pb2.LlmParameters(temperature=0.0, max_tokens=64)


@pytest.fixture
def bucket() -> str:
    return f"cache_{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def bus2(nats_url: str) -> AsyncIterator[Bus]:
    async with Bus(nats_url, BusSettings(name="worker-2")) as b:
        yield b


def test_keys_are_stable_and_tell_requests_apart() -> None:
    k = cache_key("acme", MODEL, chat("What is the refund policy?"), PARAMS)
    assert k == cache_key("acme", MODEL, chat("What is the refund policy?"),
                          gateway_pb2.LlmParameters(max_tokens=64, temperature=0.0))
    # Plain data gives the same key whatever the order of its fields.
    assert cache_key("acme", MODEL, [{"role": "user", "content": "q"}], {"a": 1, "b": 2}) == \
        cache_key("acme", MODEL, [{"content": "q", "role": "user"}], {"b": 2, "a": 1})
    others = {
        cache_key("acme", MODEL, chat("What is the refund policy?"), gateway_pb2.LlmParameters(temperature=0.5)),
        cache_key("acme", MODEL, chat("What is the return policy?"), PARAMS),
        cache_key("acme", OTHER_MODEL, chat("What is the refund policy?"), PARAMS),
        cache_key("globex", MODEL, chat("What is the refund policy?"), PARAMS),
        embedding_key("acme", MODEL, "What is the refund policy?"),
    }
    assert k not in others and len(others) == 5
    assert cache_key("acme", OTHER_MODEL, chat("x"), PARAMS).split(".")[0] == \
        embedding_key("acme", OTHER_MODEL, "y").split(".")[0], "a model's entries share one key prefix"


async def test_second_worker_sees_the_first_workers_entry(bus: Bus, bus2: Bus, bucket: str) -> None:
    w1, w2 = await asyncio.gather(ResponseCache.open(bus, bucket=bucket), ResponseCache.open(bus2, bucket=bucket))
    key = cache_key("acme", MODEL, chat("What is the refund policy?"), PARAMS)
    assert await w2.get("acme", key) is None and w2.stats.misses == 1

    assert await w1.put("acme", key, b"reply-1", MODEL)
    assert await w2.get("acme", key) == b"reply-1"
    assert w2.stats.kv_hits == 1, "the second worker read the shared bucket"
    assert await w2.get("acme", key) == b"reply-1"
    assert w2.stats.lru_hits == 1, "and then its own LRU"

    # The first answer stays; a second worker answering the same request does not overwrite it.
    assert not await w2.put("acme", key, b"reply-2", MODEL)
    fresh = await ResponseCache.open(bus2, bucket=bucket)
    assert await fresh.get("acme", key) == b"reply-1"
    assert await fresh.get("globex", key) is None, "entries never cross tenants"


async def test_embeddings_are_cached_per_text(bus: Bus, bus2: Bus, bucket: str) -> None:
    w1, w2 = await ResponseCache.open(bus, bucket=bucket), await ResponseCache.open(bus2, bucket=bucket)
    texts = ["refunds within 30 days", "shipping is free"]
    for i, text in enumerate(texts):
        assert await w1.put("acme", embedding_key("acme", "local/wordllama", text), f"vec{i}".encode(),
                            "local/wordllama")
    got = [await w2.get("acme", embedding_key("acme", "local/wordllama", t)) for t in [*texts, "new text"]]
    assert got == [b"vec0", b"vec1", None]


class InvalidationWorker(gateway_bus.GatewayServiceHandler):
    """A gateway worker reduced to its cache: it forwards
    gateway.cache.invalidate to the cache, as the gateway does."""

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket
        self.applied: asyncio.Queue[int] = asyncio.Queue()
        self.live = asyncio.Event()

    async def start(self, bus: Bus) -> None:
        self.cache = await ResponseCache.open(bus, bucket=self.bucket)

    async def cache_invalidate(self, request: gateway_pb2.CacheInvalidation, ctx: Context) -> None:
        if request.reason == PROBE:
            self.live.set()
        else:
            self.applied.put_nowait(await self.cache.apply(ctx.tenant_id, request))


async def wait_live(client: gateway_bus.GatewayServiceClient, workers: list[InvalidationWorker]) -> None:
    """Publish probes until every worker got one: under load, a subscription
    made on another connection can take effect after its flush returns."""
    async def live() -> bool:
        await client.cache_invalidate(gateway_pb2.CacheInvalidation(reason=PROBE))
        await asyncio.sleep(0.05)
        return all(w.live.is_set() for w in workers)

    await until(live)


async def test_invalidation_reaches_every_workers_lru(bus: Bus, bus2: Bus, bucket: str) -> None:
    workers = [InvalidationWorker(bucket), InvalidationWorker(bucket)]
    await bus.serve(workers[0], tenants=["acme"])
    await bus2.serve(workers[1], tenants=["acme"])
    c1, c2 = workers[0].cache, workers[1].cache
    keys = {q: cache_key("acme", MODEL, chat(q), PARAMS) for q in ("q1", "q2", "q3")}
    other = cache_key("acme", OTHER_MODEL, chat("q1"), PARAMS)
    for q, k in keys.items():
        await c1.put("acme", k, q.encode(), MODEL)
    await c1.put("acme", other, b"other", OTHER_MODEL)
    for c in (c1, c2):  # both LRUs hold every entry now
        assert [await c.get("acme", k) for k in keys.values()] == [b"q1", b"q2", b"q3"]
    client = gateway_bus.GatewayServiceClient(bus, "acme")
    await wait_live(client, workers)

    async def invalidate(event: gateway_pb2.CacheInvalidation) -> list[int]:
        await client.cache_invalidate(event)
        return [await asyncio.wait_for(w.applied.get(), 10) for w in workers]

    assert sorted(await invalidate(gateway_pb2.CacheInvalidation(cache_keys=[keys["q1"]], reason="edited"))) == [1, 1]
    for c in (c1, c2):
        lru_hits = c.stats.lru_hits
        assert await c.get("acme", keys["q1"]) is None
        assert await c.get("acme", keys["q2"]) == b"q2" and c.stats.lru_hits == lru_hits + 1

    # By model: the other model's entry stays.
    assert await invalidate(gateway_pb2.CacheInvalidation(model=MODEL)) == [2, 2]
    for c in (c1, c2):
        assert await c.get("acme", keys["q2"]) is None and await c.get("acme", keys["q3"]) is None
    assert await c2.get("acme", other) == b"other"

    # The whole tenant, and nothing of another tenant.
    await c1.put("globex", other, b"globex", OTHER_MODEL)
    assert await invalidate(gateway_pb2.CacheInvalidation(all=True)) == [1, 1]
    assert await c1.get("acme", other) is None and await c2.get("acme", other) is None
    assert await c2.get("globex", other) == b"globex"


async def test_entries_expire_after_their_ttl(bus: Bus, bus2: Bus, bucket: str) -> None:
    w1 = await ResponseCache.open(bus, bucket=bucket, ttl_s=60)
    key = cache_key("acme", MODEL, chat("short-lived"), PARAMS)
    assert await w1.put("acme", key, b"v", MODEL, ttl_s=1)
    w2 = await ResponseCache.open(bus2, bucket=bucket, ttl_s=60)
    assert await w2.get("acme", key) == b"v"

    async def gone() -> bool:
        fresh = await ResponseCache.open(bus2, bucket=bucket, ttl_s=60)
        return await fresh.get("acme", key) is None and await w1.get("acme", key) is None

    await until(gone)
    # The server removed it: the key can be written again.
    assert await w2.put("acme", key, b"v2", MODEL)


async def test_a_full_bucket_drops_its_oldest_entries(bus: Bus, bucket: str) -> None:
    c = await ResponseCache.open(bus, bucket=bucket, max_bytes=8192, lru_size=0)
    keys = [cache_key("acme", MODEL, chat(f"q{i}"), PARAMS) for i in range(100)]
    for i, k in enumerate(keys):
        assert await c.put("acme", k, b"x" * 200, MODEL), f"write {i} refused: a full cache must still accept"
    info = await c.js.stream_info(c.bucket.stream)
    assert info.state.bytes <= 8192
    assert await c.get("acme", keys[0]) is None
    assert await c.get("acme", keys[-1]) == b"x" * 200


async def test_bad_input_is_refused_and_drops_nothing(bus: Bus, bucket: str) -> None:
    c = await ResponseCache.open(bus, bucket=bucket)
    key = cache_key("acme", MODEL, chat("q"), PARAMS)
    await c.put("acme", key, b"v", MODEL)
    with pytest.raises(InvalidCacheKey, match="not a cache key"):
        await c.invalidate("acme", keys=[key, "acme.>"])
    with pytest.raises(ValueError, match="nothing to invalidate"):
        await c.invalidate("acme")
    with pytest.raises(ValueError, match="tenant id"):
        await c.invalidate("*", all=True)
    with pytest.raises(InvalidCacheKey, match="not made for model"):
        await c.put("acme", key, b"v", OTHER_MODEL)
    with pytest.raises(InvalidCacheKey):
        await c.get("acme", "../etc")
    fresh = await ResponseCache.open(bus, bucket=bucket)
    assert await fresh.get("acme", key) == b"v"
    with pytest.raises(ValueError, match="at least 1 s"):
        await ResponseCache.open(bus, bucket=bucket, ttl_s=0.5)
