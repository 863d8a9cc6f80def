"""Documents larger than one NATS message travel through a JetStream object
store: the sender puts the bytes under the tenant's name and publishes a
RagDocument that carries only an ObjectRef; the worker reads the object,
checks its digest and size, and deletes it once the document is indexed.

Objects are named `{tenant}/{document id}/{sha256}`, and the worker reads
only names under the tenant of the message, so no tenant can make the
worker read another's upload. The bucket keeps an object for
RETENTION_S at most: a document whose ingest failed can be replayed from
its dead letter within that time.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ai.rag.v1 import rag_pb2
from nats.js.api import ObjectStoreConfig
from nats.js.errors import BucketNotFoundError, NotFoundError, ObjectNotFoundError

BUCKET = "aisdk_rag_documents"
RETENTION_S = 7 * 24 * 3600.0
# Room for the envelope and the RagDocument's other fields in one message.
ENVELOPE_ROOM = 64 * 1024


class ObjectError(ValueError):
    """An object reference the worker cannot use; the message says why."""


async def _store(js: Any) -> Any:
    try:
        return await js.object_store(BUCKET)
    except (BucketNotFoundError, NotFoundError):
        return await js.create_object_store(BUCKET, config=ObjectStoreConfig(
            description="documents too large for one rag.ingest message", ttl=RETENTION_S))


def too_large(size: int, max_payload: int) -> bool:
    """Whether bytes of this size would not fit one message."""
    return size + ENVELOPE_ROOM > max_payload


async def put(js: Any, tenant: str, document_id: str, data: bytes) -> rag_pb2.ObjectRef:
    digest = hashlib.sha256(data).hexdigest()
    name = f"{tenant}/{document_id}/{digest}"
    store = await _store(js)
    await store.put(name, data)
    return rag_pb2.ObjectRef(bucket=BUCKET, name=name, sha256=digest, size=len(data))


async def take(js: Any, tenant: str, ref: rag_pb2.ObjectRef) -> bytes:
    """The referenced bytes, checked; ObjectError when they are not there or
    not what the reference says."""
    if ref.bucket != BUCKET or not ref.name.startswith(f"{tenant}/"):
        raise ObjectError(f"content_ref {ref.bucket}/{ref.name} is not an object of tenant {tenant}")
    try:
        got = await (await _store(js)).get(ref.name)
    except (ObjectNotFoundError, NotFoundError, BucketNotFoundError):
        raise ObjectError(f"content_ref {ref.name}: no such object (expired after {RETENTION_S / 86400:.0f} days, "
                          "or deleted once indexed)") from None
    data = bytes(got.data or b"")
    if len(data) != ref.size or hashlib.sha256(data).hexdigest() != ref.sha256:
        raise ObjectError(f"content_ref {ref.name}: {len(data)} bytes whose digest is not the reference's")
    return data


async def delete(js: Any, ref: rag_pb2.ObjectRef) -> None:
    try:
        await (await _store(js)).delete(ref.name)
    except (ObjectNotFoundError, NotFoundError):
        pass  # a redelivery that indexed it already
