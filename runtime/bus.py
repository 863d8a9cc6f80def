"""The bus: one NATS connection per process, the transport generated clients
call, and the server side that runs generated handlers.

    async with Bus(["nats://a:4222", "nats://b:4222"], BusSettings(name="gateway")) as bus:
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
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

import nats
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from ai.envelope.v1 import envelope_pb2
from runtime import codec, jetstream, reconnect
from runtime.contract import CallOptions, Durability, Pattern, ServiceHandler, SubjectSpec
from runtime.endpoint import Endpoint
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
from runtime.settings import BusSettings

if TYPE_CHECKING:
    from runtime.telemetry import Telemetry

log = logging.getLogger("aisdk.bus")

DEFAULT_URL = "nats://127.0.0.1:4222"
DEFAULT_REPLY_CONCURRENCY = 64
# A letter or a stop hook still gets this long once the close deadline has passed.
CLOSE_GRACE = 1.0
_NO_OPTIONS: CallOptions = {}
_STATUS = "Status"
# Re-exported: raised by Bus.publish and Bus.serve.
JetStreamUnavailable = jetstream.JetStreamUnavailable


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
        settings: BusSettings | None = None,
        *,
        telemetry: Telemetry | None = None,
        hooks: Sequence[BusHooks] = (),
    ) -> None:
        self.servers = [servers] if isinstance(servers, str) else list(servers)
        self.settings = s = BusSettings() if settings is None else settings
        # Copied out of the settings: read per message.
        self.name = s.name
        self.prefix = s.prefix
        self.source = s.source or f"{s.name}/{socket.gethostname()}/{os.getpid()}"
        self.validate = s.validate
        self.retry = s.retry
        self.pending_msgs_limit = s.pending_msgs_limit
        self.pending_bytes_limit = s.pending_bytes_limit
        self.publish_wait = s.publish_wait
        self.mirror_headers = s.mirror_headers
        # Handlers cancelled because they outlived Bus.close's deadline.
        self.cancelled_on_close = 0
        # Messages the client dropped because a subscription's pending limit
        # was reached (a slow consumer): the bound that keeps memory flat.
        self.slow_consumer_dropped = 0
        self._connect_options: dict[str, Any] = {
            "name": s.name,
            "user_credentials": s.user_credentials,
            "nkeys_seed": s.nkeys_seed,
            "tls": s.tls,
            "tls_hostname": s.tls_hostname,
            "inbox_prefix": s.inbox_prefix,
            "user": s.user,
            "password": s.password,
            "token": s.token,
            "connect_timeout": s.connect_timeout,
            "reconnect_time_wait": s.reconnect_time_wait,
            "reconnect_to_server_handler": reconnect.backoff(s.reconnect_time_wait, s.max_reconnect_wait),
            "max_reconnect_attempts": s.max_reconnect_attempts,
            "pending_size": s.outbound_buffer_bytes,
            # Bus.close bounds the whole close itself; nats-py's bound is for its flush only.
            "drain_timeout": max(1, int(s.drain_timeout)),
            # Subjects are built from checked tokens only (runtime.contract).
            "skip_subject_validation": True,
        }
        self._last_server_error = ""
        self._dead_letters = jetstream.DeadLetters(self.prefix, self.source, self.publish_bytes, s.publish_wait)
        self._nc: Client | None = None
        self._jets: jetstream.JetStream | None = None
        self._subjects: dict[tuple[int, str], str] = {}
        self._subs: list[Subscription] = []
        self._services: list[Service] = []
        self._endpoints: list[Endpoint] = []
        self._closing = False
        self._closed: asyncio.Future[None] | None = None
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
        return self.settings.durability_overrides.get(spec.key, spec.durability)

    @property
    def dead_letters(self) -> int:
        """Dead letters stored (published, without JetStream)."""
        return self._dead_letters.stored

    @property
    def dead_letters_failed(self) -> int:
        """Dead letters that could not be stored: logged, and lost."""
        return self._dead_letters.failed

    # -- lifecycle --------------------------------------------------------

    @property
    def nc(self) -> Client:
        if self._nc is None:
            raise PlatformError("the bus is not connected: use `async with Bus(...)` or await bus.connect()")
        return self._nc

    @property
    def services(self) -> list[Service]:
        return list(self._services)

    async def flush(self) -> None:
        """Return once the server has processed everything this connection
        sent so far (subscriptions included).

        nats-py's own flush() writes its PING straight to the socket, ahead
        of commands still queued for its flusher task, so its PONG can come
        back before the server has seen a SUB sent just before: a request
        from another connection then finds no responders. Having the
        flusher write its queue first closes that gap."""
        nc = self.nc
        await nc._flush_pending(force_flush=True)
        await nc.flush()

    async def connect(self) -> Bus:
        options = {k: v for k, v in self._connect_options.items() if v is not None}
        # A TLS refusal will not heal by retrying, and nats-py's first
        # connect can retry it without end: it ends the connect at once.
        tls_refused: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        uses_tls = options.get("tls") is not None

        async def on_error(e: Exception) -> None:
            if self._nc is None and isinstance(e, ssl.SSLError) and not tls_refused.done():
                if isinstance(e, ssl.SSLCertVerificationError):
                    tls_refused.set_result(f"the server's certificate is not trusted ({e.verify_message}): "
                                           "give the CA that signed it")
                elif "CERTIFICATE_REQUIRED" in str(e.reason):
                    tls_refused.set_result("the server requires a client certificate (mutual TLS): give one and its key")
                else:
                    tls_refused.set_result(f"TLS refused ({e.reason or e})")
            elif (self._nc is None and isinstance(e, BrokenPipeError | ConnectionResetError) and uses_tls
                  and not tls_refused.done()):
                # TLS 1.3 sends the server's "certificate required" alert after
                # the handshake: nats-py may write its CONNECT into the closed
                # socket and see a broken pipe before it reads the alert.
                tls_refused.set_result("the server closed the connection during the TLS handshake: it requires a "
                                       "client certificate (mutual TLS) that it trusts: give one and its key")
            if isinstance(e, nats.errors.SlowConsumerError):
                # nats-py reports every dropped message: count each, log at
                # powers of two so that a flood does not flood the log too.
                self.slow_consumer_dropped += 1
                n = self.slow_consumer_dropped
                if n & (n - 1) == 0:
                    log.warning("slow consumer on %s: %d message(s) dropped so far", e.subject, n)
                return
            # Kept: a later failure (a JetStream check that timed out on a
            # permissions violation, say) reports what the server said.
            self._last_server_error = str(e)
            if not self._closing:
                log.warning("%s", e)

        async def on_disconnect() -> None:
            if not self._closing:
                log.warning("disconnected from NATS; reconnecting")

        async def on_reconnect() -> None:
            log.info("reconnected to NATS at %s", self.nc.connected_url)

        connecting = asyncio.ensure_future(nats.connect(
            self.servers,
            error_cb=on_error,
            disconnected_cb=on_disconnect,
            reconnected_cb=on_reconnect,
            allow_reconnect=True,
            **options,
        ))
        racing: set[asyncio.Future[Any]] = {connecting, tls_refused}
        await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
        # Both can be done by now: nats-py reports the TLS error, then gives
        # up with "no servers available". The TLS reason is the one to give.
        if tls_refused.done() or not connecting.done():
            connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await connecting
            raise ConnectionFailed(self.servers, tls_refused.result())
        try:
            self._nc = connecting.result()
        except (OSError, nats.errors.NoServersError, asyncio.TimeoutError) as e:
            raise ConnectionFailed(self.servers, str(e) or type(e).__name__) from None
        self._jets = jetstream.JetStream(
            self._nc, self.prefix, self.settings.jetstream_timeout, lambda: self._last_server_error
        )
        self._dead_letters.jetstream = self._jets
        await self._jets.check()
        return self

    async def close(self) -> None:
        """Drain, within one deadline (settings.drain_timeout): stop taking
        work, let in-flight handlers finish and their acks and replies go out,
        stop the handlers, then flush and close. Handlers still running at the
        deadline are cancelled (a cancelled request is answered UNAVAILABLE)
        and counted in `cancelled_on_close`. Closing again does nothing."""
        if self._closed is None:
            if self._nc is None or self._nc.is_closed:
                self._unhook()
                return
            self._closed = asyncio.ensure_future(self._close(self._nc))
        # Shielded: a caller giving up on close does not abandon it half-way.
        await asyncio.shield(self._closed)

    async def _close(self, nc: Client) -> None:
        self._closing = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.drain_timeout

        def left(floor: float = 0.0) -> float:
            return max(deadline - loop.time(), floor)

        drains = {sub: asyncio.ensure_future(self._drain(sub)) for sub in self._subs}
        work = asyncio.ensure_future(self._finish_work(list(drains.values())))
        await asyncio.wait({work}, timeout=left())
        on_time = work.done()
        if not on_time:
            work.cancel()
            await self._cancel_leftovers([sub for sub, drain in drains.items() if not drain.done()])
        stops = asyncio.ensure_future(self._stop_services())
        await asyncio.wait({stops}, timeout=left(CLOSE_GRACE))
        if not stops.done():
            stops.cancel()
            log.error("handler stop hooks outlived the close deadline; cancelled")
        try:
            if on_time:
                await asyncio.wait_for(nc.drain(), left(CLOSE_GRACE))
            else:
                # Cancelled subscriptions cannot drain: send what is buffered
                # (the cancelled requests' answers) and close.
                await asyncio.wait_for(nc.flush(), left(CLOSE_GRACE))
        except (asyncio.TimeoutError, nats.errors.Error, OSError):
            pass
        if not nc.is_closed:
            # Disconnected or stuck: nothing left to flush to, close hard.
            with contextlib.suppress(OSError, nats.errors.Error):
                await nc.close()
        self._subs.clear()
        self._unhook()

    @staticmethod
    async def _drain(sub: Subscription) -> None:
        try:
            await sub.drain()  # type: ignore[no-untyped-call]
        except nats.errors.BadSubscriptionError:
            pass  # unsubscribed by its owner already: nothing left to drain
        except nats.errors.Error as e:
            log.warning("drain of %s: %s", sub.subject, e)

    async def _finish_work(self, drains: list[asyncio.Future[None]]) -> None:
        """Stop taking messages and wait for the ones taken."""
        if self._jets is not None:
            await self._jets.stop_workers()
        await asyncio.gather(*drains)
        for ep in self._endpoints:
            await ep.wait_idle()

    async def _cancel_leftovers(self, stuck: list[Subscription]) -> None:
        tasks: list[asyncio.Task[Any]] = [t for ep in self._endpoints for t in ep.in_flight()]
        if self._jets is not None:
            tasks += [w.task for w in self._jets.workers if w.task is not None and not w.task.done()]
        # A handler that runs inside the subscription's own task (concurrency
        # 1) is stopped with it; nats-py has no public call for that.
        for sub in stuck:
            task: asyncio.Task[Any] | None = getattr(sub, "_wait_for_msgs_task", None)
            if task is not None and not task.done():
                tasks.append(task)
        for task in tasks:
            task.cancel()
        self.cancelled_on_close += len(tasks)
        log.error("%d handler(s) still running at the close deadline (%g s): cancelled",
                  len(tasks), self.settings.drain_timeout)
        if tasks:
            # Let them answer (UNAVAILABLE) or nak before the connection goes.
            await asyncio.wait(tasks, timeout=CLOSE_GRACE)

    async def _stop_services(self) -> None:
        for service in self._services:
            await service.micro.stop()
            try:
                await service.handler.stop()
            except Exception:  # noqa: BLE001 - one handler's failed stop must not keep the bus open
                log.exception("stopping %s failed", type(service.handler).__name__)

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
            return
        # nats-py's publish directly, one coroutine less per event than
        # publish_bytes; its fallback takes over when the buffer is full.
        data, headers = env.SerializeToString(), self._headers(env)
        try:
            await self.nc.publish(subject, data, headers=headers)
        except nats.errors.OutboundBufferLimitError:
            await self._publish_when_drained(subject, data, "", headers)

    async def publish_bytes(self, subject: str, data: bytes, reply: str = "", headers: dict[str, str] | None = None) -> None:
        """Publish pre-encoded bytes; waits out a full buffer while reconnecting, then raises Backpressure."""
        try:
            await self.nc.publish(subject, data, reply, headers)
        except nats.errors.OutboundBufferLimitError:
            await self._publish_when_drained(subject, data, reply, headers)

    async def _publish_when_drained(self, subject: str, data: bytes, reply: str,
                                    headers: dict[str, str] | None) -> None:
        """A publish that found the buffer full: once more when the client
        has reconnected (or publish_wait has passed), then Backpressure."""
        nc = self.nc
        deadline = time.monotonic() + self.publish_wait
        while not nc.is_connected and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        try:
            await nc.publish(subject, data, reply, headers)
        except nats.errors.OutboundBufferLimitError:
            raise Backpressure(subject, nc.pending_data_size) from None

    def _jetstream(self) -> jetstream.JetStream:
        if self._jets is None:
            raise PlatformError("the bus is not connected: use `async with Bus(...)` or await bus.connect()")
        return self._jets

    async def _js_publish(self, spec: SubjectSpec[Any, Any], subject: str, env: envelope_pb2.Envelope) -> None:
        jets = self._jetstream()
        if self.settings.provision_streams:
            durability = self.durability(spec)
            assert durability is not None
            await jets.ensure(subject, jetstream.stream_config(self.prefix, spec, durability))
        headers = self._headers(env) or {}
        headers["Nats-Msg-Id"] = env.id
        await jets.publish(subject, env.SerializeToString(), headers, self.publish_wait)

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
        retries = options.get("retries", 0) if options else 0
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be a whole number >= 0, not {retries!r}")
        attempt = 1
        while True:
            try:
                return await self._request_once(spec, payload, tenant_id, options)
            except RemoteError as e:
                wait = self._retry_wait(e, attempt, retries, options)
                if wait is None:
                    raise
            await asyncio.sleep(wait)
            attempt += 1

    def _retry_wait(self, e: RemoteError, attempt: int, retries: int, options: CallOptions) -> float | None:
        """How long to wait before sending a request again after error e, or
        None to raise it: not retryable, no retries left, a retry-after longer
        than the policy waits for, or a wait past the call's deadline."""
        if not e.retryable or attempt > retries:
            return None
        wait = self.retry.wait(attempt, e.retry_after)
        if wait is None:
            return None
        deadline = options.get("deadline")
        if deadline is not None and time.time() + wait >= deadline:
            return None
        return wait

    async def _request_once(
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
        concurrency: handlers in flight per subject (default: what the handler's
            `concurrency(spec)` asks, else 1 for events and work queues, which
            keeps their order, and 64 for requests and streams).
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
            limit = concurrency or handler.concurrency(spec) or (DEFAULT_REPLY_CONCURRENCY if replies else 1)
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
        # Once serve returns, the server has the subscriptions: a request sent
        # from another connection right after finds its responder.
        await self.flush()
        service = Service(handler, endpoints, micro, own_hooks)
        self._services.append(service)
        return service

    async def _serve_durable(
        self, spec: SubjectSpec[Any, Any], ep: Endpoint, name: str, tenants: Sequence[str] | None
    ) -> None:
        durable = jetstream.consumer_name(name if tenants is None else f"{name}_{ep.subject.rpartition('.')[2]}")
        durability = self.durability(spec)
        assert durability is not None
        await self._jetstream().consume(spec, durability, ep, durable, max_ack_pending=max(ep.concurrency * 4, 64))

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
        # An observer that returns before the server has its interest would
        # miss what is published right after.
        await self.flush()
        return sub

    # -- failures -----------------------------------------------------------

    async def send_error(self, reply: str, tenant_id: str, error: envelope_pb2.Error, correlation_id: str) -> None:
        await self.publish_bytes(reply, codec.error_envelope(tenant_id, self.source, error, correlation_id))

    async def dead_letter(
        self, subject: str, data: bytes, code: int, reason: str, attempts: int, consumer: str
    ) -> bool:
        """Move a message that cannot be processed to {prefix}.dlq.<subject>,
        with the reason and attempt count. True once stored; never raises into
        the dispatcher (runtime.jetstream.DeadLetters)."""
        return await self._dead_letters.send(subject, data, code, reason, attempts, consumer)
