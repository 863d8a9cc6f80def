"""Every request gets exactly one reply, promptly: whatever the handler raises
or returns, the requester gets the typed reply or an Error, never a timeout."""

from __future__ import annotations

import uuid

import pytest

from ai.envelope.v1 import envelope_pb2
from ai.gateway.v1 import gateway_bus, gateway_pb2
from ai.rag.v1 import rag_bus, rag_pb2
from runtime.bus import Bus
from runtime.contract import Context
from runtime.errors import HandlerError, RemoteError, passed_on
from runtime.settings import BusSettings
from tests.support import llm_request

Code = envelope_pb2.Error


class Failing(gateway_bus.GatewayServiceHandler):
    """Raises HandlerError(code) with the code given as the prompt, or
    answers with a reply larger than the server takes."""

    async def requests(self, request: gateway_pb2.LlmRequest, ctx: Context) -> gateway_pb2.LlmResponse:
        if request.prompt == "huge":
            return gateway_pb2.LlmResponse(request_id=request.request_id, response="x" * (2 << 20))
        code: int | str = int(request.prompt) if request.prompt.isdigit() else request.prompt
        raise HandlerError(code, "no such template")


@pytest.fixture
async def client(nats_url: str) -> gateway_bus.GatewayServiceClient:
    tenant = "t" + uuid.uuid4().hex[:12]
    # validate=False: the oversized reply reaches the wire instead of failing
    # its checks. One connection serves and asks: its subscription is in
    # place before its request.
    async with Bus(nats_url, BusSettings(name="failing", validate=False)) as bus:
        await bus.serve(Failing(), tenants=[tenant])
        yield gateway_bus.GatewayServiceClient(bus, tenant)


async def answer(client: gateway_bus.GatewayServiceClient, prompt: str) -> RemoteError:
    with pytest.raises(RemoteError) as e:
        # Far below the registry's timeout: a missing reply fails here, as RequestTimeout.
        await client.requests(llm_request(prompt), timeout=5)
    return e.value


@pytest.mark.parametrize("given", ["NOT_FOUND", "CODE_NOT_FOUND", "not_found", str(Code.CODE_NOT_FOUND)])
async def test_a_known_code_by_number_or_name(client: gateway_bus.GatewayServiceClient, given: str) -> None:
    err = await answer(client, given)
    assert err.code == Code.CODE_NOT_FOUND
    assert err.message == "no such template"


@pytest.mark.parametrize("given", ["999", "NOTFOUND", "0"])
async def test_an_unknown_code_is_answered_internal_and_named(
    client: gateway_bus.GatewayServiceClient, given: str
) -> None:
    err = await answer(client, given)
    assert err.code == Code.CODE_INTERNAL
    assert "no such template" in err.message
    assert "unknown error code" in err.message and given in err.message


async def test_a_reply_over_the_max_payload_is_answered(client: gateway_bus.GatewayServiceClient) -> None:
    err = await answer(client, "huge")
    assert err.code == Code.CODE_INTERNAL


def test_handler_error_normalises_its_code() -> None:
    assert HandlerError("UNAVAILABLE", "m").code == Code.CODE_UNAVAILABLE
    assert HandlerError(Code.CODE_ALREADY_EXISTS, "m").code == Code.CODE_ALREADY_EXISTS
    odd = HandlerError(True, "m")  # a bool is not a code, though it is an int
    assert odd.code == Code.CODE_INTERNAL and "unknown error code True" in odd.message


class Upstream(rag_bus.RagServiceHandler):
    """A handler that asks another component (the Failing gateway above, or
    nothing) and passes its failure on."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def queries(self, request: rag_pb2.RagQuery, ctx: Context) -> rag_pb2.RagResult:
        with passed_on("gateway.requests", "gateway"):
            await gateway_bus.GatewayServiceClient(self.bus, ctx.tenant_id).requests(
                llm_request(request.query), timeout=5)
        return rag_pb2.RagResult(query_id=request.query_id)


async def test_a_downstream_failure_is_passed_on_with_its_code_and_retry_after(nats_url: str) -> None:
    tenant = "t" + uuid.uuid4().hex[:12]

    class Limited(gateway_bus.GatewayServiceHandler):
        async def requests(self, request: gateway_pb2.LlmRequest, ctx: Context) -> gateway_pb2.LlmResponse:
            raise HandlerError("RESOURCE_EXHAUSTED", "budget acme is spent", retryable=True, retry_after=7)

    async with Bus(nats_url, BusSettings(name="passed-on")) as bus:
        await bus.serve(Upstream(bus), tenants=[tenant])
        rag = rag_bus.RagServiceClient(bus, tenant)
        # Nothing serves the gateway yet: UNAVAILABLE naming what to start.
        with pytest.raises(RemoteError) as nobody:
            await rag.queries(rag_pb2.RagQuery(query_id="q1", query="hi"), timeout=10)
        await bus.serve(Limited(), tenants=[tenant])
        with pytest.raises(RemoteError) as limited:
            await rag.queries(rag_pb2.RagQuery(query_id="q2", query="hi"), timeout=10)
    assert nobody.value.code == Code.CODE_UNAVAILABLE and "aisdk serve gateway" in nobody.value.message
    # Not INTERNAL: the caller sees the gateway's code, retryability and retry-after.
    e = limited.value
    assert (e.code, e.retryable, e.retry_after) == (Code.CODE_RESOURCE_EXHAUSTED, True, 7.0)
    assert e.message == "gateway.requests: budget acme is spent"
