"""The helpers and fixtures runtime.testing gives users, on the session's
real server: awaiting an event, a dead letter, and spans in memory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ai.envelope.v1 import envelope_pb2
from ai.gateway.v1 import gateway_bus, gateway_pb2
from runtime import Bus, Context, HandlerError
from runtime.testing import expect_dead_letter, expect_event
from tests.support import Gateway, checkout_env, llm_request


class Refuses(gateway_bus.GatewayServiceHandler):
    async def responses(self, request: gateway_pb2.LlmResponse, ctx: Context) -> None:
        raise HandlerError("INVALID_ARGUMENT", f"refused {request.request_id}")


async def test_expect_event_returns_the_matching_one(bus: Bus) -> None:
    await bus.serve(Gateway(), tenants=["helpers-ev"])
    client = gateway_bus.GatewayServiceClient(bus, "helpers-ev")
    async with expect_event(bus, gateway_bus.GATEWAY_RESPONSES, "helpers-ev",
                            where=lambda r: r.request_id == "second") as seen:
        await client.requests(llm_request("one", "first"))
        await client.requests(llm_request("two", "second"))
    assert seen.payload.response == "gw: two"
    assert seen.subject == "ai.gateway.responses.helpers-ev"
    assert seen.envelope.tenant_id == "helpers-ev"


async def test_expect_event_fails_naming_the_subject(bus: Bus) -> None:
    with pytest.raises(AssertionError, match=r"ai\.gateway\.responses\.helpers-none: nothing within 0.2 s"):
        async with expect_event(bus, gateway_bus.GATEWAY_RESPONSES, "helpers-none", timeout=0.2):
            pass


async def test_expect_dead_letter_of_a_refused_event(bus: Bus) -> None:
    await bus.serve(Refuses(), tenants=["helpers-dl"])
    client = gateway_bus.GatewayServiceClient(bus, "helpers-dl")
    async with expect_dead_letter(bus, gateway_bus.GATEWAY_RESPONSES, "helpers-dl") as letter:
        await client.responses(gateway_pb2.LlmResponse(request_id="r9", response="x", model="m"))
    assert letter.reason == "HandlerError: refused r9"
    assert letter.code == HandlerError("INVALID_ARGUMENT", "").code
    assert letter.original_subject == "ai.gateway.responses.helpers-dl"
    original = envelope_pb2.Envelope.FromString(letter.letter.data)
    assert gateway_pb2.LlmResponse.FromString(original.data).request_id == "r9"


async def test_the_bus_is_traced_when_the_test_asks_for_spans(bus: Bus, spans: InMemorySpanExporter) -> None:
    await bus.serve(Gateway(), tenants=["helpers-tr"])
    await gateway_bus.GatewayServiceClient(bus, "helpers-tr").requests(llm_request("traced"))
    names = {s.name for s in spans.get_finished_spans()}
    assert {"request ai.gateway.requests.{tenant_id}", "process ai.gateway.requests.{tenant_id}"} <= names


async def test_an_untraced_bus_has_no_hooks(bus: Bus) -> None:
    assert not bus.hooks


POSTGRES_PROJECT = '''
import psycopg
import pytest

from runtime import Bus


@pytest.mark.asyncio
async def test_a_fresh_database_and_a_bus(postgres_url: str, bus: Bus) -> None:
    async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
        tables = await (await conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")).fetchone()
        await conn.execute("CREATE TABLE tickets (id text)")
    assert tables == (0,)
    assert bus.nc.is_connected
'''


def test_components_plugin_adds_postgres_to_the_runtime_plugin(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["aisdk.components.testing"]\n')
    (tmp_path / "test_user.py").write_text(POSTGRES_PROJECT)
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-c", str(tmp_path / "pytest.ini"), str(tmp_path)],
        cwd=tmp_path, env=checkout_env(), capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 passed" in out.stdout, out.stdout
