"""Helpers shared by the test modules. Test modules import from here, never
from each other, so that one module's rename or removal breaks no other."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2

from ai.gateway.v1 import gateway_bus, gateway_pb2
from codegen.toolchain import tool_env
from runtime.contract import Context

# The checkout under test: the tests of one checkout never read another's files.
ROOT = Path(__file__).resolve().parent.parent


def buf_exe() -> str:
    exe = shutil.which("buf", path=tool_env()["PATH"])
    assert exe is not None, "buf is not installed (pip install -e '.[dev]')"
    return exe


def request_for(image: descriptor_pb2.FileDescriptorSet) -> plugin_pb2.CodeGeneratorRequest:
    """The request buf sends the plugin with `strategy: all`."""
    req = plugin_pb2.CodeGeneratorRequest()
    req.proto_file.extend(image.file)
    req.file_to_generate.extend(f.name for f in image.file if f.name.startswith("ai/"))
    return req


async def until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for `cond`; fail only if it is still false after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def llm_request(prompt: str = "Hi", request_id: str = "r1") -> gateway_pb2.LlmRequest:
    return gateway_pb2.LlmRequest(request_id=request_id, prompt=prompt, model="gpt-4o-mini")


class Gateway(gateway_bus.GatewayServiceHandler):
    """A gateway that echoes, records what it saw, and fails on the prompt "boom"."""

    def __init__(self, name: str = "gw", delay: float = 0.0) -> None:
        self.name = name
        self.delay = delay
        self.seen: list[str] = []
        self.time_left: list[float | None] = []

    async def requests(self, request: gateway_pb2.LlmRequest, ctx: Context) -> gateway_pb2.LlmResponse:
        self.seen.append(request.request_id)
        self.time_left.append(ctx.time_left())
        if self.delay:
            await asyncio.sleep(self.delay)
        if request.prompt == "boom":
            raise RuntimeError("secret internal detail")
        return gateway_pb2.LlmResponse(
            request_id=request.request_id, response=f"{self.name}: {request.prompt}", model=request.model
        )

    async def stream(self, request: gateway_pb2.LlmRequest, ctx: Context) -> AsyncIterator[gateway_pb2.LlmChunk]:
        for i, word in enumerate(request.prompt.split()):
            if word == "boom":
                raise RuntimeError("stream broke")
            yield gateway_pb2.LlmChunk(request_id=request.request_id, index=i, delta=word)
