"""One benchmark run: its own nats-server, every configuration connected to
it, the comparison groups, and the results."""

from __future__ import annotations

import asyncio
import importlib.util
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

from aisdk.bench import codec, measure, scale, services, tracing
from aisdk.bench.harness import Case, Group, Progress, Results, Sample, run_groups, steps
from aisdk.bench.measure import Messaging
from aisdk.bench.ours import GATEWAY, MESSAGING, Ours, OursDurable
from aisdk.bench.raw import Raw, RawDurable
from runtime.server import EmbeddedServer

QUEUE_WORKERS = 3


@dataclass(frozen=True)
class Plan:
    """How much of everything: `quick` is a fifth of a full run in two rounds."""

    rounds: int
    scale: float
    calibrate_s: float
    quick: bool = False

    def n(self, full: int) -> int:
        return max(20, int(full * self.scale))


FULL = Plan(rounds=7, scale=1.0, calibrate_s=0.5)
QUICK = Plan(rounds=2, scale=0.2, calibrate_s=0.1, quick=True)


def faststream_available() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("faststream", "pydantic"))


@dataclass
class Run:
    """What a run measured: per group and configuration, one Sample a round."""

    plan: Plan
    results: Results
    notes: list[str]
    traced: bool
    faststream: bool
    components: bool
    seconds: float
    spans: dict[str, int]
    # Figures a run learns besides its samples (chunks per ingested document).
    facts: dict[str, float]
    # The event loop everything ran on: "asyncio" or "uvloop".
    loop: str = "asyncio"


def _configs(url: str, with_faststream: bool) -> dict[str, Messaging]:
    configs: dict[str, Messaging] = {
        "ours": Ours("ours", url, "bench-ours", MESSAGING),
        "raw": Raw("raw", url, "bench"),
        "ours_queue": Ours("ours_queue", url, "bench-queue", GATEWAY, workers=QUEUE_WORKERS),
        "raw_queue": Raw("raw_queue", url, "bench-queue", workers=QUEUE_WORKERS),
        "ours_durable": OursDurable("ours_durable", url, "bench-durable"),
        "ours_durable_concurrent": OursDurable("ours_durable_concurrent", url, "bench-durable-c", concurrency=64),
        "raw_durable": RawDurable("raw_durable", url, "bench-durable"),
    }
    for name, sampled in (("ours_traced", True), ("ours_unsampled", False)):
        telemetry = tracing.ours(sampled)
        if telemetry is not None:
            configs[name] = Ours(name, url, f"bench-{name}", MESSAGING, telemetry=telemetry)
    if with_faststream:
        from aisdk.bench.peer import FastStream

        configs["faststream"] = FastStream("faststream", url, "bench")
        configs["faststream_otel"] = FastStream("faststream_otel", url, "bench-otel", otel=True)
    return configs


def _groups(plan: Plan, c: dict[str, Messaging]) -> list[Group]:
    def cases(fn: Callable[[Messaging, int], Awaitable[Sample]], *same: str, **renamed: str) -> list[Case]:
        """Case name -> configuration; those this run lacks are left out."""
        pairs = [(name, name) for name in same] + list(renamed.items())
        return [Case(name, partial(fn, c[key])) for name, key in pairs if key in c]

    calibrate = plan.calibrate_s
    return [
        Group("codec", "ns/op", [Case(k, codec.measure(op)) for k, op in codec.cases().items()],
              size=0, warmup=plan.n(5_000), calibrate_s=calibrate / 2),
        Group("pubsub", "msg/s",
              cases(measure.delivered_rate, "ours", "raw", "ours_traced", "faststream", "faststream_otel"),
              size=0, warmup=plan.n(2_000), calibrate_s=calibrate, max_size=100_000),
        Group("agent_latency", "latency", cases(measure.one_way, "ours", "raw", "ours_traced", "faststream"),
              size=plan.n(1_000), warmup=plan.n(200)),
        Group("request_reply", "latency",
              cases(measure.round_trips, "ours", "raw", "ours_traced", "ours_unsampled", "faststream",
                    "faststream_otel"),
              size=plan.n(2_000), warmup=plan.n(300)),
        Group("queue_group", "msg/s", cases(measure.concurrent_round_trips, ours="ours_queue", raw="raw_queue"),
              size=0, warmup=plan.n(1_000), calibrate_s=calibrate),
        Group("jetstream", "msg/s",
              cases(measure.delivered_rate, ours="ours_durable", ours_concurrent="ours_durable_concurrent",
                    raw="raw_durable"),
              size=0, warmup=plan.n(500), calibrate_s=calibrate, max_size=20_000),
    ]


async def run(plan: Plan, *, progress: bool = True, components: bool = True) -> Run:
    """components=False: the messaging rows only (the runtime's own)."""
    t0 = time.monotonic()
    notes = []
    with_faststream = faststream_available()
    if not with_faststream:
        notes.append("FastStream rows skipped: install the bench extra (pip install -e '.[bench]')")
    with_components = components and services.available()
    if components and not with_components:
        notes.append(services.UNAVAILABLE)
    with EmbeddedServer(name="aisdk-bench") as server:
        configs = _configs(server.url, with_faststream)
        traced = "ours_traced" in configs
        if not traced:
            notes.append(tracing.UNAVAILABLE)
        started: list[Messaging] = []
        stack = services.Stack(server.url) if with_components else None
        facts: dict[str, float] = {}
        scaled: scale.Scale | None = None
        try:
            for config in configs.values():
                await config.start()
                started.append(config)
            groups = _groups(plan, configs)
            if stack is not None:
                await stack.start()
                groups += services.groups(plan, stack)
                scaled = scale.Scale(server.url, stack, quick=plan.quick)
                await scaled.start()
                groups += scale.groups(plan, scaled)
            bar = Progress(steps(groups, plan.rounds)) if progress else None
            try:
                results = await run_groups(groups, plan.rounds, bar)
            finally:
                if bar:
                    bar.close()
        finally:
            if scaled is not None:
                facts.update(scaled.facts)
                await scaled.stop()
            if stack is not None:
                facts.update(stack.facts())
                await stack.stop()
            for config in reversed(started):
                await config.stop()
    spans = {name: c.exporter.exported for name, c in configs.items() if c.exporter is not None}
    loop = type(asyncio.get_running_loop()).__module__.partition(".")[0]
    return Run(plan, results, notes, traced, with_faststream, with_components, time.monotonic() - t0, spans,
               facts, "uvloop" if loop == "uvloop" else "asyncio")
