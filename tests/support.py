"""Helpers shared by the test modules. Test modules import from here, never
from each other, so that one module's rename or removal breaks no other."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True)
class Fault:
    """What the test provider answers instead of its answer: an HTTP error
    in OpenAI's shape (`status`, `message`, `code`, a `retry_after` header),
    or, with `cut_after`, a stream that sends that many words and then an
    error event (a failure after the first chunk)."""

    status: int = 500
    message: str = "the test server failed"
    code: str | None = None
    retry_after: float | None = None
    cut_after: int | None = None


@dataclass(frozen=True)
class Received:
    """One HTTP request the test provider answered."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    # time.monotonic() when it arrived
    at: float = 0.0


class TestProvider:
    """An OpenAI-compatible server on loopback, answering by a rule of its own
    so that a test can tell its answers from any other model's:
    POST /v1/chat/completions, given tools and no tool result yet, calls the
    first tool (`parallel` tools) with the last user message as its first
    string argument (streamed in fragments, after any `preamble`); given
    a tool result, answers with its first sentence; given documents between
    `<documents>` markers (RAG's template), with the first sentence of the
    first one; otherwise "test-server says: " and the first five words of the
    last user message (streamed word by word on `stream`). Usage is counted
    in words; POST /v1/embeddings gives `dimensions`-dimension
    vectors of hashed words (texts sharing words are close). Every request is
    recorded in `received`. fail(fault, times) makes the next requests fail
instead (an HTTP error, or a stream cut after some words: see Fault). Use
as a context manager; `base` is the api_base."""

    __test__ = False  # a helper, not a test class
    PREFIX = "test-server says:"
    # Faults in OpenAI's own words, which litellm maps to its exception classes.
    CONTEXT_TOO_LONG = Fault(400, "This model's maximum context length is 16 tokens. However, your messages "
                                  "resulted in 40 tokens. Please reduce the length of the messages.",
                             "context_length_exceeded")
    BAD_REQUEST = Fault(400, "Invalid value for 'temperature': must be at most 2.", "invalid_value")
    BAD_KEY = Fault(401, "Incorrect API key provided: sk-wrong.", "invalid_api_key")
    OVERLOADED = Fault(500, "The server had an error while processing your request.")

    def __init__(self, dimensions: int = 256) -> None:
        self.dimensions = dimensions
        self.received: list[Received] = []
        # Faults answered in order, one per request, before normal answers again.
        self.faults: list[Fault] = []
        # How many of the offered tools one turn calls (in parallel), and the
        # text said before calling them (some models do): a stream sends
        # that text first, then each call in fragments, as OpenAI does.
        self.parallel = 1
        self.preamble = ""
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, name="test-provider", daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> TestProvider:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def fail(self, fault: Fault, times: int = 1) -> None:
        """Answer the next `times` requests with fault."""
        with self._lock:
            self.faults.extend([fault] * times)

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self.faults.pop(0) if self.faults else None

    def paths(self) -> list[str]:
        with self._lock:
            return [r.path for r in self.received]

    @classmethod
    def answer(cls, text: str) -> str:
        return f"{cls.PREFIX} {' '.join(text.split()[:5])}"

    @staticmethod
    def first_sentence(text: str) -> str:
        body = re.sub(r"^\s*\[\d+\]\s*", "", text.strip())
        return re.split(r"(?<=[.!?])\s", body, maxsplit=1)[0]

    def reply(self, messages: list[dict[str, Any]], asked: str) -> str:
        tools = [m for m in messages if m.get("role") == "tool"]
        if tools:
            return self.first_sentence(str(json.loads(tools[-1]["content"]).get("result", ""))
                                       if tools[-1]["content"].startswith("{") else tools[-1]["content"])
        for m in messages:
            found = re.search(r"<documents>(.*?)</documents>", str(m.get("content") or ""), re.S)
            if m.get("role") == "system" and found:
                return self.first_sentence(found.group(1))
        return self.answer(asked)

    def tool_calls(self, tools: list[dict[str, Any]], messages: list[dict[str, Any]],
                   asked: str) -> list[dict[str, Any]]:
        """Calls of the first `parallel` tools offered, until a tool result is in."""
        if not tools or any(m.get("role") == "tool" for m in messages):
            return []
        out = []
        for i, tool in enumerate(tools[:self.parallel]):
            function = tool["function"]
            properties = (function.get("parameters") or {}).get("properties") or {}
            argument = next((k for k, v in properties.items() if v.get("type") == "string"), "question")
            out.append({"id": f"call_test_{i + 1}", "type": "function",
                        "function": {"name": function["name"], "arguments": json.dumps({argument: asked})}})
        return out

    def vector(self, text: str) -> list[float]:
        v = [0.0] * self.dimensions
        for word in text.lower().split():
            v[int.from_bytes(hashlib.sha256(word.strip(".,?!:").encode()).digest()[:4], "big") % self.dimensions] += 1
        norm = math.sqrt(sum(x * x for x in v)) or 1.0
        return [x / norm for x in v]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet: the test reads `received`
                pass

            def _json(self, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                with provider._lock:
                    provider.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                                                      time.monotonic()))
                fault = provider._next_fault()
                if fault is not None and fault.cut_after is None:
                    self._error(fault)
                elif self.path == "/v1/chat/completions":
                    self._chat(body, fault)
                elif self.path == "/v1/embeddings":
                    texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
                    used = sum(len(t.split()) for t in texts)
                    self._json({"object": "list", "model": body["model"],
                                "data": [{"object": "embedding", "index": i, "embedding": provider.vector(t)}
                                         for i, t in enumerate(texts)],
                                "usage": {"prompt_tokens": used, "total_tokens": used}})
                else:
                    self.send_error(404)

            def _error(self, fault: Fault) -> None:
                data = json.dumps({"error": {"message": fault.message, "type": "invalid_request_error"
                                             if fault.status < 500 else "server_error",
                                             "param": None, "code": fault.code}}).encode()
                self.send_response(fault.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if fault.retry_after is not None:
                    self.send_header("Retry-After", f"{fault.retry_after:g}")
                self.end_headers()
                self.wfile.write(data)

            def _chat(self, body: dict[str, Any], fault: Fault | None = None) -> None:
                messages = body["messages"]
                last = next((m for m in reversed(messages) if m["role"] == "user"), {"content": ""})
                calls = provider.tool_calls(body.get("tools") or [], messages, str(last["content"]))
                text = provider.preamble if calls else provider.reply(messages, str(last["content"]))
                prompt = sum(len(str(m.get("content") or "").split()) for m in messages)
                usage = {"prompt_tokens": prompt, "completion_tokens": len(text.split()) or 1,
                         "total_tokens": prompt + (len(text.split()) or 1)}
                head = {"id": "chatcmpl-test", "created": 1700000000, "model": body["model"]}
                if not body.get("stream"):
                    message: dict[str, Any] = {"role": "assistant", "content": text or None}
                    if calls:
                        message["tool_calls"] = calls
                    self._json({**head, "object": "chat.completion", "usage": usage, "choices": [
                        {"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}]})
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                words = text.split(" ") if text else []
                for i, word in enumerate(words):
                    if fault is not None and i == fault.cut_after:
                        self._event({"error": {"message": fault.message, "type": "server_error", "code": fault.code}})
                        return
                    delta = {"index": 0, "delta": {"content": word if i == 0 else f" {word}"},
                             "finish_reason": "stop" if i == len(words) - 1 and not calls else None}
                    self._event({**head, "object": "chat.completion.chunk", "choices": [delta]})
                for i, call in enumerate(calls):
                    self._call_fragments(head, i, call)
                if calls:
                    self._event({**head, "object": "chat.completion.chunk",
                                 "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
                self._event({**head, "object": "chat.completion.chunk", "choices": [], "usage": usage})
                self.wfile.write(b"data: [DONE]\n\n")

            def _call_fragments(self, head: dict[str, Any], index: int, call: dict[str, Any]) -> None:
                """One call as OpenAI streams it: its id and name with empty
                arguments, then the arguments in pieces of 7 characters."""
                arguments = call["function"]["arguments"]
                first = {"index": index, "id": call["id"], "type": "function",
                         "function": {"name": call["function"]["name"], "arguments": ""}}
                pieces = [{"index": index, "function": {"arguments": arguments[i:i + 7]}}
                          for i in range(0, len(arguments), 7)]
                for fragment in [first, *pieces]:
                    self._event({**head, "object": "chat.completion.chunk",
                                 "choices": [{"index": 0, "delta": {"tool_calls": [fragment]}, "finish_reason": None}]})

            def _event(self, payload: dict[str, Any]) -> None:
                self.wfile.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
                self.wfile.flush()

        return Handler


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed), so that a
    client's connection is refused for real."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
