"""The cache's rules on a real nats-server with JetStream: only deterministic
requests are cached by default, CacheControl (use, bypass, refresh, TTL)
overrides it, entries never cross tenants, and an invalidation reaches a
worker that was disconnected when it was sent."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from google.protobuf.duration_pb2 import Duration

from ai.envelope.v1 import envelope_pb2
from ai.gateway.v1 import gateway_bus, gateway_pb2
from aisdk.components.gateway.cache import (
    CacheConfig, CachePolicy, InvalidCacheControl, ResponseCache, cache_key, chat_policy, embedding_key,
    embedding_policy,
)
from aisdk.components.gateway.config import GatewayConfig
from aisdk.components.gateway.service import Gateway
from runtime import Bus, RemoteError
from runtime.settings import BusSettings
from tests.support import until

Code = envelope_pb2.Error
MODEL = "local/extractive"
PROMPT = "Refunds are given within 30 days of purchase. Our office is in Berlin. What is the refund policy?"
P = gateway_pb2.LlmParameters
C = gateway_pb2.CacheControl


def request(parameters: gateway_pb2.LlmParameters | None = None, cache: gateway_pb2.CacheControl | None = None,
            rid: str = "r1") -> gateway_pb2.LlmRequest:
    r = gateway_pb2.LlmRequest(request_id=rid, model=MODEL, prompt=PROMPT)
    if parameters is not None:
        r.parameters.CopyFrom(parameters)
    if cache is not None:
        r.cache.CopyFrom(cache)
    return r


def ttl(seconds: float) -> Duration:
    d = Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d


def test_only_deterministic_requests_are_cached_unless_the_request_says_otherwise() -> None:
    use, off = CachePolicy(True, True), CachePolicy(False, False)
    assert chat_policy(request()) == off, "the provider's default temperature samples"
    assert chat_policy(request(P(temperature=0.7))) == off
    assert chat_policy(request(P(temperature=0.0))) == use
    assert chat_policy(request(P(temperature=0.7, seed=7))) == use
    assert chat_policy(request(P(temperature=0.7), C(mode=gateway_pb2.CACHE_MODE_USE, ttl=ttl(30)))) == \
        CachePolicy(True, True, ttl_s=30.0)
    assert chat_policy(request(P(temperature=0.0), C(mode=gateway_pb2.CACHE_MODE_BYPASS))) == off
    assert chat_policy(request(cache=C(mode=gateway_pb2.CACHE_MODE_REFRESH))) == \
        CachePolicy(False, True, replace=True)
    embed = gateway_pb2.EmbeddingRequest(request_id="e", model="embedding", texts=["x"])
    assert embedding_policy(embed) == use
    embed.cache.mode = gateway_pb2.CACHE_MODE_BYPASS
    assert embedding_policy(embed) == off
    with pytest.raises(InvalidCacheControl, match="at least 1 s"):
        chat_policy(request(cache=C(ttl=ttl(0.5))))


@pytest.fixture
async def worker(nats_url: str) -> AsyncIterator[Gateway]:
    cfg = GatewayConfig(cache=CacheConfig(bucket=f"gw_{uuid.uuid4().hex[:12]}"), rate_limits=False, breakers=False,
                        retries=0)
    async with Bus(nats_url, BusSettings(name="gateway-cache-rules")) as bus:
        gateway = Gateway(cfg)
        await bus.serve(gateway)
        yield gateway


async def test_the_rules_through_the_gateway(worker: Gateway, bus: Bus) -> None:
    t = f"t{uuid.uuid4().hex[:10]}"
    client = gateway_bus.GatewayServiceClient(bus, t)

    async def twice(r: gateway_pb2.LlmRequest) -> tuple[bool, bool]:
        first, second = await client.requests(r), await client.requests(r)
        return first.cached, second.cached

    assert await twice(request()) == (False, False)
    assert await twice(request(P(temperature=0.7))) == (False, False)
    assert await twice(request(P(temperature=0.7, seed=42))) == (False, True)
    assert await twice(request(P(temperature=0.9), C(mode=gateway_pb2.CACHE_MODE_USE))) == (False, True)
    assert await twice(request(P(temperature=0.0))) == (False, True)
    # The deterministic entry is there; bypass neither reads nor writes it.
    assert await twice(request(P(temperature=0.0), C(mode=gateway_pb2.CACHE_MODE_BYPASS))) == (False, False)

    # Refresh calls the provider and replaces the entry.
    cache = worker._cache
    assert cache is not None
    key = cache_key(t, MODEL, [{"role": "user", "content": PROMPT}], {"temperature": 0.0})
    before = (await cache.bucket.kv.get(f"{t}.{key}")).revision
    refreshed = await client.requests(request(P(temperature=0.0), C(mode=gateway_pb2.CACHE_MODE_REFRESH)))
    assert not refreshed.cached
    assert (await cache.bucket.kv.get(f"{t}.{key}")).revision > before
    assert (await client.requests(request(P(temperature=0.0)))).cached

    with pytest.raises(RemoteError) as bad:
        await client.requests(request(P(temperature=0.0), C(ttl=ttl(0.2))))
    assert bad.value.code == Code.CODE_INVALID_ARGUMENT and "at least 1 s" in bad.value.message

    # Another tenant, same request: its own call, never the first tenant's entry.
    other = gateway_bus.GatewayServiceClient(bus, f"t{uuid.uuid4().hex[:10]}")
    assert not (await other.requests(request(P(temperature=0.0)))).cached


async def test_embeddings_are_batched_and_never_cross_tenants(worker: Gateway, bus: Bus) -> None:
    a, b = (gateway_bus.GatewayServiceClient(bus, f"t{uuid.uuid4().hex[:10]}") for _ in range(2))
    texts = [f"sentence number {i} about refunds" for i in range(64)]
    first = await a.embeddings(gateway_pb2.EmbeddingRequest(request_id="e1", model="embedding", texts=texts))
    assert first.cached == 0 and len(first.embeddings) == 64
    again = await a.embeddings(gateway_pb2.EmbeddingRequest(request_id="e2", model="embedding", texts=[*texts, "new"]))
    assert again.cached == 64 and list(again.embeddings[:64]) == list(first.embeddings)
    other = await b.embeddings(gateway_pb2.EmbeddingRequest(request_id="e3", model="embedding", texts=texts))
    assert other.cached == 0, "tenant B never reads tenant A's vectors"
    bypass = await a.embeddings(gateway_pb2.EmbeddingRequest(
        request_id="e4", model="embedding", texts=texts[:2], cache=C(mode=gateway_pb2.CACHE_MODE_BYPASS)))
    assert bypass.cached == 0
    assert embedding_key("acme", "local/wordllama", "x") != embedding_key("globex", "local/wordllama", "x")


class Proxy:
    """A TCP relay between one client and the nats-server that the test can
    cut (every connection closed, new ones refused) and restore: a worker
    disconnected from the broker for real while the others stay up."""

    def __init__(self, target: str) -> None:
        host, port = target.removeprefix("nats://").rsplit(":", 1)
        self.target = (host, int(port))
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for w in self._writers:
            w.close()
        self._writers.clear()
        await self._server.wait_closed()

    async def stop(self) -> None:
        await self.cut()


async def test_an_invalidation_reaches_a_worker_disconnected_when_it_was_sent(nats_url: str, bus: Bus) -> None:
    bucket = f"cache_{uuid.uuid4().hex[:8]}"
    proxy = Proxy(nats_url)
    await proxy.start()
    try:
        async with Bus(proxy.url, BusSettings(name="paused-worker")) as paused_bus, \
                Bus(nats_url, BusSettings(name="connected-worker")) as connected_bus:
            sender = await ResponseCache.open(bus, bucket=bucket)
            paused = await ResponseCache.open(paused_bus, bucket=bucket)
            connected = await ResponseCache.open(connected_bus, bucket=bucket)
            keys = [cache_key("acme", MODEL, [{"role": "user", "content": q}], {"temperature": 0}) for q in "ab"]
            for k in keys:
                await sender.put("acme", k, k.encode(), MODEL)
            for c in (paused, connected):
                assert [await c.get("acme", k) for k in keys] == [k.encode() for k in keys]
                assert [await c.get("acme", k) for k in keys] == [k.encode() for k in keys]
                assert c.stats.lru_hits == 2, "both workers answer from their LRU"

            await proxy.cut()
            await until(lambda: not paused_bus.nc.is_connected)
            # No event: the invalidation is the sender's own, seen through the bucket.
            assert await sender.invalidate("acme", keys=[keys[0]]) == 1
            await until(lambda: ("acme", keys[0]) not in connected._lru)
            assert await connected.get("acme", keys[0]) is None
            assert await connected.get("acme", keys[1]) == keys[1].encode()
            assert connected.stats.lru_hits == 3, "the connected worker keeps what was not invalidated"

            await proxy.start()  # the same port: the paused worker reconnects
            await until(lambda: paused_bus.nc.is_connected and paused_bus.nc.stats["reconnects"] >= 1)
            assert await paused.get("acme", keys[0]) is None
            assert await paused.get("acme", keys[1]) == keys[1].encode()
            # Its LRU serves again once its new watch runs, and that watch sees later invalidations.
            await until(lambda: paused._watching is not None)
            await paused.get("acme", keys[1])
            hits = paused.stats.lru_hits
            assert await paused.get("acme", keys[1]) == keys[1].encode() and paused.stats.lru_hits == hits + 1
            await sender.invalidate("acme", all=True)
            await until(lambda: ("acme", keys[1]) not in paused._lru)
            assert await paused.get("acme", keys[1]) is None
            for c in (sender, paused, connected):
                await c.close()
    finally:
        await proxy.stop()
