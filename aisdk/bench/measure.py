"""What is measured, once, for every configuration: each configuration (ours,
raw nats-py, FastStream, ...) only says how it publishes one message, how it
makes one request and where its handler reports a delivery."""

from __future__ import annotations

import asyncio
import time

from aisdk.bench.harness import Sample, median
from aisdk.bench.tracing import NoopExporter

# Publishers hand the loop over every so often, as a real producer does:
# without it nats-py buffers the whole burst before a subscriber sees any.
YIELD_EVERY = 100
IN_FLIGHT = 8
TIMEOUT_S = 5.0
_now = time.perf_counter_ns


class Sink:
    """Where a handler reports deliveries; resolves with the time of the
    last one expected."""

    def __init__(self) -> None:
        self.remaining = 0
        self.count = 0
        self._done: asyncio.Future[int] | None = None

    def expect(self, n: int) -> asyncio.Future[int]:
        self.remaining = n
        self._done = asyncio.get_running_loop().create_future()
        return self._done

    async def wait(self, done: asyncio.Future[int]) -> int:
        try:
            async with asyncio.timeout(TIMEOUT_S):
                return await done
        except TimeoutError:
            raise TimeoutError(f"{self.remaining} messages not delivered within {TIMEOUT_S:g} s") from None

    def delivered(self) -> None:
        self.count += 1
        self.remaining -= 1
        if self.remaining == 0 and self._done is not None and not self._done.done():
            self._done.set_result(_now())


class Messaging:
    """One configuration under test; unsupported operations raise."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sink = Sink()
        # Counts the spans a traced configuration really produced.
        self.exporter: NoopExporter | None = None

    async def start(self) -> None:
        """Connect and subscribe; return once the server knows the subscriptions."""

    async def stop(self) -> None:
        """Close every connection."""

    async def publish(self) -> None:
        raise NotImplementedError(f"{self.name} does not publish")

    async def request(self) -> None:
        raise NotImplementedError(f"{self.name} does not request")


async def delivered_rate(m: Messaging, n: int) -> Sample:
    """Publish n messages; the rate is n over the time until the handler has
    seen the last one."""
    done = m.sink.expect(n)
    t0 = _now()
    for i in range(n):
        await m.publish()
        if i % YIELD_EVERY == YIELD_EVERY - 1:
            await asyncio.sleep(0)
    t1 = await m.sink.wait(done)
    return Sample(n * 1e9 / (t1 - t0))


async def one_way(m: Messaging, n: int) -> Sample:
    """Publish -> handler latency, one message at a time."""
    latencies = []
    for _ in range(n):
        done = m.sink.expect(1)
        t0 = _now()
        await m.publish()
        latencies.append(await m.sink.wait(done) - t0)
    return Sample(median(latencies), latencies)


async def round_trips(m: Messaging, n: int) -> Sample:
    """Sequential request -> typed reply latency."""
    latencies = []
    for _ in range(n):
        t0 = _now()
        await m.request()
        latencies.append(_now() - t0)
    return Sample(median(latencies), latencies)


async def concurrent_round_trips(m: Messaging, n: int, in_flight: int = IN_FLIGHT) -> Sample:
    """n requests, `in_flight` at a time; the value is the rate, the
    latencies include queueing behind the other requests."""
    latencies: list[int] = []

    async def caller(count: int) -> None:
        for _ in range(count):
            t0 = _now()
            await m.request()
            latencies.append(_now() - t0)

    share, extra = divmod(n, in_flight)
    t0 = _now()
    await asyncio.gather(*(caller(share + (i < extra)) for i in range(in_flight)))
    return Sample(n * 1e9 / (_now() - t0), latencies)
