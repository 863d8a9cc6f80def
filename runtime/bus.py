"""The bus: one NATS connection per process, the transport generated clients
call, and the server side that runs generated handlers.

    async with Bus(["nats://a:4222", "nats://b:4222"], name="gateway") as bus:
        await bus.serve(MyGateway())
        reply = await GatewayServiceClient(bus, "acme").requests(request)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

import nats
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext

from ai.envelope.v1 import envelope_pb2
from runtime import codec, jetstream, reconnect
from runtime.contract import (
    DEFAULT_PREFIX,
    CallOptions,
    Durability,
    Pattern,
    ServiceHandler,
    SubjectSpec,
    check_prefix,
)
from runtime.endpoint import Endpoint, RetryPolicy
from runtime.errors import (
    Backpressure,
    ConnectionFailed,
    ContractViolation,
    NoResponders,
    PlatformError,
    RemoteError,
    RequestTimeout,
)
from runtime.hooks import BusHooks, HookChain
from runtime.micro import MicroService

if TYPE_CHECKING:
    from runtime.telemetry import Telemetry

log = logging.getLogger("aisdk.bus")

DEFAULT_URL = "nats://127.0.0.1:4222"
DEFAULT_PENDING_MSGS = 65_536
DEFAULT_PENDING_BYTES = 64 * 1024 * 1024
DEFAULT_REPLY_CONCURRENCY = 64
FETCH_TIMEOUT = 1.0
_NO_OPTIONS: CallOptions = {}
_STATUS = "Status"


class JetStreamUnavailable(PlatformError):
    def __init__(self, subject: str) -> None:
        super().__init__(f"{subject} is durable but JetStream is not enabled on the NATS server (run it with -js)")


class _PullWorker:
    """Fetches from one durable consumer; stops between batches on drain."""

    def __init__(self, psub: JetStreamContext.PullSubscription, endpoint: Endpoint) -> None:
        self.psub = psub
        self.endpoint = endpoint
        self.batch = max(1, min(endpoint.concurrency, 256))
        self.fetching = False
        self.stopping = False
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        ep = self.endpoint
        # A flag, not only cancellation, ends the loop: asyncio.wait_for inside
        # nats-py's fetch can swallow a cancel that races with its timeout
        # (Python 3.11), which would leave the loop fetching forever.
        while not self.stopping:
            self.fetching = True
            try:
                msgs = await self.psub.fetch(self.batch, timeout=FETCH_TIMEOUT)
            except (nats.errors.TimeoutError, asyncio.TimeoutError):
                # An idle consumer: nats-py raises either timeout type.
                continue
            except (nats.errors.ConnectionClosedError, nats.errors.ConnectionDrainingError):
                return
            except Exception as e:  # noqa: BLE001 - a transient fetch failure must not end consumption
                log.warning("fetch on %s failed: %s", ep.subject, e)
                await asyncio.sleep(FETCH_TIMEOUT)
                continue
            finally:
                self.fetching = False
            # Messages in hand are processed even when stopping: they are
            # delivered to us, and acking them spares a redelivery.
            if self.batch == 1:
                for m in msgs:
                    await ep.on_js_msg(m)
            else:
                await asyncio.gather(*(ep.on_js_msg(m) for m in msgs))

    async def stop(self) -> None:
        """Let the batch in hand finish (acked work is never lost); an
        unanswered fetch is cancelled, its messages are redelivered."""
        task = self.task
        if task is None:
            return
        self.stopping = True
        while not task.done() and not self.fetching:
            await asyncio.sleep(0.01)
        task.cancel()
        # Bounded: at worst the loop sees the flag after one fetch timeout.
        await asyncio.wait({task}, timeout=FETCH_TIMEOUT * 3)
        if not task.done():
            log.error("consumer of %s did not stop; abandoning it", self.endpoint.subject)
        await self.psub.unsubscribe()


@dataclass(frozen=True, slots=True)
class Observed:
    """A message seen by Bus.subscribe: decoded, or the reason it could not be."""

    subject: str
    envelope: envelope_pb2.Envelope | None
    payload: Any
    error: PlatformError | None


class Service:
    """What Bus.serve returns: the endpoints of one handler and their stats."""

    def __init__(
        self, handler: ServiceHandler, endpoints: list[Endpoint], micro: MicroService, hooks: HookChain = HookChain()
    ) -> None:
        self.handler = handler
        self.endpoints = endpoints
        self.micro = micro
        self.hooks = hooks


class Bus:
    """One NATS connection, used with `async with`."""

    def __init__(
        self,
        servers: str | Sequence[str] = DEFAULT_URL,
        *,
        name: str = "aisdk",
        prefix: str = DEFAULT_PREFIX,
        source: str | None = None,
        validate: bool = True,
        retry: RetryPolicy = RetryPolicy(),
        user_credentials: str | None = None,
        nkeys_seed: str | None = None,
        tls: ssl.SSLContext | None = None,
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
        connect_timeout: float = 2.0,
        reconnect_time_wait: float = 0.5,
        max_reconnect_wait: float = 10.0,
        max_reconnect_attempts: int = -1,
        outbound_buffer_bytes: int = 8 * 1024 * 1024,
        pending_msgs_limit: int = DEFAULT_PENDING_MSGS,
        pending_bytes_limit: int = DEFAULT_PENDING_BYTES,
        publish_wait: float = 5.0,
        drain_timeout: float = 30.0,
        mirror_headers: bool = False,
        durability_overrides: Mapping[str, Durability] | None = None,
        telemetry: Telemetry | None = None,
        hooks: Sequence[BusHooks] = (),
    ) -> None:
        self.servers = [servers] if isinstance(servers, str) else list(servers)
        self.name = name
        self.prefix = check_prefix(prefix)
        self.source = source or f"{name}/{socket.gethostname()}/{os.getpid()}"
        self.validate = validate
        self.retry = retry
        self.pending_msgs_limit = pending_msgs_limit
        self.pending_bytes_limit = pending_bytes_limit
        self.publish_wait = publish_wait
        self.drain_timeout = drain_timeout
        self.mirror_headers = mirror_headers
        self.dead_letters = 0
        self._durability = dict(durability_overrides or {})
        self._connect_options: dict[str, Any] = {
            "name": name,
            "user_credentials": user_credentials,
            "nkeys_seed": nkeys_seed,
            "tls": tls,
            "user": user,
            "password": password,
            "token": token,
            "connect_timeout": connect_timeout,
            "reconnect_time_wait": reconnect_time_wait,
            "reconnect_to_server_handler": reconnect.backoff(reconnect_time_wait, max_reconnect_wait),
            "max_reconnect_attempts": max_reconnect_attempts,
            "pending_size": outbound_buffer_bytes,
            "drain_timeout": int(drain_timeout),
            # Subjects are built from checked tokens only (runtime.contract).
            "skip_subject_validation": True,
        }
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._js_enabled = False
        self._streams: set[str] = set()
        self._subjects: dict[tuple[int, str], str] = {}
        self._subs: list[Subscription] = []
        self._workers: list[_PullWorker] = []
        self._services: list[Service] = []
        self._endpoints: list[Endpoint] = []
        self._dlq_ready = False
        self._closing = False
        # The hook chain (runtime.hooks) is chosen here, once: telemetry first,
        # then `hooks`. What it wraps is resolved now; with no hooks the sends
        # call the bus's own methods, and Endpoint its handler.
        self.telemetry = telemetry
        self.hooks = HookChain([*(() if telemetry is None else (telemetry.hooks,)), *hooks])
        self._send_publish = self.hooks.wrap_send(self, "publish", self._publish)
        self._send_request = self.hooks.wrap_send(self, "request", self._request)
        self._send_stream = self.hooks.wrap_stream(self, self._stream)
        self._build_envelope = self.hooks.wrap_envelope(self, self._envelope)

    def durability(self, spec: SubjectSpec[Any, Any]) -> Durability | None:
        """The contract's durability, or the deployment's override of its
        timings (ack wait, backoff, max deliveries) by registry key."""
        if spec.durability is None:
            return None
        return self._durability.get(spec.key, spec.durability)

    # -- lifecycle --------------------------------------------------------

    @property
    def nc(self) -> Client:
        if self._nc is None:
            raise PlatformError("the bus is not connected: use `async with Bus(...)` or await bus.connect()")
        return self._nc

    @property
    def services(self) -> list[Service]:
        return list(self._services)

    async def connect(self) -> Bus:
        options = {k: v for k, v in self._connect_options.items() if v is not None}

        async def on_error(e: Exception) -> None:
            if not self._closing:
                log.warning("%s", e)

        async def on_disconnect() -> None:
            if not self._closing:
                log.warning("disconnected from NATS; reconnecting")

        async def on_reconnect() -> None:
            log.info("reconnected to NATS at %s", self.nc.connected_url)

        try:
            self._nc = await nats.connect(
                self.servers,
                error_cb=on_error,
                disconnected_cb=on_disconnect,
                reconnected_cb=on_reconnect,
                allow_reconnect=True,
                **options,
            )
        except (OSError, nats.errors.NoServersError, asyncio.TimeoutError) as e:
            raise ConnectionFailed(self.servers, str(e) or type(e).__name__) from None
        self._js = self._nc.jetstream()
        try:
            await self._js.account_info()
            self._js_enabled = True
        except Exception:  # noqa: BLE001 - JetStream is optional until a durable subject is used
            self._js_enabled = False
        return self

    async def close(self) -> None:
        """Drain: stop taking work, let in-flight handlers finish and their
        acks and replies go out, then close."""
        if self._nc is None or self._nc.is_closed:
            self._unhook()
            return
        self._closing = True
        for worker in self._workers:
            await worker.stop()
        for sub in self._subs:
            try:
                await sub.drain()  # type: ignore[no-untyped-call]
            except nats.errors.Error as e:
                log.warning("drain of %s: %s", sub.subject, e)
        for ep in self._endpoints:
            await ep.wait_idle()
        for service in self._services:
            await service.micro.stop()
            try:
                await service.handler.stop()
            except Exception:  # noqa: BLE001 - one handler's failed stop must not keep the bus open
                log.exception("stopping %s failed", type(service.handler).__name__)
        try:
            await asyncio.wait_for(self._nc.drain(), self.drain_timeout)
        except (asyncio.TimeoutError, nats.errors.Error, OSError):
            # Disconnected or stuck: nothing left to flush to, close hard.
            with contextlib.suppress(OSError, nats.errors.Error):
                await self._nc.close()
        self._workers.clear()
        self._subs.clear()
        self._unhook()

    def _unhook(self) -> None:
        """Let every hook go of this bus, once (close may be called again)."""
        hooks, self.hooks = self.hooks, HookChain()
        hooks.detach(self)
        for service in self._services:
            service_hooks, service.hooks = service.hooks, HookChain()
            service_hooks.detach(self)

    async def __aenter__(self) -> Bus:
        return await self.connect()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- client side (runtime.contract.Transport) -------------------------

    # Each send goes through the hook chain resolved in __init__; without
    # hooks that is the plain method below, one call away.

    def publish(
        self, spec: SubjectSpec[Any, Any], payload: Any, tenant_id: str, options: CallOptions = _NO_OPTIONS
    ) -> Coroutine[Any, Any, None]:
        """Send an event or a work-queue message (await it)."""
        return self._send_publish(spec, payload, tenant_id, options)

    def request(
        self, spec: SubjectSpec[Any, Any], payload: Any, tenant_id: str, options: CallOptions = _NO_OPTIONS
    ) -> Coroutine[Any, Any, Any]:
        """Send a request; awaiting it gives the typed reply."""
        return self._send_request(spec, payload, tenant_id, options)

    def stream(
        self, spec: SubjectSpec[Any, Any], payload: Any, tenant_id: str, options: CallOptions = _NO_OPTIONS
    ) -> AsyncIterator[Any]:
        """Chunks of a STREAM reply; the timeout applies to each wait for the next chunk."""
        return self._send_stream(spec, payload, tenant_id, options)

    def subject(self, spec: SubjectSpec[Any, Any], tenant_id: str) -> str:
        key = (id(spec), tenant_id)
        subject = self._subjects.get(key)
        if subject is None:
            subject = spec.subject(tenant_id, self.prefix)
            if len(self._subjects) > 65_536:
                self._subjects.clear()
            self._subjects[key] = subject
        return subject

    def _envelope(
        self, spec: SubjectSpec[Any, Any], payload: Any, tenant_id: str, options: CallOptions, deadline: float | None
    ) -> envelope_pb2.Envelope:
        if type(payload) is not spec.request_type:
            raise TypeError(f"{spec.key} takes {spec.request_name}, not {type(payload).__name__}")
        if self.validate:
            violations = spec.validate_request(payload)
            if violations:
                raise ContractViolation(spec.request_name, violations)
        if not options:
            return codec.envelope(
                spec.request_name, spec.schema_version, tenant_id, self.source, payload.SerializeToString(),
                deadline=deadline,
            )
        return codec.envelope(
            spec.request_name,
            spec.schema_version,
            tenant_id,
            self.source,
            payload.SerializeToString(),
            message_id=options.get("message_id", ""),
            correlation_id=options.get("correlation_id", ""),
            deadline=options.get("deadline", deadline),
            attributes=options.get("attributes"),
        )

    def _headers(self, env: envelope_pb2.Envelope) -> dict[str, str] | None:
        """Envelope metadata mirrored into NATS headers, for foreign consumers only."""
        if not self.mirror_headers:
            return None
        headers = {"ce-id": env.id, "ce-type": env.type, "ce-source": env.source,
                   "ai-tenant-id": env.tenant_id, "ai-schema-version": env.schema_version}
        if env.traceparent:
            headers["traceparent"] = env.traceparent
        return headers

    async def _publish(
        self, spec: SubjectSpec[Any, Any], payload: Any, tenant_id: str, options: CallOptions = _NO_OPTIONS
    ) -> None:
        subject = self.subject(spec, tenant_id)
        env = self._build_envelope(spec, payload, tenant_id, options, None)
        if spec.durability is not None:
            await self._js_publish(spec, subject, env)
        else:
            await self.publish_bytes(subject, env.SerializeToString(), headers=self._headers(env))

    async def publish_bytes(self, subject: str, data: bytes, reply: str = "", headers: dict[str, str] | None = None) -> None:
        """Publish pre-encoded bytes; waits out a full buffer while reconnecting, then raises Backpressure."""
        nc = self.nc
        try:
            await nc.publish(subject, data, reply, headers)
        except nats.errors.OutboundBufferLimitError:
            deadline = time.monotonic() + self.publish_wait
            while not nc.is_connected and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            try:
                await nc.publish(subject, data, reply, headers)
            except nats.errors.OutboundBufferLimitError:
                raise Backpressure(subject, nc.pending_data_size) from None

    async def _ensure_stream(self, spec: SubjectSpec[Any, Any], subject: str) -> JetStreamContext:
        if not self._js_enabled or self._js is None:
            raise JetStreamUnavailable(subject)
        if spec.key not in self._streams:
            durability = self.durability(spec)
            assert durability is not None
            await jetstream.ensure_stream(self._js, self.prefix, spec, durability)
            self._streams.add(spec.key)
        return self._js

    async def _js_publish(self, spec: SubjectSpec[Any, Any], subject: str, env: envelope_pb2.Envelope) -> None:
        js = await self._ensure_stream(spec, subject)
        headers = self._headers(env) or {}
        headers["Nats-Msg-Id"] = env.id
        timeout = self.publish_wait
        try:
            await js.publish(subject, env.SerializeToString(), timeout=timeout, headers=headers)
        except nats.errors.TimeoutError:
            raise RequestTimeout(subject, timeout) from None
        except nats.errors.NoRespondersError:
            raise JetStreamUnavailable(subject) from None

    def _open_reply(self, spec: SubjectSpec[Any, Any], subject: str, data: bytes) -> Any:
        env = codec.open_envelope(subject, data)
        if env.type == codec.ERROR_TYPE:
            raise RemoteError.from_proto(envelope_pb2.Error.FromString(env.data), subject)
        codec.check_version(subject, env, spec.schema_version)
        reply = codec.open_payload(subject, env, spec.reply_type, spec.reply_name)
        if self.validate:
            violations = spec.validate_reply(reply)
            if violations:
                raise ContractViolation(spec.reply_name, violations)
        return reply

    def _timeout(self, spec: SubjectSpec[Any, Any], options: CallOptions) -> float:
        return options.get("timeout") or spec.timeout_ms / 1000

    async def _request(
        self, spec: SubjectSpec[Any, Any], payload: Any, tenant_id: str, options: CallOptions = _NO_OPTIONS
    ) -> Any:
        subject = self.subject(spec, tenant_id)
        timeout = self._timeout(spec, options)
        env = self._build_envelope(spec, payload, tenant_id, options, time.time() + timeout)
        try:
            msg = await self.nc.request(subject, env.SerializeToString(), timeout, headers=self._headers(env))
        except nats.errors.NoRespondersError:
            raise NoResponders(subject) from None
        except nats.errors.TimeoutError:
            raise RequestTimeout(subject, timeout) from None
        return self._open_reply(spec, subject, msg.data)

    async def _stream(
        self, spec: SubjectSpec[Any, Any], payload: Any, tenant_id: str, options: CallOptions = _NO_OPTIONS
    ) -> AsyncIterator[Any]:
        subject = self.subject(spec, tenant_id)
        timeout = self._timeout(spec, options)
        env = self._build_envelope(spec, payload, tenant_id, options, options.get("deadline"))
        nc = self.nc
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox, pending_msgs_limit=self.pending_msgs_limit)
        try:
            await self.publish_bytes(subject, env.SerializeToString(), inbox, self._headers(env))
            while True:
                try:
                    msg = await sub.next_msg(timeout)
                except nats.errors.TimeoutError:
                    raise RequestTimeout(subject, timeout) from None
                if not msg.data and msg.headers and msg.headers.get(_STATUS) == "503":
                    raise NoResponders(subject)
                renv = codec.open_envelope(subject, msg.data)
                if renv.type == codec.STREAM_END_TYPE:
                    return
                yield self._open_reply(spec, subject, msg.data)
        finally:
            await sub.unsubscribe()

    # -- server side --------------------------------------------------------

    async def serve(
        self,
        handler: ServiceHandler,
        *,
        tenants: Sequence[str] | None = None,
        queue_group: str | None = None,
        concurrency: int | None = None,
        consumer: str | None = None,
        hooks: Sequence[BusHooks] = (),
    ) -> Service:
        """Subscribe the operations the handler overrides.

        tenants: serve only these (default: every tenant, `ai.x.y.*`).
        queue_group: instead of the registry's (e.g. "agent.<id>" for agent messages).
        concurrency: handlers in flight per subject (default 1 for events and
            work queues, which keeps their order; 64 for requests and streams).
        consumer: durable consumer name of a durable EVENT subscriber.
        hooks: more hooks (runtime.hooks) for this service's endpoints, after the bus's.
        """
        implemented = handler.implemented()
        if not implemented:
            raise PlatformError(f"{type(handler).__name__} overrides no operation of {handler.SERVICE}")
        await handler.start(self)
        own_hooks = HookChain(hooks)
        endpoint_hooks = self.hooks + own_hooks.hooks
        endpoints: list[Endpoint] = []
        for spec, method_name in implemented:
            method = getattr(handler, method_name)
            group = spec.queue_group if queue_group is None else queue_group
            replies = spec.pattern in (Pattern.REQUEST_REPLY, Pattern.STREAM)
            limit = concurrency or (DEFAULT_REPLY_CONCURRENCY if replies else 1)
            subjects = [spec.wildcard(self.prefix)] if tenants is None else [self.subject(spec, t) for t in tenants]
            for subject in subjects:
                ep = Endpoint(self, spec, method, queue_group=group, concurrency=limit, subject=subject,
                              hooks=endpoint_hooks)
                if spec.durability is not None:
                    await self._serve_durable(spec, ep, consumer or group or type(handler).__name__, tenants)
                else:
                    sub = await self.nc.subscribe(
                        subject,
                        queue=group,
                        cb=ep.on_msg,
                        pending_msgs_limit=self.pending_msgs_limit,
                        pending_bytes_limit=self.pending_bytes_limit,
                    )
                    self._subs.append(sub)
                endpoints.append(ep)
        self._endpoints.extend(endpoints)
        component = implemented[0][0].component
        micro = MicroService(
            self, component, f"{handler.SERVICE} ({type(handler).__name__})",
            f"{implemented[0][0].schema_version}.0", endpoints,
        )
        await micro.start()
        service = Service(handler, endpoints, micro, own_hooks)
        self._services.append(service)
        return service

    async def _serve_durable(
        self, spec: SubjectSpec[Any, Any], ep: Endpoint, name: str, tenants: Sequence[str] | None
    ) -> None:
        js = await self._ensure_stream(spec, ep.subject)
        await self._ensure_dlq()
        durable = jetstream.consumer_name(name if tenants is None else f"{name}_{ep.subject.rpartition('.')[2]}")
        durability = self.durability(spec)
        assert durability is not None
        psub = await jetstream.pull_subscription(
            js, self.prefix, spec, durability, durable, ep.subject, max_ack_pending=max(ep.concurrency * 4, 64)
        )
        worker = _PullWorker(psub, ep)
        worker.task = asyncio.create_task(worker.run(), name=f"pull {ep.subject}")
        self._workers.append(worker)

    async def _ensure_dlq(self) -> None:
        if not self._dlq_ready and self._js_enabled and self._js is not None:
            await jetstream.ensure_dlq_stream(self._js, self.prefix)
            self._dlq_ready = True

    async def subscribe(
        self,
        spec: SubjectSpec[Any, Any],
        callback: Callable[[Observed], Awaitable[None]],
        *,
        tenant_id: str | None = None,
        queue_group: str = "",
    ) -> Subscription:
        """Observe a subject without serving it (`aisdk tail`, a dashboard on
        gateway.responses). Undecodable messages arrive with their error."""
        subject = spec.wildcard(self.prefix) if tenant_id is None else self.subject(spec, tenant_id)

        async def on_msg(msg: Msg) -> None:
            try:
                env = codec.open_envelope(msg.subject, msg.data)
                codec.check_tenant_matches(msg.subject, env)
                payload = codec.open_payload(msg.subject, env, spec.request_type, spec.request_name)
            except PlatformError as e:
                await callback(Observed(msg.subject, None, None, e))
                return
            await callback(Observed(msg.subject, env, payload, None))

        sub = await self.nc.subscribe(subject, queue=queue_group, cb=on_msg,
                                      pending_msgs_limit=self.pending_msgs_limit)
        self._subs.append(sub)
        return sub

    # -- failures -----------------------------------------------------------

    async def send_error(self, reply: str, tenant_id: str, error: envelope_pb2.Error, correlation_id: str) -> None:
        await self.publish_bytes(reply, codec.error_envelope(tenant_id, self.source, error, correlation_id))

    async def dead_letter(
        self, subject: str, data: bytes, code: int, reason: str, attempts: int, consumer: str
    ) -> None:
        """Move a message that cannot be processed to {prefix}.dlq.<subject>,
        with the reason and attempt count. Never raises into the dispatcher."""
        letter = envelope_pb2.DeadLetter(
            subject=subject, code=code, reason=reason, attempts=attempts, data=data, consumer=consumer  # type: ignore[arg-type]
        )
        letter.time.GetCurrentTime()
        tenant = subject.rpartition(".")[2]
        body = codec.envelope(codec.DEAD_LETTER_TYPE, "1.0", tenant, self.source, letter.SerializeToString())
        target = jetstream.dlq_subject(self.prefix, subject)
        self.dead_letters += 1
        try:
            if self._js_enabled and self._js is not None:
                await self._ensure_dlq()
                await self._js.publish(target, body.SerializeToString(), timeout=self.publish_wait)
            else:
                await self.publish_bytes(target, body.SerializeToString())
        except Exception as e:  # noqa: BLE001 - losing the letter is logged, the subscriber lives on
            log.error("could not dead-letter a message from %s (%s): %s", subject, reason, e)

