"""Helpers shared by the test modules. Test modules import from here, never
from each other, so that one module's rename or removal breaks no other."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2

from ai.gateway.v1 import gateway_bus, gateway_pb2
from codegen import toolchain
from codegen.toolchain import tool_env
from compat import images
from runtime.contract import Context

# The checkout under test: the tests of one checkout never read another's files.
ROOT = Path(__file__).resolve().parent.parent

# Contracts as released in v1.0.0, frozen for the tests that edit contracts:
# what they edit and the line numbers they expect never move when someone
# edits proto/ (the README's own loop adds a field there).
CONTRACTS = ROOT / "tests" / "data" / "contracts"

# What a project takes from this checkout besides its contracts: the
# generator, its configuration and the options the contracts are written in.
GENERATOR = ("codegen", "buf.yaml", "buf.gen.yaml", "proto/ai/options")

# What never belongs in a copy of a checkout.
NOT_COPIED = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", ".mypy_cache", ".pytest_cache", ".hypothesis", "*.egg-info", "build", "dist"
)


def buf_exe() -> str:
    exe = shutil.which("buf", path=tool_env()["PATH"])
    assert exe is not None, "buf is not installed (pip install -e '.[dev]')"
    return exe


def copy_paths(src: Path, dest: Path, names: tuple[str, ...]) -> Path:
    """Copy files and directories by their path under src to the same path under dest."""
    for name in names:
        if (src / name).is_dir():
            shutil.copytree(src / name, dest / name, ignore=NOT_COPIED, dirs_exist_ok=True)
        else:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / name, dest / name)
    return dest


def released_project(dest: Path) -> Path:
    """A project of its own in dest: this checkout's generator, the frozen
    v1.0.0 contracts, the code generated from them and their baseline."""
    copy_paths(ROOT, dest, GENERATOR)
    shutil.copytree(CONTRACTS / "proto", dest / "proto", dirs_exist_ok=True)
    toolchain.generate(root=dest)
    images.write_baseline(dest, images.next_baseline(dest, "v1.0.0"))
    return dest


def checkout_env(root: Path = ROOT) -> dict[str, str]:
    """The environment of a child process that must import the code of the
    checkout at root, whichever checkout's virtualenv runs it."""
    env = tool_env()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), str(root / "generated"), env.get("PYTHONPATH")) if p)
    return env


def aisdk(cwd: Path, *args: str, root: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`aisdk ARGS` run in cwd with the CLI of the checkout at root."""
    return subprocess.run([sys.executable, "-m", "aisdk.cli", *args], cwd=cwd, env=checkout_env(root),
                          capture_output=True, text=True, timeout=timeout)


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
