"""Dead letters as stored in the DLQ stream: read them by operation, tenant
and age, and re-drive one to the subject it came from.

A letter (ai.envelope.v1.DeadLetter, in an envelope of its own) keeps the
original message's bytes, so a replay sends the original envelope: its id,
tenant and trace context unchanged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError as ProtoDecodeError
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from ai.envelope.v1 import envelope_pb2
from runtime import codec
from runtime.jetstream import DLQ_TOKEN, dlq_config

Code = envelope_pb2.Error.Code


@dataclass(frozen=True, slots=True)
class Letter:
    seq: int
    letter: envelope_pb2.DeadLetter
    # The original message's envelope, or None if its bytes are not one.
    original: envelope_pb2.Envelope | None

    @property
    def subject(self) -> str:
        return self.letter.subject

    @property
    def tenant(self) -> str:
        return self.letter.subject.rpartition(".")[2]

    @property
    def age(self) -> float:
        t = self.letter.time
        return time.time() - (t.seconds + t.nanos / 1e9)

    def summary(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "seq": self.seq, "subject": self.subject, "tenant": self.tenant,
            "time": self.letter.time.ToJsonString(), "age_s": round(self.age, 3),
            "code": Code.Name(self.letter.code), "reason": self.letter.reason,
            "attempts": self.letter.attempts, "consumer": self.letter.consumer,
        }
        if self.original is not None:
            row.update(id=self.original.id, type=self.original.type, traceparent=self.original.traceparent)
        return row


def stream(prefix: str) -> str:
    name = dlq_config(prefix).name
    assert name is not None
    return name


def filter_subject(prefix: str, operation: str | None, tenant: str | None) -> str:
    """ai.dlq.rag.ingest.acme, with `*` or `>` for what is not given."""
    base = f"{prefix}.{DLQ_TOKEN}"
    if operation is None:
        return f"{base}.*.*.{tenant}" if tenant else f"{base}.>"
    return f"{base}.{operation}.{tenant or '*'}"


def decode(seq: int, data: bytes) -> Letter | None:
    """None for a message that is not a dead letter (nothing the runtime wrote)."""
    try:
        env = envelope_pb2.Envelope.FromString(data)
        if env.type != codec.DEAD_LETTER_TYPE:
            return None
        letter = envelope_pb2.DeadLetter.FromString(env.data)
    except ProtoDecodeError:
        return None
    try:
        original = envelope_pb2.Envelope.FromString(letter.data)
    except ProtoDecodeError:
        return Letter(seq, letter, None)
    return Letter(seq, letter, original if original.type else None)


async def read(
    js: JetStreamContext,
    prefix: str,
    *,
    operation: str | None = None,
    tenant: str | None = None,
    min_age: float | None = None,
    max_age: float | None = None,
    limit: int = 0,
) -> list[Letter]:
    """Letters oldest first, filtered; one stream lookup per letter, which
    the subject filter keeps to the letters asked for."""
    subject = filter_subject(prefix, operation, tenant)
    found: list[Letter] = []
    seq = 1
    while not limit or len(found) < limit:
        try:
            msg = await js.get_msg(stream(prefix), seq=seq, subject=subject, next=True)
        except NotFoundError:
            break
        assert msg.seq is not None
        seq = msg.seq + 1
        letter = decode(msg.seq, msg.data or b"")
        if letter is None:
            continue
        if min_age is not None and letter.age < min_age:
            continue
        if max_age is not None and letter.age > max_age:
            continue
        found.append(letter)
    return found


async def get(js: JetStreamContext, prefix: str, seq: int) -> Letter | None:
    try:
        msg = await js.get_msg(stream(prefix), seq=seq)
    except NotFoundError:
        return None
    return decode(seq, msg.data or b"")


async def replay(js: JetStreamContext, nc: Any, prefix: str, letter: Letter) -> None:
    """Send the original bytes to their subject, then delete the letter.

    On a durable subject the publish waits for the stream's ack. Its
    Nats-Msg-Id is the envelope id plus the letter's sequence: the envelope
    is the original (idempotent effects recognise it), while the stream's
    duplicate window, which has seen the original id, does not drop it.
    Deleted only after the publish is acknowledged: a failure in between
    leaves the letter, and a second replay is absorbed by idempotent effects.
    """
    data = letter.letter.data
    msg_id = f"{letter.original.id if letter.original else 'raw'}.replay.{letter.seq}"
    try:
        await js.find_stream_name_by_subject(letter.subject)
        durable = True
    except NotFoundError:
        durable = False
    if durable:
        await js.publish(letter.subject, data, headers={"Nats-Msg-Id": msg_id})
    else:
        await nc.publish(letter.subject, data)
        await nc.flush()
    await js.delete_msg(stream(prefix), letter.seq)
