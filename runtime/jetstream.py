"""JetStream from the registry: detection, one stream per durable subject (all
tenants), durable pull consumers per queue group or subscriber, their pull
workers, and the dead-letter stream.

Streams and consumers are brought in line with the contract (and the
deployment's durability overrides) every time a bus first uses them: a
difference NATS can update is updated and logged; one it cannot is an error
naming the difference. Fields the contract does not set (an operator's
max_msgs, say) are left as they are.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.errors import APIError, NoStreamResponseError, NotFoundError, ServiceUnavailableError

from ai.envelope.v1 import envelope_pb2
from runtime import codec
from runtime.contract import Durability, SubjectSpec
from runtime.errors import PlatformError, RequestTimeout

if TYPE_CHECKING:
    from runtime.endpoint import Endpoint

log = logging.getLogger("aisdk.jetstream")
DLQ_TOKEN = "dlq"
DLQ_MAX_AGE_S = 7 * 24 * 3600
FETCH_TIMEOUT = 1.0
# A running handler's messages are marked in progress this often, as a
# fraction of the consumer's ack wait: the ack wait becomes a liveness
# timeout (a dead or hung process lets it lapse), not a maximum duration. A
# third leaves two chances before the server gives the message to another.
PROGRESS_FRACTION = 1 / 3
# After a pull worker died of something unforeseen: long enough not to spin
# on a persistent fault, short enough that consumption resumes promptly.
RESTART_DELAY = 1.0
# err_code of the JetStream API's "not enabled" answers (for the account, on the server).
_NOT_ENABLED = frozenset({10039, 10076})
_RETENTION = {
    "limits": api.RetentionPolicy.LIMITS,
    "interest": api.RetentionPolicy.INTEREST,
    "work_queue": api.RetentionPolicy.WORK_QUEUE,
}
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
# The fields the contract sets, and of those, what NATS lets an existing
# stream or consumer change.
_STREAM_FIELDS = ("subjects", "retention", "storage", "duplicate_window", "max_age")
_STREAM_FIXED = frozenset({"storage"})
_CONSUMER_FIELDS = ("ack_policy", "ack_wait", "max_deliver", "filter_subject", "max_ack_pending")
_CONSUMER_FIXED = frozenset({"ack_policy"})


class JetStreamUnavailable(PlatformError):
    """JetStream is not enabled for this connection's server or account."""

    def __init__(self, subject: str, reason: str) -> None:
        self.subject = subject
        self.reason = reason
        super().__init__(f"{subject} is durable but {reason}")


class JetStreamError(PlatformError):
    """JetStream could not be used, for a reason other than being off."""

    def __init__(self, subject: str, cause: str) -> None:
        self.subject = subject
        self.cause = cause
        super().__init__(f"{subject} is durable but JetStream could not be used: {cause}")


class ConfigMismatch(PlatformError):
    """A stream or consumer differs from the contract in a way NATS will not update."""

    def __init__(self, what: str, differences: Sequence[str], reason: str) -> None:
        self.what = what
        self.differences = tuple(differences)
        super().__init__(f"{what} differs from the contract ({'; '.join(differences)}): {reason}")


def stream_name(prefix: str, spec: SubjectSpec[Any, Any]) -> str:
    """E.g. AI_AGENT_TASKS for ai.agent.tasks.*"""
    return _UNSAFE.sub("_", f"{prefix}_{spec.component}_{spec.operation}").replace("-", "_").upper()


def consumer_name(name: str) -> str:
    """A durable name from a queue group or subscriber name ("agent.workers" -> "agent_workers")."""
    return _UNSAFE.sub("_", name)


def dlq_subject(prefix: str, subject: str) -> str:
    """ai.agent.tasks.acme -> ai.dlq.agent.tasks.acme"""
    return f"{prefix}.{DLQ_TOKEN}.{subject[len(prefix) + 1:]}"


def stream_config(prefix: str, spec: SubjectSpec[Any, Any], d: Durability) -> api.StreamConfig:
    return api.StreamConfig(
        name=stream_name(prefix, spec),
        subjects=[spec.wildcard(prefix)],
        retention=_RETENTION[d.retention],
        storage=api.StorageType.FILE,
        duplicate_window=d.duplicate_window_ms / 1000 if d.duplicate_window_ms else 120.0,
        max_age=float(d.max_age_s),
    )


def dlq_config(prefix: str) -> api.StreamConfig:
    return api.StreamConfig(
        name=_UNSAFE.sub("_", f"{prefix}_{DLQ_TOKEN}").upper(),
        subjects=[f"{prefix}.{DLQ_TOKEN}.>"],
        retention=api.RetentionPolicy.LIMITS,
        storage=api.StorageType.FILE,
        duplicate_window=120.0,
        max_age=float(DLQ_MAX_AGE_S),
    )


def consumer_config(d: Durability, durable: str, filter_subject: str, max_ack_pending: int) -> api.ConsumerConfig:
    return api.ConsumerConfig(
        durable_name=durable,
        ack_policy=api.AckPolicy.EXPLICIT,
        # 30 s is the server's default when the contract leaves it at 0.
        ack_wait=d.ack_wait_ms / 1000 if d.ack_wait_ms else 30.0,
        max_deliver=d.max_deliver,
        filter_subject=filter_subject,
        max_ack_pending=max_ack_pending,
    )


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, float):
        # The server keeps durations in nanoseconds: compare at that grain.
        return round(value, 6)
    return 0.0 if value is None else value


def differences(current: Any, wanted: Any, fields: Sequence[str]) -> list[str]:
    """"field: current -> wanted" for each field of `fields` that differs."""
    return [
        f"{name}: {_plain(getattr(current, name))!r} -> {_plain(getattr(wanted, name))!r}"
        for name in fields
        if _plain(getattr(current, name)) != _plain(getattr(wanted, name))
    ]


def _fixed(diffs: list[str], fixed: frozenset[str]) -> list[str]:
    return [d for d in diffs if d.partition(":")[0] in fixed]


async def _reconcile(
    what: str, current: Any, wanted: Any, fields: tuple[str, ...], fixed: frozenset[str], remedy: str,
    update: Callable[[Any], Awaitable[Any]], **evolve: Any,
) -> None:
    """Bring an existing stream or consumer in line with the fields the
    contract sets: refuse what NATS cannot change, update the rest, log it."""
    diffs = differences(current, wanted, fields)
    if not diffs:
        return
    unchangeable = _fixed(diffs, fixed)
    if unchangeable:
        raise ConfigMismatch(what, unchangeable, remedy)
    try:
        await update(current.evolve(**evolve, **{f: getattr(wanted, f) for f in fields}))
    except APIError as e:
        raise ConfigMismatch(what, diffs, f"NATS refused the update: {e.description}") from None
    log.warning("%s updated to the contract: %s", what, "; ".join(diffs))


async def ensure_stream(js: JetStreamContext, config: api.StreamConfig) -> None:
    """Create the stream, or bring the fields the contract sets in line."""
    name = config.name
    assert name is not None
    try:
        info = await js.stream_info(name)
    except NotFoundError:
        await js.add_stream(config)
        return
    await _reconcile(f"stream {name}", info.config, config, _STREAM_FIELDS, _STREAM_FIXED,
                     "NATS cannot change this on an existing stream; migrate or delete it", js.update_stream)


async def ensure_consumer(js: JetStreamContext, stream: str, config: api.ConsumerConfig) -> None:
    """Create the durable consumer, or bring the fields the contract sets in line."""
    durable = config.durable_name
    assert durable is not None
    try:
        info = await js.consumer_info(stream, durable)
    except NotFoundError:
        await js.add_consumer(stream, config)
        return

    async def update(merged: api.ConsumerConfig) -> None:
        await js.add_consumer(stream, merged)

    # Without `name`, nats-py uses the durable create call, which updates in place.
    await _reconcile(f"consumer {durable} of stream {stream}", info.config, config, _CONSUMER_FIELDS,
                     _CONSUMER_FIXED, "NATS cannot change this on an existing consumer; delete the consumer",
                     update, name=None, metadata=None)


async def detect(js: JetStreamContext) -> bool:
    """True if JetStream answers, False if it answers that it is not enabled;
    any other failure (a timeout, a permissions error, an unavailable
    cluster) is raised: it says nothing about whether JetStream is on."""
    try:
        await js.account_info()
    except ServiceUnavailableError as e:
        # No responder at all (err_code None) means a server without -js.
        if e.err_code is None or e.err_code in _NOT_ENABLED:
            return False
        raise
    except APIError as e:
        if e.err_code in _NOT_ENABLED:
            return False
        raise
    return True


class JetStream:
    """The JetStream side of one connection: its state, checked lazily and
    truthfully, and everything provisioned through it."""

    def __init__(self, nc: Client, prefix: str, timeout: float, last_server_error: Callable[[], str]) -> None:
        self.js = nc.jetstream(timeout=timeout)
        self.prefix = prefix
        self.timeout = timeout
        # None: not known yet, or the last check failed for another reason.
        self.enabled: bool | None = None
        self._last_server_error = last_server_error
        self._ready: set[str] = set()
        self.workers: list[PullWorker] = []

    def _cause(self, e: BaseException) -> str:
        if isinstance(e, (nats.errors.TimeoutError, asyncio.TimeoutError)):
            cause = f"the JetStream API did not answer within {self.timeout:g} s"
        elif isinstance(e, APIError):
            cause = f"the JetStream API answered {e.code} (err_code {e.err_code}): {e.description}"
        else:
            cause = f"{type(e).__name__}: {e}"
        server = self._last_server_error()
        return f"{cause}; the server last reported: {server}" if server else cause

    async def check(self) -> None:
        """At connect: find out, but never fail the connection over it
        (JetStream is needed only once a durable subject is used)."""
        try:
            self.enabled = await detect(self.js)
        except (nats.errors.Error, asyncio.TimeoutError) as e:
            self.enabled = None
            log.warning("could not check JetStream (checked again at first durable use): %s", self._cause(e))

    async def require(self, subject: str) -> JetStreamContext:
        if self.enabled:
            return self.js
        try:
            self.enabled = await detect(self.js)
        except (nats.errors.Error, asyncio.TimeoutError) as e:
            raise JetStreamError(subject, self._cause(e)) from None
        if not self.enabled:
            raise JetStreamUnavailable(
                subject, "JetStream is not enabled on the NATS server or for this account (run the server with -js)"
            )
        return self.js

    async def ensure(self, subject: str, config: api.StreamConfig) -> JetStreamContext:
        """The stream of `config`, provisioned once per bus."""
        js = await self.require(subject)
        name = config.name
        assert name is not None
        if name not in self._ready:
            await ensure_stream(js, config)
            self._ready.add(name)
        return js

    async def publish(self, subject: str, data: bytes, headers: dict[str, str], timeout: float) -> None:
        try:
            await self.js.publish(subject, data, timeout=timeout, headers=headers)
        except nats.errors.TimeoutError:
            raise RequestTimeout(subject, timeout) from None
        except (nats.errors.NoRespondersError, NoStreamResponseError):
            # The stream is gone, or JetStream went away since it was checked
            # (or, across accounts, no stream of this subject was imported).
            self.enabled = None
            self._ready.clear()
            raise JetStreamError(subject, "no JetStream stream answered the publish") from None

    async def consume(
        self, spec: SubjectSpec[Any, Any], d: Durability, ep: Endpoint, durable: str, max_ack_pending: int
    ) -> PullWorker:
        config = stream_config(self.prefix, spec, d)
        js = await self.ensure(ep.subject, config)
        await self.ensure(ep.subject, dlq_config(self.prefix))
        stream = config.name
        assert stream is not None
        await ensure_consumer(js, stream, consumer_config(d, durable, ep.subject, max_ack_pending))
        psub = await js.pull_subscribe_bind(durable=durable, stream=stream)
        ack_wait = consumer_config(d, durable, ep.subject, max_ack_pending).ack_wait
        assert ack_wait is not None
        worker = PullWorker(psub, ep, ack_wait)
        worker.start()
        self.workers.append(worker)
        return worker

    async def stop_workers(self) -> None:
        await asyncio.gather(*(w.stop() for w in self.workers))
        self.workers.clear()


class PullWorker:
    """Fetches from one durable consumer. One message never ends the loop;
    a loop that ends anyway is logged and restarted; drain stops it between
    batches."""

    def __init__(self, psub: JetStreamContext.PullSubscription, endpoint: Endpoint, ack_wait: float = 30.0) -> None:
        self.psub = psub
        self.endpoint = endpoint
        self.batch = max(1, min(endpoint.concurrency, 256))
        self.fetching = False
        self.stopping = False
        self.restarts = 0
        self.task: asyncio.Task[None] | None = None
        self.progress_every = ack_wait * PROGRESS_FRACTION
        # The messages whose handlers run, and when each was last marked, by
        # id (a Msg is an unhashable dataclass).
        self._running: dict[int, tuple[Msg, float]] = {}
        self._ticker: asyncio.Task[None] | None = None
        # in_progress() sent, and failed (the next tick tries again).
        self.progress_sent = 0
        self.progress_failed = 0

    def start(self) -> None:
        self.task = asyncio.create_task(self._supervise(), name=f"pull {self.endpoint.subject}")
        self._ticker = asyncio.create_task(self._keep_alive(), name=f"progress {self.endpoint.subject}")

    async def _keep_alive(self) -> None:
        """One task per consumer, not one per message: every tick, each
        message handled for longer than a tick is marked in progress."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.progress_every)
            now = loop.time()
            for key, (msg, since) in list(self._running.items()):
                if now - since < self.progress_every or key not in self._running:
                    continue
                try:
                    await msg.in_progress()
                except Exception as e:  # noqa: BLE001 - the message is redelivered after the ack wait at worst
                    self.progress_failed += 1
                    log.warning("marking a message of %s in progress failed: %s", msg.subject, e)
                    continue
                self.progress_sent += 1
                if key in self._running:
                    self._running[key] = (msg, now)

    async def _handle(self, msg: Msg) -> None:
        self._running[id(msg)] = (msg, asyncio.get_running_loop().time())
        try:
            await self.endpoint.on_js_msg(msg)
        finally:
            del self._running[id(msg)]

    async def _supervise(self) -> None:
        while not self.stopping:
            try:
                await self._run()
                return
            except Exception:  # noqa: BLE001 - consumption must outlive any one fault
                self.restarts += 1
                log.exception("consumer of %s stopped on an error; restarting it", self.endpoint.subject)
                await asyncio.sleep(RESTART_DELAY)

    def _failed(self, msg: Msg, exc: BaseException) -> None:
        """Processing a message raised outside its handler (an ack into a full
        buffer, say): unacked, the server redelivers it after the ack wait."""
        ep = self.endpoint
        ep.stats.internal_errors += 1
        ep.stats.last_error = f"{type(exc).__name__}: {exc}"
        log.error("message on %s not settled (%s); it is redelivered after the ack wait",
                  msg.subject, ep.stats.last_error)

    async def _run(self) -> None:
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
                    try:
                        await self._handle(m)
                    except Exception as e:  # noqa: BLE001 - one message never ends the loop
                        self._failed(m, e)
            else:
                results = await asyncio.gather(*(self._handle(m) for m in msgs), return_exceptions=True)
                for m, result in zip(msgs, results):
                    if result is not None:
                        self._failed(m, result)

    async def stop(self) -> None:
        """Let the batch in hand finish (acked work is never lost); an
        unanswered fetch is cancelled, its messages are redelivered. The
        caller bounds the wait (Bus.close's deadline)."""
        task = self.task
        if task is None:
            return
        self.stopping = True
        while not task.done() and not self.fetching:
            await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.wait({task})
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.wait({self._ticker})
        try:
            await self.psub.unsubscribe()
        except nats.errors.Error as e:
            log.warning("unsubscribing the consumer of %s: %s", self.endpoint.subject, e)


class DeadLetters:
    """Moves what cannot be processed to {prefix}.dlq.<subject> (kept in the
    DLQ stream with JetStream on), and counts what actually happened."""

    def __init__(self, prefix: str, source: str, publish: Callable[[str, bytes], Awaitable[None]],
                 timeout: float) -> None:
        self.prefix = prefix
        self.source = source
        self.publish = publish
        self.timeout = timeout
        self.jetstream: JetStream | None = None
        self.stored = 0
        self.failed = 0

    async def send(self, subject: str, data: bytes, code: int, reason: str, attempts: int, consumer: str) -> bool:
        """True once the letter is stored (or, without JetStream, published);
        False, logged and counted, if it could not be. Never raises."""
        letter = envelope_pb2.DeadLetter(
            subject=subject, code=code, reason=reason, attempts=attempts, data=data, consumer=consumer  # type: ignore[arg-type]
        )
        letter.time.GetCurrentTime()
        tenant = subject.rpartition(".")[2]
        body = codec.envelope(codec.DEAD_LETTER_TYPE, "1.0", tenant, self.source, letter.SerializeToString())
        target = dlq_subject(self.prefix, subject)
        try:
            jets = self.jetstream
            if jets is not None and jets.enabled is not False:
                js = await jets.ensure(target, dlq_config(self.prefix))
                await js.publish(target, body.SerializeToString(), timeout=self.timeout)
            else:
                await self.publish(target, body.SerializeToString())
        except Exception as e:  # noqa: BLE001 - losing the letter is logged and counted, the subscriber lives on
            self.failed += 1
            log.error("could not dead-letter a message from %s (%s): %s", subject, reason, e)
            return False
        self.stored += 1
        return True
