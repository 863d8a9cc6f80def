"""Serving one subject: bytes -> Envelope -> checked, typed payload -> handler
-> reply, ack or dead letter. Everything that does not change per message is
resolved when the endpoint is built; a subscriber never dies of bad input."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import nats.errors
from nats.aio.msg import Msg

from google.protobuf.message import DecodeError as _ProtoDecodeError

from ai.envelope.v1 import envelope_pb2
from runtime import codec
from runtime.context import MessageContext
from runtime.contract import Pattern, SubjectSpec
from runtime.errors import ContractViolation, DecodeError, HandlerError, PlatformError, TenantMismatch, retry_after_of
from runtime.settings import RetryPolicy as RetryPolicy  # its home was this module
from runtime.stats import EndpointStats
from runtime.tenancy import stamped_account

if TYPE_CHECKING:
    from runtime.bus import Bus
    from runtime.hooks import HookChain

log = logging.getLogger("aisdk.endpoint")
Code = envelope_pb2.Error
_perf_ns = time.perf_counter_ns
_parse_envelope = envelope_pb2.Envelope.FromString


def error_code(exc: BaseException) -> int:
    if isinstance(exc, TenantMismatch):
        return Code.CODE_PERMISSION_DENIED
    if isinstance(exc, (DecodeError, ContractViolation)):
        return Code.CODE_INVALID_ARGUMENT
    if isinstance(exc, HandlerError):
        return exc.code
    return Code.CODE_INTERNAL


def gives_up(exc: BaseException) -> bool:
    """A HandlerError that is not retryable says another delivery cannot
    help (a poison message): it is dead-lettered at once."""
    return isinstance(exc, HandlerError) and not exc.retryable


def error_proto(exc: BaseException, spec: SubjectSpec[Any, Any]) -> envelope_pb2.Error:
    if isinstance(exc, ContractViolation):
        return exc.to_proto()
    if isinstance(exc, HandlerError):
        error = Code(code=exc.code, message=str(exc), retryable=exc.retryable)  # type: ignore[arg-type]
        if exc.retry_after is not None:
            error.retry_after.FromNanoseconds(round(exc.retry_after * 1e9))
        return error
    if isinstance(exc, PlatformError):
        return Code(code=error_code(exc), message=str(exc))  # type: ignore[arg-type]
    # Never leak a traceback or an exception's text to the caller.
    return Code(code=Code.CODE_INTERNAL, message=f"internal error in {spec.service}.{spec.rpc}")


class Endpoint:
    """One served subject of one handler."""

    def __init__(
        self,
        bus: Bus,
        spec: SubjectSpec[Any, Any],
        method: Callable[..., Any],
        *,
        queue_group: str,
        concurrency: int,
        subject: str,
        hooks: HookChain | None = None,
    ) -> None:
        self.bus = bus
        self.spec = spec
        self.method = method
        self.queue_group = queue_group
        self.subject = subject
        self.stats = EndpointStats()
        self.concurrency = concurrency
        self._sem = asyncio.Semaphore(concurrency) if concurrency > 1 else None
        self._tasks: set[asyncio.Task[None]] = set()
        self._type = spec.request_name
        self._cls = spec.request_type
        self._parse = spec.request_type.FromString
        self._version = spec.schema_version
        self._validate = spec.validate_request if bus.validate else None
        self._reply_type = spec.reply_name
        self._reply_cls = spec.reply_type
        self._reply_heads: dict[str, bytes] = {}
        self._validate_reply = spec.validate_reply if bus.validate else None
        self._reply_event_prefix = (
            f"{bus.prefix}.{spec.component}.{spec.reply_event}." if spec.reply_event else ""
        )
        self._durable = bus.durability(spec)
        handlers: dict[Pattern, Callable[[str, bytes, str], Awaitable[None]]] = {
            Pattern.EVENT: self._handle_event,
            Pattern.WORK_QUEUE: self._handle_event,
            Pattern.REQUEST_REPLY: self._handle_request,
            Pattern.STREAM: self._handle_stream,
        }
        self._handle = handlers[spec.pattern]
        # Last, so that hooks see a complete endpoint: the bus's chain, or the
        # one serve() built for this service. Without hooks, the handler itself.
        self.hooks = bus.hooks if hooks is None else hooks
        self.method = self.hooks.wrap_handler(self, method)

    # -- decoding ---------------------------------------------------------

    def open(self, subject: str, data: bytes) -> tuple[envelope_pb2.Envelope, Any]:
        try:
            env = _parse_envelope(data)
        except _ProtoDecodeError:
            env = codec.open_envelope(subject, data)  # raises the DecodeError
        # The checks in codec.open_envelope's order, their common outcome
        # inline (one comparison each); the codec's functions give the errors.
        if not env.type:
            codec.check_has_type(subject, env)
        if subject.rpartition(".")[2] != env.tenant_id:
            codec.check_tenant_matches(subject, env)
        if env.schema_version != self._version:
            codec.check_version(subject, env, self._version)
        if env.type != self._type:
            codec.open_payload(subject, env, self._cls, self._type)
        try:
            payload = self._parse(env.data)
        except _ProtoDecodeError:
            payload = codec.open_payload(subject, env, self._cls, self._type)
        if self._validate is not None:
            violations = self._validate(payload)
            if violations:
                raise ContractViolation(self._type, violations)
        return env, payload

    def _reply_head(self, tenant_id: str) -> bytes:
        head = self._reply_heads.get(tenant_id)
        if head is None:
            if len(self._reply_heads) >= 4096:  # bounded: a wildcard endpoint sees every tenant
                self._reply_heads.clear()
            head = self._reply_heads[tenant_id] = codec.head(
                self._reply_type, self._version, tenant_id, self.bus.source
            )
        return head

    def _expired(self, deadline: float | None) -> bool:
        if deadline is not None and deadline <= time.time():
            self.stats.expired += 1
            return True
        return False

    # -- core NATS --------------------------------------------------------

    async def on_msg(self, msg: Msg) -> None:
        """The nats-py subscription callback."""
        if self._sem is None:
            try:
                await self._dispatch(msg)
            except Exception as e:  # noqa: BLE001 - counted and logged, the subscription lives on
                self._internal_error(msg.subject, e)
            return
        # Blocking here, not queueing more tasks, keeps memory bounded: the
        # subscription's pending limit absorbs the burst.
        await self._sem.acquire()
        task = asyncio.create_task(self._run(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, msg: Msg) -> None:
        assert self._sem is not None
        try:
            await self._dispatch(msg)
        except Exception as e:  # noqa: BLE001 - a task's exception would otherwise be lost
            self._internal_error(msg.subject, e)
        finally:
            self._sem.release()

    async def _dispatch(self, msg: Msg) -> None:
        # A request that crossed from a tenant's account carries the account
        # the server stamped on it (runtime.tenancy), which no client can
        # forge: it must be the subject's tenant, whatever the envelope says.
        # Our own envelopes travel without headers: the check costs one
        # attribute test per message unless a header is there.
        account = stamped_account(msg.headers) if msg.headers else None
        if account is not None and account != msg.subject.rpartition(".")[2]:
            self.stats.received += 1
            mismatch = TenantMismatch(msg.subject, account, "caller account")
            await self._refuse(msg.subject, msg.data, mismatch, msg.reply, 0)
            return
        await self._handle(msg.subject, msg.data, msg.reply)

    def _internal_error(self, subject: str, exc: Exception) -> None:
        """The runtime, not the handler, failed on a message (a reply into a
        full buffer, say): count and log it."""
        self.stats.internal_errors += 1
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        log.error("%s.%s on %s: %s", self.spec.service, self.spec.rpc, subject, self.stats.last_error,
                  exc_info=not isinstance(exc, (PlatformError, nats.errors.Error)))

    def in_flight(self) -> list[asyncio.Task[None]]:
        """Handler tasks still running (Bus.close cancels them at its deadline)."""
        return [t for t in self._tasks if not t.done()]

    async def wait_idle(self) -> None:
        """Wait for in-flight handlers (drain)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _dead_letter(
        self, subject: str, data: bytes, code: int, reason: str, attempts: int, consumer: str
    ) -> None:
        self.hooks.dead_lettered(self, subject, data, reason, attempts)
        if await self.bus.dead_letter(subject, data, code, reason, attempts, consumer):
            self.stats.dead_lettered += 1
        else:
            self.stats.dead_letter_failed += 1

    async def _refuse(self, subject: str, data: bytes, exc: PlatformError, reply: str, attempts: int) -> None:
        self.stats.invalid += 1
        self.hooks.refused(self, subject, data, exc)
        self.stats.last_error = str(exc)
        if reply:
            tenant = subject.rpartition(".")[2]
            await self.bus.send_error(reply, tenant, error_proto(exc, self.spec), "")
        else:
            await self._dead_letter(subject, data, error_code(exc), str(exc), attempts, self.queue_group)

    async def _failed(self, exc: Exception, subject: str, reply: str, env: envelope_pb2.Envelope) -> None:
        """A request or stream handler raised: count it, log anything but a
        HandlerError, and answer with an Error that leaks no internals."""
        self.stats.errors += 1
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, HandlerError):
            log.exception("handler %s.%s failed on %s", self.spec.service, self.spec.rpc, subject)
        if reply:
            internal = exc if isinstance(exc, HandlerError) else Exception()
            try:
                error = error_proto(internal, self.spec)
            except Exception:  # noqa: BLE001 - a HandlerError subclass that breaks its own code
                error = error_proto(Exception(), self.spec)
            await self.bus.send_error(reply, env.tenant_id, error, env.id)

    async def _cancelled(self, reply: str, env: envelope_pb2.Envelope) -> None:
        """The handler was cancelled (Bus.close's deadline): answer, so the
        requester does not wait out its timeout."""
        self.stats.errors += 1
        err = Code(code=Code.CODE_UNAVAILABLE, message="cancelled before it was answered (the server is closing)",
                   retryable=True)
        await self.bus.send_error(reply, env.tenant_id, err, env.id)

    async def _admit(
        self, subject: str, data: bytes, reply: str
    ) -> tuple[envelope_pb2.Envelope, Any, float | None] | None:
        """Count, decode and check a message; refuse it (error reply or dead
        letter) or drop it when expired. None means: do not handle it."""
        self.stats.received += 1
        try:
            env, payload = self.open(subject, data)
        except PlatformError as e:
            await self._refuse(subject, data, e, reply, 0)
            return None
        deadline = codec.deadline_of(env)
        if self._expired(deadline):
            if reply:
                err = Code(code=Code.CODE_DEADLINE_EXCEEDED, message="deadline passed before processing")
                await self.bus.send_error(reply, env.tenant_id, err, env.id)
            return None
        return env, payload, deadline

    async def _handle_request(self, subject: str, data: bytes, reply: str) -> None:
        st = self.stats
        admitted = await self._admit(subject, data, reply)
        if admitted is None:
            return
        env, payload, deadline = admitted
        t0 = _perf_ns()
        try:
            result = await self.method(payload, MessageContext(subject, env.tenant_id, env, deadline))
            if type(result) is not self._reply_cls:
                raise TypeError(f"handler returned {type(result).__name__}, not {self._reply_type}")
            if self._validate_reply is not None:
                violations = self._validate_reply(result)
                if violations:
                    raise ContractViolation(self._reply_type, violations)
        except Exception as e:  # noqa: BLE001 - a handler failure is an error reply, never a dead subscription
            await self._failed(e, subject, reply, env)
            return
        except asyncio.CancelledError:
            if reply:
                await self._cancelled(reply, env)
            raise
        finally:
            st.processing_ns += _perf_ns() - t0
        out = codec.reply(self._reply_head(env.tenant_id), result.SerializeToString(), env.id, env.traceparent,
                          env.tracestate)
        if reply:
            try:
                await self.bus.publish_bytes(reply, out)
            except nats.errors.MaxPayloadError:
                await self._failed(PlatformError(f"the reply ({len(out)} bytes) exceeds the server's max payload"),
                                   subject, reply, env)
                return
        if self._reply_event_prefix:
            # The reply and the event carry the same type: send the same bytes.
            await self.bus.publish_bytes(self._reply_event_prefix + env.tenant_id, out)
        st.handled += 1

    async def _handle_stream(self, subject: str, data: bytes, reply: str) -> None:
        st = self.stats
        if not reply:
            st.received += 1
            await self._refuse(subject, data, DecodeError(subject, "a stream request needs a reply subject"), "", 0)
            return
        admitted = await self._admit(subject, data, reply)
        if admitted is None:
            return
        env, payload, deadline = admitted
        t0 = _perf_ns()
        chunks = 0
        head = self._reply_head(env.tenant_id)  # one tenant for the whole stream
        try:
            async for chunk in self.method(payload, MessageContext(subject, env.tenant_id, env, deadline)):
                if self._validate_reply is not None:
                    violations = self._validate_reply(chunk)
                    if violations:
                        raise ContractViolation(self._reply_type, violations)
                await self.bus.publish_bytes(reply, codec.reply(head, chunk.SerializeToString(), env.id))
                chunks += 1
        except Exception as e:  # noqa: BLE001 - the stream ends with an Error, the subscription lives on
            await self._failed(e, subject, reply, env)
            return
        except asyncio.CancelledError:
            await self._cancelled(reply, env)
            raise
        finally:
            st.processing_ns += _perf_ns() - t0
        end = envelope_pb2.StreamEnd(chunks=chunks).SerializeToString()
        await self.bus.publish_bytes(
            reply,
            codec.envelope(
                codec.STREAM_END_TYPE, self._version, env.tenant_id, self.bus.source, end, correlation_id=env.id
            ).SerializeToString(),
        )
        st.handled += 1

    async def _handle_event(self, subject: str, data: bytes, reply: str) -> None:
        st = self.stats
        # Events are never answered: bad ones are dead-lettered, not replied to.
        admitted = await self._admit(subject, data, "")
        if admitted is None:
            return
        env, payload, deadline = admitted
        ctx = MessageContext(subject, env.tenant_id, env, deadline)
        t0 = _perf_ns()
        try:
            # The first attempt, as nearly every message goes; retries below.
            await self.method(payload, ctx)
        except Exception as e:  # noqa: BLE001 - retried, then dead-lettered
            await self._retry(subject, data, payload, ctx, e)
        else:
            st.handled += 1
        finally:
            st.processing_ns += _perf_ns() - t0

    async def _retry(self, subject: str, data: bytes, payload: Any, ctx: MessageContext, failure: Exception) -> None:
        """Attempts 2.. of an event whose handler raised `failure`, then the dead letter."""
        st = self.stats
        policy = self.bus.retry
        attempt = 1
        while True:
            st.errors += 1
            st.last_error = f"{type(failure).__name__}: {failure}"
            # None: a retry-after longer than the policy waits in process,
            # dead-lettered now, replayable later.
            wait = policy.wait(attempt, retry_after_of(failure))
            if attempt >= policy.attempts or gives_up(failure) or wait is None:
                log.warning("handler %s.%s failed %d times on %s: %s", self.spec.service,
                            self.spec.rpc, attempt, subject, st.last_error)
                await self._dead_letter(subject, data, error_code(failure), st.last_error, attempt, self.queue_group)
                return
            st.retried += 1
            await asyncio.sleep(wait)
            attempt += 1
            ctx.attempt = attempt
            try:
                await self.method(payload, ctx)
            except Exception as e:  # noqa: BLE001 - retried, then dead-lettered
                failure = e
            else:
                st.handled += 1
                return

    # -- JetStream --------------------------------------------------------

    async def on_js_msg(self, msg: Msg) -> None:
        """One message of a durable pull consumer: ack on success, nak with
        backoff on failure, dead-letter after max deliveries."""
        st = self.stats
        st.received += 1
        d = self._durable
        assert d is not None
        attempt = msg.metadata.num_delivered or 1
        try:
            env, payload = self.open(msg.subject, msg.data)
        except PlatformError as e:
            # Redelivering garbage cannot help: dead-letter it at once.
            st.invalid += 1
            st.last_error = str(e)
            await self._dead_letter(msg.subject, msg.data, error_code(e), str(e), attempt, self.queue_group)
            await msg.term()
            return
        deadline = codec.deadline_of(env)
        if self._expired(deadline):
            await msg.ack()
            return
        t0 = _perf_ns()
        try:
            await self.method(payload, MessageContext(msg.subject, env.tenant_id, env, deadline, attempt))
        except Exception as e:  # noqa: BLE001 - nak or dead-letter, never a dead consumer
            st.errors += 1
            st.last_error = f"{type(e).__name__}: {e}"
            if attempt >= d.max_deliver or gives_up(e):
                await self._dead_letter(
                    msg.subject, msg.data, error_code(e), st.last_error, attempt, self.queue_group
                )
                await msg.term()
            else:
                st.retried += 1
                backoff = d.backoff_ms[min(attempt, len(d.backoff_ms)) - 1] / 1000 if d.backoff_ms else None
                # An error that says when a retry can succeed (a rate limit's
                # window) is redelivered no sooner.
                after = retry_after_of(e)
                if after is not None:
                    backoff = max(backoff or 0.0, after)
                await msg.nak(delay=backoff)
            return
        finally:
            st.processing_ns += _perf_ns() - t0
        await msg.ack()
        st.handled += 1
