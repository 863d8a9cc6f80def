"""aisdk server / serve / request / publish / tail, end to end as processes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from runtime.server import EmbeddedServer
from tests.conftest import ROOT

CLI = [sys.executable, "-m", "runtime.cli"]


def aisdk(*args: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
    extra = ["--nats-url", url] if url else []
    return subprocess.run([*CLI, *args, *extra], cwd=ROOT, capture_output=True, text=True, timeout=60)


def wait_for_line(proc: subprocess.Popen[str], text: str, timeout: float = 20) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if text in line:
            return lines
    raise AssertionError(f"{text!r} not printed; got {lines}")


@pytest.fixture
def served(nats_url: str) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([*CLI, "serve", "prompt", "--nats-url", nats_url], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_line(proc, "ready")
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_publish_request_tail_and_graceful_stop(served: subprocess.Popen[str], nats_url: str) -> None:
    tail = subprocess.Popen([*CLI, "tail", "prompt.templates", "--tenant", "cli", "--count", "1",
                             "--nats-url", nats_url], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
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
    stdout, _ = served.communicate(timeout=20)
    assert served.returncode == 0
    assert "draining" in stdout and "stopped" in stdout


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
    proc = subprocess.Popen([*CLI, "server"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    [url] = wait_for_line(proc, "nats://")
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


def test_serve_traces_when_otel_variables_ask(nats_url: str) -> None:
    import os

    env = {**os.environ, "OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "none"}
    proc = subprocess.Popen([*CLI, "serve", "prompt", "--nats-url", nats_url], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_line(proc, "ready")
    aisdk("request", "prompt.context", "--tenant", "otel", "--data", '{"template_id": "x"}', url=nats_url)
    proc.send_signal(signal.SIGTERM)
    stdout, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert '"name": "process ai.prompt.context.{tenant_id}"' in stdout
