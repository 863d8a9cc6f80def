"""aisdk server / serve / request / publish / tail, end to end as processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from runtime.server import EmbeddedServer
from tests.support import ROOT, checkout_env

CLI = [sys.executable, "-m", "aisdk.cli"]
ENV = checkout_env(ROOT)


def aisdk(*args: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
    extra = ["--nats-url", url] if url else []
    return subprocess.run([*CLI, *args, *extra], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=60)


def wait_for_line(stream: IO[str] | None, text: str, timeout: float = 20) -> list[str]:
    """Lines read from stream up to the first that holds text (status lines
    of `aisdk serve` are on stderr, the server's URL on stdout)."""
    assert stream is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if text in line:
            return lines
    raise AssertionError(f"{text!r} not printed; got {lines}")


@pytest.fixture
def served(nats_url: str) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([*CLI, "serve", "prompt", "--nats-url", nats_url], cwd=ROOT, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_line(proc.stderr, "ready")
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_publish_request_tail_and_graceful_stop(served: subprocess.Popen[str], nats_url: str) -> None:
    tail = subprocess.Popen([*CLI, "tail", "prompt.templates", "--tenant", "cli", "--count", "1",
                             "--nats-url", nats_url], cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert tail.stderr is not None
    assert "tailing ai.prompt.templates.cli" in tail.stderr.readline()
    template = {"template_id": "qa", "template": "Q: {question}\n{context}", "version": "1"}
    out = aisdk("publish", "prompt.templates", "--tenant", "cli", "--data", json.dumps(template), url=nats_url)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["published"] == "ai.prompt.templates.cli"
    tailed, _ = tail.communicate(timeout=20)
    row = json.loads(tailed)
    assert row["type"] == "ai.prompt.v1.PromptTemplate" and row["payload"]["template_id"] == "qa"

    req = {"template_id": "qa", "variables": {"question": "refunds?"}, "context_snippets": ["policy text"]}
    out = aisdk("request", "prompt.context", "--tenant", "cli", "--data", json.dumps(req), url=nats_url)
    assert out.returncode == 0, out.stderr
    reply = json.loads(out.stdout)
    assert reply["prompt"] == "Q: refunds?\npolicy text"
    assert reply["request_id"], "the CLI fills a missing request id"

    served.send_signal(signal.SIGTERM)
    stdout, stderr = served.communicate(timeout=20)
    assert served.returncode == 0
    assert "draining" in stderr and "stopped" in stderr
    assert stdout == "", "status lines go to stderr"


def test_remote_error_is_one_line(served: subprocess.Popen[str], nats_url: str) -> None:
    out = aisdk("request", "prompt.context", "--tenant", "cli", "--data", '{"template_id": "missing"}', url=nats_url)
    assert out.returncode == 1
    assert out.stderr.strip() == (
        "aisdk request: NOT_FOUND from ai.prompt.context.cli: no template 'missing' for this tenant"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("request", "prompt.context", "--tenant", "a.b", "--data", "{}"), "invalid tenant id 'a.b'"),
        (("request", "no.such", "--tenant", "t", "--data", "{}"), "unknown operation 'no.such'"),
        (("request", "prompt.context", "--tenant", "t", "--data", "{oops"), "--data is not a valid ai.prompt.v1.ContextRequest"),
        (("request", "prompt.context", "--tenant", "t", "--data", '{"nope": 1}'), "--data is not a valid"),
        (("publish", "prompt.context", "--tenant", "t", "--data", "{}"), "prompt.context is request_reply"),
        (("request", "prompt.context", "--tenant", "t", "--data", '{"template_id": "x"}', "--nats-url", "nats://127.0.0.1:1"), "cannot connect to NATS at nats://127.0.0.1:1"),
        (("serve", "nonsense", "--nats-url", "nats://127.0.0.1:1"), "unknown component nonsense"),
    ],
)
def test_bad_input_is_one_clear_line(args: tuple[str, ...], message: str) -> None:
    out = aisdk(*args)
    assert out.returncode == 1, out
    assert out.stderr.count("\n") == 1, out.stderr
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_no_responders_is_one_line(nats_url: str) -> None:
    out = aisdk("request", "prompt.context", "--tenant", "nobody", "--data", '{"template_id": "x"}', url=nats_url)
    assert out.returncode == 1
    assert "no responders on ai.prompt.context.nobody" in out.stderr


def test_server_prints_its_url_and_stops_on_sigterm() -> None:
    proc = subprocess.Popen([*CLI, "server"], cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    [url] = wait_for_line(proc.stdout, "nats://")
    assert url.startswith("nats://127.0.0.1:")
    import asyncio

    from runtime.bus import Bus

    async def roundtrip() -> bool:
        async with Bus(url) as bus:
            return bus.nc.is_connected

    assert asyncio.run(roundtrip())
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0


def test_embedded_server_reports_a_taken_port() -> None:
    with EmbeddedServer(jetstream=False) as first:
        from runtime.server import ServerError

        with pytest.raises(ServerError):
            EmbeddedServer(port=first.port, jetstream=False).start()


@pytest.mark.parametrize(("service_env", "service"), [({}, "prompt"), ({"OTEL_SERVICE_NAME": "prompt-eu"}, "prompt-eu")])
def test_serve_traces_to_stdout_that_aisdk_trace_reads(
    nats_url: str, tmp_path: Path, service_env: dict[str, str], service: str
) -> None:
    """With console tracing, stdout holds only spans (status is on stderr), so
    the file is `aisdk trace` input; the service is named by
    OTEL_SERVICE_NAME, else by the component."""
    env = {k: v for k, v in ENV.items() if k != "OTEL_SERVICE_NAME"}
    env.update({"OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "none", **service_env})
    spans = tmp_path / "spans.txt"
    with spans.open("w") as out:
        proc = subprocess.Popen([*CLI, "serve", "prompt", "--nats-url", nats_url], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.PIPE, text=True)
        wait_for_line(proc.stderr, "ready")
        aisdk("request", "prompt.context", "--tenant", "otel", "--data", '{"template_id": "x"}', url=nats_url)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert '"name": "process ai.prompt.context.{tenant_id}"' in spans.read_text()
    shown = aisdk("trace", str(spans), "--width", "100", "--color", "never")
    assert shown.returncode == 0, shown.stderr
    assert f"services: {service}" in shown.stdout
    assert "process ai.prompt.context.{tenant_id}" in shown.stdout


def test_only_contract_marked_ids_are_filled(served: subprocess.Popen[str], nats_url: str) -> None:
    """request_id is marked generated_id and is filled; template_id names a
    template, is not marked, and its `required` rule still refuses the call."""
    out = aisdk("request", "prompt.context", "--tenant", "cli", "--data", '{"variables": {"q": "x"}}', url=nats_url)
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1, out.stderr
    assert "template_id: must be set" in out.stderr
    assert "request_id" not in out.stderr
    out = aisdk("publish", "agent.status", "--tenant", "cli", "--data", '{"state": "AGENT_STATE_IDLE"}', url=nats_url)
    assert out.returncode == 1
    assert "agent_id: must be set" in out.stderr


def test_tail_stops_quietly_when_its_reader_leaves(nats_url: str) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    tail = subprocess.Popen([*CLI, "tail", "prompt.templates", "--tenant", "pipe", "--nats-url", nats_url],
                            cwd=ROOT, env=ENV, stdout=write_end, stderr=subprocess.PIPE, text=True)
    os.close(write_end)
    wait_for_line(tail.stderr, "tailing")
    template = {"template_id": "qa", "template": "Q", "version": "1"}
    out = aisdk("publish", "prompt.templates", "--tenant", "pipe", "--data", json.dumps(template), url=nats_url)
    assert out.returncode == 0, out.stderr
    _, stderr = tail.communicate(timeout=20)
    assert tail.returncode == 141
    assert stderr == ""


def _server(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([*CLI, "server", *args], cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    [url] = wait_for_line(proc.stdout, "nats://")
    return proc, url


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    return err


def test_the_server_keeps_every_stream_across_a_restart() -> None:
    # The default store is the project's state (here the test session's
    # AISDK_STATE_HOME); the payload limit is what the contracts need.
    import asyncio

    from nats.js.errors import NotFoundError

    import ai.registry
    from ai.rag.v1 import rag_bus, rag_pb2
    from runtime.bus import Bus
    from runtime.server import contract_max_payload, free_port
    from runtime.state import jetstream_dir

    port = str(free_port())
    document = rag_pb2.RagDocument(document_id="big", content="x" * (3 << 20))   # three times NATS's default limit

    async def ingest(url: str) -> int:
        async with Bus(url) as bus:
            await rag_bus.RagServiceClient(bus, "acme").ingest(document)
            return int(bus.nc.max_payload)

    async def stored(url: str) -> int:
        async with Bus(url) as bus:
            try:
                info = await bus.nc.jetstream().stream_info("AI_RAG_INGEST")
            except NotFoundError:
                return -1
            return int(info.state.messages)

    proc, url = _server("--port", port)
    assert asyncio.run(ingest(url)) == contract_max_payload(ai.registry.BY_KEY.values()) == 17 << 20
    assert f"JetStream store: {jetstream_dir()}" in _stop(proc)
    proc, url = _server("--port", port)
    assert asyncio.run(stored(url)) == 1
    _stop(proc)

    # Only an explicit --ephemeral store is lost with its server.
    proc, url = _server("--port", port, "--ephemeral")
    assert asyncio.run(ingest(url)) > 0
    assert "deleted at exit (--ephemeral)" in _stop(proc)
    proc, url = _server("--port", port, "--ephemeral")
    assert asyncio.run(stored(url)) == -1
    _stop(proc)
    assert aisdk_fails("server", "--ephemeral", "--store-dir", "x") == (
        "aisdk server: --ephemeral and --store-dir contradict each other: a temporary store or that one")


def aisdk_fails(*args: str) -> str:
    done = subprocess.run([*CLI, *args], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    return done.stderr.strip()
