"""JetStream key-value buckets shared by every gateway worker: opened by name,
created on first use, and kept in line with the configuration each worker
starts with."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
from typing import Protocol

from nats.aio.client import Client
from nats.js import JetStreamContext, api
from nats.js.errors import BadRequestError, BucketNotFoundError
from nats.js.kv import KeyValue

_BUCKET_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
# A tenant id is one key token: '.', '*' and '>' would let one tenant's key or
# filter reach another's entries.
_TENANT_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")


class Connected(Protocol):
    """What is needed of a connected runtime Bus."""

    @property
    def nc(self) -> Client: ...


def jetstream(js_or_bus: JetStreamContext | Connected) -> JetStreamContext:
    """The JetStream context of a connected Bus, or the context itself."""
    if isinstance(js_or_bus, JetStreamContext):
        return js_or_bus
    return js_or_bus.nc.jetstream()


def check_tenant(tenant: str) -> str:
    if _TENANT_RE.fullmatch(tenant) is None:
        raise ValueError(f"tenant id {tenant!r} must be 1-128 letters, digits, '_' or '-'")
    return tenant


@functools.lru_cache(maxsize=1024)
def token(text: str) -> str:
    """One key token standing for any text (model names contain '.' and '/',
    which would split or widen a key filter)."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class Bucket:
    """A bucket, its stream and the subject prefix of its keys."""

    kv: KeyValue
    stream: str
    prefix: str

    def subject(self, key: str) -> str:
        return f"{self.prefix}{key}"


async def open_bucket(
    js: JetStreamContext,
    name: str,
    *,
    max_age_s: float,
    max_bytes: int | None = None,
    discard_old: bool = False,
    description: str = "",
) -> Bucket:
    """Open bucket `name`, creating it if needed, with one value per key,
    direct gets and per-entry TTLs (Nats-TTL, nats-server 2.11+).

    Every worker calls this at start; whichever comes first creates the bucket,
    and all of them then bring its limits to the configured values, so a
    restart with a new configuration applies it."""
    if _BUCKET_RE.fullmatch(name) is None:
        raise ValueError(f"bucket name {name!r} must be 1-64 letters, digits, '_' or '-'")
    if max_age_s <= 0:
        raise ValueError(f"bucket {name!r}: the maximum age must be positive, not {max_age_s}")
    if max_bytes is not None and max_bytes <= 0:
        raise ValueError(f"bucket {name!r}: the maximum size must be positive, not {max_bytes}")
    try:
        kv = await js.key_value(name)
    except BucketNotFoundError:
        try:
            kv = await js.create_key_value(
                api.KeyValueConfig(bucket=name, description=description or None, history=1, ttl=max_age_s,
                                   max_bytes=max_bytes, direct=True, storage=api.StorageType.FILE)
            )
        except BadRequestError:
            # Another worker created it in the meantime, maybe already reconfigured.
            kv = await js.key_value(name)
    stream = f"KV_{name}"
    config = (await js.stream_info(stream)).config
    # nats-py creates buckets with discard=new: a full cache would then refuse
    # new entries instead of dropping the oldest.
    wanted = dataclasses.replace(
        config,
        max_age=max_age_s,
        max_bytes=max_bytes if max_bytes is not None else -1,
        discard=api.DiscardPolicy.OLD if discard_old else api.DiscardPolicy.NEW,
    )
    if (config.max_age, config.max_bytes, config.discard) != (wanted.max_age, wanted.max_bytes, wanted.discard):
        await js.update_stream(wanted)
    return Bucket(kv=kv, stream=stream, prefix=f"$KV.{name}.")
