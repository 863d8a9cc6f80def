"""Every request gets exactly one reply, promptly: whatever the handler raises
or returns, the requester gets the typed reply or an Error, never a timeout."""

from __future__ import annotations

import uuid

import pytest

from ai.envelope.v1 import envelope_pb2
from ai.gateway.v1 import gateway_bus, gateway_pb2
from runtime.bus import Bus
from runtime.contract import Context
from runtime.errors import HandlerError, RemoteError
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
