"""The metrics in Prometheus' format: a scrape endpoint from the telemetry
setup (metrics exporter "prometheus") and from `aisdk serve --metrics-port`,
with the tenant label bounded in cardinality."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest
from ai.prompt.v1 import prompt_bus, prompt_pb2

from runtime import telemetry
from runtime.bus import Bus
from runtime.telemetry.errors import TelemetryError
from runtime.telemetry.names import ATTR, METRIC
from tests.support import ROOT, checkout_env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                return str(r.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def tenants_of(text: str, metric: str) -> dict[str, float]:
    """tenant_id label -> value of a counter's samples."""
    out = {}
    for m in re.finditer(rf'^{metric}\{{([^}}]*)\}} ([0-9.e+-]+)$', text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if "tenant_id" in labels:
            out[labels["tenant_id"]] = out.get(labels["tenant_id"], 0.0) + float(m.group(2))
    return out


def test_the_endpoint_serves_the_metrics_with_a_bounded_tenant_label() -> None:
    port = free_port()
    tel = telemetry.setup("prom-test", exporter="none", metrics_exporter="prometheus", prometheus_host="127.0.0.1",
                          prometheus_port=port, tenant_limit=3)
    try:
        for i in range(5):
            tel.metrics.counter(METRIC.RAG_QUERIES_EXECUTED).add(i + 1, {ATTR.TENANT_ID: f"t{i}"})
            tel.metrics.histogram(METRIC.RAG_QUERY_DURATION).record(0.01 * (i + 1), {ATTR.TENANT_ID: f"t{i}"})
        text = scrape(port)
        assert tenants_of(text, "rag_queries_executed_total") == {"t0": 1, "t1": 2, "t2": 3, "_other": 9}
        durations = tenants_of(text, "rag_query_duration_seconds_count")
        assert set(durations) == {"t0", "t1", "t2", "_other"} and durations["_other"] == 2
    finally:
        tel.shutdown()
    with pytest.raises(OSError):
        scrape(port, timeout=0)  # the server stopped with the telemetry


def test_a_port_in_use_is_one_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(TelemetryError, match=f"cannot serve Prometheus metrics on 127.0.0.1:{port}"):
            telemetry.setup("prom-test", exporter="none", metrics_exporter="prometheus",
                            prometheus_host="127.0.0.1", prometheus_port=port)


@pytest.fixture
def served(nats_url: str) -> Iterator[int]:
    port = free_port()
    env = {**checkout_env(ROOT), "AISDK_METRICS_TENANT_LIMIT": "2"}
    proc = subprocess.Popen([sys.executable, "-m", "aisdk.cli", "serve", "prompt", "--nats-url", nats_url,
                             "--metrics-port", str(port), "--metrics-host", "127.0.0.1"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    lines = []
    while True:
        line = proc.stderr.readline()
        lines.append(line)
        if "ready" in line or not line:
            break
    assert any(f"127.0.0.1:{port}/metrics" in x for x in lines), lines
    yield port
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 0


async def test_aisdk_serve_exposes_the_seed_metrics_by_tenant(served: int, bus: Bus) -> None:
    for tenant in ("prom-a", "prom-b", "prom-c"):
        prompts = prompt_bus.PromptServiceClient(bus, tenant)
        await prompts.templates(prompt_pb2.PromptTemplate(template_id="qa", version="1", template="Q: {q}"))
        for _ in range(20):
            try:
                await prompts.context(prompt_pb2.ContextRequest(request_id=f"{tenant}-1", template_id="qa",
                                                                variables={"q": "refunds?"}))
                break
            except Exception:  # the template event may not have arrived yet
                await asyncio.sleep(0.1)
    text = await asyncio.to_thread(scrape, served)
    built = tenants_of(text, "prompt_contexts_built_total")
    assert built == {"prom-a": 1, "prom-b": 1, "_other": 1}
    # The runtime's own messaging metrics are there too.
    assert re.search(r"^messaging_client_consumed_messages_total\{.*\} [1-9]", text, re.M)
