"""JetStream provisioning from the registry: one stream per durable subject
(all tenants), durable pull consumers per queue group or subscriber, and the
dead-letter stream."""

from __future__ import annotations

import logging
import re
from typing import Any

from nats.js import JetStreamContext, api
from nats.js.errors import BadRequestError

from runtime.contract import Durability, SubjectSpec

log = logging.getLogger("aisdk.jetstream")
DLQ_TOKEN = "dlq"
DLQ_MAX_AGE_S = 7 * 24 * 3600
_RETENTION = {
    "limits": api.RetentionPolicy.LIMITS,
    "interest": api.RetentionPolicy.INTEREST,
    "work_queue": api.RetentionPolicy.WORK_QUEUE,
}
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def stream_name(prefix: str, spec: SubjectSpec[Any, Any]) -> str:
    """E.g. AI_AGENT_TASKS for ai.agent.tasks.*"""
    return _UNSAFE.sub("_", f"{prefix}_{spec.component}_{spec.operation}").replace("-", "_").upper()


def consumer_name(name: str) -> str:
    """A durable name from a queue group or subscriber name ("agent.workers" -> "agent_workers")."""
    return _UNSAFE.sub("_", name)


def dlq_subject(prefix: str, subject: str) -> str:
    """ai.agent.tasks.acme -> ai.dlq.agent.tasks.acme"""
    return f"{prefix}.{DLQ_TOKEN}.{subject[len(prefix) + 1:]}"


async def _create_or_update(js: JetStreamContext, config: api.StreamConfig) -> None:
    try:
        await js.add_stream(config)
    except BadRequestError:
        # Exists with another configuration: bring it in line with the registry.
        await js.update_stream(config)


async def ensure_stream(js: JetStreamContext, prefix: str, spec: SubjectSpec[Any, Any], d: Durability) -> str:
    name = stream_name(prefix, spec)
    await _create_or_update(
        js,
        api.StreamConfig(
            name=name,
            subjects=[spec.wildcard(prefix)],
            retention=_RETENTION[d.retention],
            storage=api.StorageType.FILE,
            duplicate_window=d.duplicate_window_ms / 1000 if d.duplicate_window_ms else 120.0,
            max_age=float(d.max_age_s) if d.max_age_s else None,
        ),
    )
    return name


async def ensure_dlq_stream(js: JetStreamContext, prefix: str) -> None:
    await _create_or_update(
        js,
        api.StreamConfig(
            name=_UNSAFE.sub("_", f"{prefix}_{DLQ_TOKEN}").upper(),
            subjects=[f"{prefix}.{DLQ_TOKEN}.>"],
            retention=api.RetentionPolicy.LIMITS,
            storage=api.StorageType.FILE,
            max_age=float(DLQ_MAX_AGE_S),
        ),
    )


async def pull_subscription(
    js: JetStreamContext,
    prefix: str,
    spec: SubjectSpec[Any, Any],
    d: Durability,
    durable: str,
    filter_subject: str,
    max_ack_pending: int,
) -> JetStreamContext.PullSubscription:
    stream = await ensure_stream(js, prefix, spec, d)
    config = api.ConsumerConfig(
        durable_name=durable,
        ack_policy=api.AckPolicy.EXPLICIT,
        ack_wait=d.ack_wait_ms / 1000 if d.ack_wait_ms else None,
        max_deliver=d.max_deliver,
        filter_subject=filter_subject,
        max_ack_pending=max_ack_pending,
    )
    try:
        await js.add_consumer(stream, config)
    except BadRequestError as e:
        log.warning("consumer %s on %s exists with another configuration, binding to it: %s", durable, stream, e)
    return await js.pull_subscribe_bind(durable=durable, stream=stream)
