"""What telemetry costs per message: `python -m runtime.telemetry.cost`.

Prints the figures docs/telemetry.md quotes: the W3C traceparent codec
against the generic propagator, the producer and consumer hooks in process
(sampled, unsampled, off), and request/reply and publish->handler over an
embedded nats-server with telemetry off, unsampled and sampled. Spans go
through a BatchSpanProcessor to an exporter that drops them, as they would to
a collector. Medians of repeated runs; numbers on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import timeit
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanContext, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ai.gateway.v1 import gateway_bus, gateway_pb2
from runtime import codec
from runtime.bus import Bus
from runtime.context import MessageContext
from runtime.endpoint import Endpoint
from runtime.telemetry.context import Carried, format_traceparent, parse_traceparent
from runtime.telemetry.handle import Telemetry


class _Discard(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _telemetry(ratio: float) -> Telemetry:
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(ratio)))
    provider.add_span_processor(BatchSpanProcessor(_Discard(), max_queue_size=1 << 16))
    return Telemetry(provider, MeterProvider(), owns_providers=True)


def _us(fn: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def codec_figures(number: int) -> list[tuple[str, float]]:
    prop = TraceContextTextMapPropagator()
    ctx = SpanContext(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, False, TraceFlags(1))
    otel_ctx = trace.set_span_in_context(trace.NonRecordingSpan(ctx))
    header = format_traceparent(ctx)
    carrier = {"traceparent": header}
    return [
        ("traceparent format (f-string)", _us(lambda: format_traceparent(ctx), number)),
        ("traceparent format (propagator.inject)", _us(lambda: prop.inject({}, otel_ctx), number)),
        ("traceparent parse (regex + int, strict)", _us(lambda: parse_traceparent(header), number)),
        ("traceparent parse (propagator.extract)", _us(lambda: prop.extract(carrier), number)),
    ]


def _request() -> gateway_pb2.LlmRequest:
    return gateway_pb2.LlmRequest(request_id="r1", prompt="x" * 200, model="gpt-4o-mini")


async def hook_figures(number: int) -> list[tuple[str, float]]:
    """What the producer and consumer hooks add to the same work untraced: an
    envelope built and encoded (what Bus.publish does before the wire), a
    handler called. Traced and untraced take turns; the best of each counts."""
    from opentelemetry import context as otel_context

    spec = gateway_bus.GATEWAY_REQUESTS
    payload = _request()

    def publisher(bus: Bus) -> Callable[..., Any]:
        async def publish(spec: Any, payload: Any, tenant_id: str, options: Any) -> None:
            bus._build_envelope(spec, payload, tenant_id, options, None).SerializeToString()

        return publish

    async def handler(request: Any, ctx: Any) -> None:
        return None

    async def added(parent: trace.Span | None, traced: Callable[[], Any], untraced: Callable[[], Any]) -> float:
        token = None if parent is None else otel_context.attach(trace.set_span_in_context(parent))
        best = [float("inf"), float("inf")]
        try:
            for _ in range(5):
                for i, call in enumerate((untraced, traced)):
                    t0 = time.perf_counter()
                    for _ in range(number):
                        await call()
                    best[i] = min(best[i], time.perf_counter() - t0)
        finally:
            if token is not None:
                otel_context.detach(token)
        return (best[1] - best[0]) / number * 1e6

    plain = publisher(Bus())
    out = []
    for label, ratio in (("sampled", 1.0), ("unsampled", 0.0)):
        tel = _telemetry(ratio)
        bus = Bus(telemetry=tel)
        send = tel.hooks.wrap_send(bus, "publish", publisher(bus))
        tp = format_traceparent(SpanContext(1, 2, True, TraceFlags(1 if ratio else 0)))

        def traced_send() -> Any:
            return send(spec, payload, "acme", {})

        def plain_send() -> Any:
            return plain(spec, payload, "acme", {})

        parent: trace.Span = tel.tracer.start_span("handler") if ratio else Carried(tp, "")
        out.append((f"producer, no parent ({label} root)", await added(None, traced_send, plain_send)))
        out.append((f"producer inside a {label} handler", await added(parent, traced_send, plain_send)))
        env = codec.envelope(spec.request_name, "1.0", "acme", "src", payload.SerializeToString(), traceparent=tp)
        ep = Endpoint(bus, spec, handler, queue_group="gateway.workers", concurrency=1, subject="ai.gateway.requests.*")
        ctx = MessageContext("ai.gateway.requests.acme", "acme", env, None)
        out.append((f"consumer, {label} message", await added(
            None, lambda: ep.method(payload, ctx), lambda: handler(payload, ctx)
        )))
        tel.shutdown()
    return out


class _Echo(gateway_bus.GatewayServiceHandler):
    async def requests(self, request: gateway_pb2.LlmRequest, ctx: Any) -> gateway_pb2.LlmResponse:
        return gateway_pb2.LlmResponse(request_id=request.request_id, response="ok", model=request.model)


async def served_figures(url: str, requests: int, rounds: int) -> list[tuple[str, float]]:
    """Sequential request/reply, client and server bus in this process with
    the same setting: wall-clock p50, and this process's CPU time per round
    trip, which the scheduler and the server's noise do not blur. The
    settings take turns, round after round; medians of the rounds."""
    labels = ("off", "unsampled", "sampled")
    p50: dict[str, list[float]] = {k: [] for k in labels}
    cpu: dict[str, list[float]] = {k: [] for k in labels}
    pairs = []
    for label, ratio in zip(labels, (None, 0.0, 1.0)):
        tel = None if ratio is None else _telemetry(ratio)
        server = await Bus(url, telemetry=tel).connect()
        await server.serve(_Echo(), tenants=[f"t-{label}"])
        caller = await Bus(url, telemetry=tel).connect()
        pairs.append((label, tel, server, gateway_bus.GatewayServiceClient(caller, f"t-{label}"), caller))
    request = _request()
    for _ in range(rounds):
        for label, _tel, _server, client, _bus in pairs:
            samples = []
            c0 = time.process_time()
            for _ in range(requests):
                t0 = time.perf_counter_ns()
                await client.requests(request)
                samples.append(time.perf_counter_ns() - t0)
            cpu[label].append((time.process_time() - c0) / requests * 1e6)
            p50[label].append(statistics.median(samples) / 1000)
    for _label, tel, server, _client, bus in pairs:
        await bus.close()
        await server.close()
        if tel is not None:
            tel.shutdown()
    return [(f"request/reply p50, telemetry {k} (both sides)", statistics.median(v)) for k, v in p50.items()] + [
        (f"request/reply CPU per round trip, telemetry {k}", statistics.median(v)) for k, v in cpu.items()
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.telemetry.cost", description=__doc__)
    parser.add_argument("--number", type=int, default=20_000, help="calls per in-process measurement")
    parser.add_argument("--requests", type=int, default=1_000, help="request/reply round trips per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the settings in turn")
    args = parser.parse_args(argv)
    from runtime.server import EmbeddedServer

    rows = codec_figures(args.number) + asyncio.run(hook_figures(args.number))
    with EmbeddedServer(name="telemetry-cost", jetstream=False) as server:
        rows += asyncio.run(served_figures(server.url, args.requests, args.rounds))
    width = max(len(label) for label, _ in rows)
    for label, us in rows:
        print(f"{label:<{width}}  {us:8.2f} µs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
