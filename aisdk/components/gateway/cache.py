"""The response cache every gateway worker shares: a JetStream key-value bucket
(per-entry TTL, bounded size, oldest entries dropped first) with a small
in-process LRU in front of it.

Keys are `{tenant}.{model token}.{digest}` in the bucket, so a tenant or a
model is one subject filter, and invalidating either is one server-side purge.
The tenant is part of the digest too, so a key made for one tenant never
names another's entry.

Invalidation reaches every worker's LRU, including one that was disconnected
when it was sent: whoever invalidates purges the bucket, then writes what it
dropped to the bucket's `{tenant}.invalidated` entry; every worker watches
those entries (a JetStream ordered consumer) and drops the same entries from
its LRU. A worker uses its LRU only while that watch is known to be current:
after a disconnection it empties its LRU and starts a new watch, and until
then it reads the bucket, which the invalidation has already purged.

Which requests use the cache is the caller's choice (CacheControl), and by
default only deterministic ones do: see `chat_policy`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import os
import re
import struct
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from ai.gateway.v1 import gateway_pb2
from aisdk.components.environment import number, whole
from aisdk.components.gateway.kv import Bucket, Connected, check_tenant, jetstream, open_bucket, token

log = logging.getLogger("aisdk.gateway.cache")

DEFAULT_BUCKET = "gateway_cache"
DEFAULT_TTL_S = 3600.0
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_LRU_SIZE = 1024

# The value stored is the expiry time (epoch seconds) followed by the response,
# so a copy in any worker's LRU expires when the shared entry does.
_EXPIRY = struct.Struct(">d")
_KEY_RE = re.compile(r"[0-9a-f]{16}\.[0-9a-f]{32}")
# The last invalidation of a tenant, watched by every worker.
INVALIDATED = "invalidated"


class InvalidCacheKey(ValueError):
    """A cache key that cache_key/embedding_key did not make (e.g. from an event)."""


class InvalidCacheControl(ValueError):
    """A CacheControl that cannot be followed (e.g. a TTL under a second)."""


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """What one request does with the cache."""

    read: bool
    write: bool
    # Write over an entry already there (CACHE_MODE_REFRESH).
    replace: bool = False
    # The entry's TTL; None: the cache's.
    ttl_s: float | None = None


def _policy(control: gateway_pb2.CacheControl, deterministic: bool) -> CachePolicy:
    ttl: float | None = None
    if control.HasField("ttl"):
        ttl = control.ttl.ToNanoseconds() / 1e9
        if ttl < 1:
            raise InvalidCacheControl(f"cache.ttl must be at least 1 s (entries live whole seconds), not {ttl:g} s")
    mode = control.mode
    if mode == gateway_pb2.CACHE_MODE_BYPASS:
        return CachePolicy(read=False, write=False)
    if mode == gateway_pb2.CACHE_MODE_REFRESH:
        return CachePolicy(read=False, write=True, replace=True, ttl_s=ttl)
    use = deterministic or mode == gateway_pb2.CACHE_MODE_USE
    return CachePolicy(read=use, write=use, ttl_s=ttl)


def chat_policy(request: gateway_pb2.LlmRequest) -> CachePolicy:
    """By default a completion is cached only when it is deterministic
    (temperature 0, or a seed): an answer sampled at temperature > 0 is one
    of many, and serving it again would hide that. CacheControl overrides:
    USE caches anyway, BYPASS neither reads nor writes, REFRESH writes a new
    answer over the old one; a TTL shortens the entry's life."""
    p = request.parameters
    deterministic = (p.HasField("temperature") and p.temperature == 0) or p.HasField("seed")
    return _policy(request.cache, deterministic)


def embedding_policy(request: gateway_pb2.EmbeddingRequest) -> CachePolicy:
    """Embeddings are deterministic: cached unless the request says otherwise."""
    return _policy(request.cache, True)


def _canonical(value: Any) -> Any:
    """Plain JSON data for protobuf messages, mappings and sequences, so equal
    requests hash equally in every process whatever their field order. A
    message is its type and its deterministic encoding (maps in key order):
    MessageToDict took a quarter of a cache hit's time in the gateway."""
    # Plain data first: checking an ABC (Mapping) costs more than the rest.
    if type(value) in _PLAIN or value is None:
        return value
    if isinstance(value, Message):
        return f"{value.DESCRIPTOR.full_name}:{value.SerializeToString(deterministic=True).hex()}"
    if type(value) is dict or isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


_PLAIN = frozenset({str, int, float, bool})


def _key(kind: str, tenant: str, model: str, *parts: Any) -> str:
    data = json.dumps([kind, tenant, model, *(_canonical(p) for p in parts)], sort_keys=True,
                      separators=(",", ":"), ensure_ascii=False, default=str)
    return f"{token(model)}.{_digest(data)}"


def _digest(data: str) -> str:
    return hashlib.sha256(data.encode()).hexdigest()[:32]


def cache_key(tenant: str, model: str, messages: Any, parameters: Any) -> str:
    """The key of a completion: the same (tenant, model, messages, parameters)
    gives the same key in every process. messages and parameters may be
    protobuf messages, mappings or sequences of them."""
    return _key("chat", tenant, model, messages, parameters)


def embedding_key(tenant: str, model: str, text: str) -> str:
    """The key of one text's embedding (embeddings are cached per text)."""
    return _key("embedding", tenant, model, text)


def _check_key(key: str) -> str:
    if _KEY_RE.fullmatch(key) is None:
        raise InvalidCacheKey(f"{key!r} is not a cache key (expected 16 hex digits, '.', 32 hex digits)")
    return key


@dataclass(frozen=True)
class CacheConfig:
    """The cache's settings, from AISDK_GATEWAY_CACHE_* environment variables."""

    bucket: str = DEFAULT_BUCKET
    ttl_s: float = DEFAULT_TTL_S
    max_bytes: int = DEFAULT_MAX_BYTES
    lru_size: int = DEFAULT_LRU_SIZE

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> CacheConfig:
        return cls(
            bucket=environ.get("AISDK_GATEWAY_CACHE_BUCKET", "").strip() or DEFAULT_BUCKET,
            ttl_s=number(environ, "AISDK_GATEWAY_CACHE_TTL_S", DEFAULT_TTL_S),
            max_bytes=whole(environ, "AISDK_GATEWAY_CACHE_MAX_BYTES", DEFAULT_MAX_BYTES),
            lru_size=whole(environ, "AISDK_GATEWAY_CACHE_LRU_SIZE", DEFAULT_LRU_SIZE),
        )


@dataclass
class CacheStats:
    """Counts of this worker's lookups, by where they were answered."""

    lru_hits: int = 0
    kv_hits: int = 0
    misses: int = 0
    errors: int = 0


class ResponseCache:
    """Use `await ResponseCache.open(bus)`; values are opaque bytes (a
    serialized reply)."""

    def __init__(self, bucket: Bucket, js: JetStreamContext, *, ttl_s: float, lru_size: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.bucket = bucket
        self.js = js
        self.ttl_s = ttl_s
        self.lru_size = max(0, lru_size)
        self.clock = clock
        self.stats = CacheStats()
        # (tenant, key) -> (expiry in epoch seconds, value); most recently used last.
        self._lru: OrderedDict[tuple[str, str], tuple[float, bytes]] = OrderedDict()
        self._nc: Client = js._nc
        # The connection's reconnect count when the current watch started;
        # None: no watch is known to be current, so the LRU is not used.
        self._watching: int | None = None
        self._watch_task: asyncio.Task[None] | None = None
        # Per tenant, how many invalidations this worker has applied: a
        # bucket read that overlaps one is not kept in the LRU.
        self._generation: dict[str, int] = {}

    @classmethod
    async def open(
        cls,
        js_or_bus: JetStreamContext | Connected,
        *,
        bucket: str = DEFAULT_BUCKET,
        ttl_s: float = DEFAULT_TTL_S,
        max_bytes: int = DEFAULT_MAX_BYTES,
        lru_size: int = DEFAULT_LRU_SIZE,
    ) -> ResponseCache:
        """Open (or create) the shared bucket. ttl_s is the default and the
        longest life of an entry; max_bytes bounds the bucket, which then
        drops its oldest entries; lru_size entries are kept in this process."""
        if ttl_s < 1:
            raise ValueError(f"cache TTL must be at least 1 s (per-entry TTLs are whole seconds), not {ttl_s}")
        js = jetstream(js_or_bus)
        b = await open_bucket(js, bucket, max_age_s=ttl_s, max_bytes=max_bytes, discard_old=True,
                              description="gateway response cache")
        cache = cls(b, js, ttl_s=ttl_s, lru_size=lru_size)
        if cache.lru_size:
            await cache._watch()
        return cache

    # -- keeping every worker's LRU in line ---------------------------------

    async def _watch(self) -> None:
        """Start a watch of every tenant's invalidations; the LRU is usable
        once it runs, for as long as the connection is not lost."""
        reconnects = self._nc.stats["reconnects"]
        watcher = await self.bucket.kv.watch(f"*.{INVALIDATED}")
        self._lru.clear()
        self._watch_task = asyncio.get_running_loop().create_task(self._follow(watcher), name="gateway-cache-watch")
        self._watching = reconnects

    async def _follow(self, watcher: KeyValue.KeyWatcher) -> None:
        try:
            async for entry in watcher:
                if entry is None or not entry.value:
                    continue  # the end of the replay, or a purged record
                tenant = entry.key.split(".", 1)[0]
                try:
                    record = json.loads(entry.value)
                    self._drop_local(tenant, record.get("keys", ()), record.get("model", ""), bool(record.get("all")))
                except (ValueError, TypeError, AttributeError) as e:
                    log.warning("unreadable invalidation of %s, dropping its LRU entries: %s", tenant, e)
                    self._drop_local(tenant, (), "", True)
        finally:
            try:
                await watcher.stop()  # type: ignore[no-untyped-call]
            except NatsError:
                pass  # the connection is gone, and the watch with it

    def _lru_current(self) -> bool:
        """True while the LRU can be trusted. A connection lost since the
        watch started may have missed invalidations: the LRU is emptied and a
        new watch started, and until it runs the bucket answers."""
        if self.lru_size == 0:
            return False
        if self._nc.is_connected and self._watching == self._nc.stats["reconnects"]:
            return True
        if self._watching is not None:
            self._watching = None
            self._lru.clear()
            if self._watch_task is not None:
                self._watch_task.cancel()
            asyncio.get_running_loop().create_task(self._rewatch(), name="gateway-cache-rewatch")
        return False

    async def _rewatch(self) -> None:
        while self._watching is None:
            try:
                if self._nc.is_connected:
                    await self._watch()
                    return
            except (NatsError, TimeoutError) as e:
                log.warning("cache invalidation watch not restarted yet: %s", e)
            await asyncio.sleep(0.2)

    async def close(self) -> None:
        if self._watch_task is not None:
            self._watch_task.cancel()
            self._watch_task = None
        self._watching = None

    def _drop_local(self, tenant: str, keys: Iterable[str], model: str, all: bool) -> set[str]:
        """Drop the matching entries of this worker's LRU; returns their keys."""
        self._generation[tenant] = self._generation.get(tenant, 0) + 1
        wanted = set(keys)
        model_prefix = f"{model}." if model else ""

        def matches(key: str) -> bool:
            return all or key in wanted or bool(model_prefix and key.startswith(model_prefix))

        dropped = {k for (t, k) in self._lru if t == tenant and matches(k)}
        for k in dropped:
            del self._lru[(tenant, k)]
        return dropped

    def _remember(self, tenant: str, key: str, expires: float, value: bytes) -> None:
        if not self._lru_current():
            return
        self._lru[(tenant, key)] = (expires, value)
        self._lru.move_to_end((tenant, key))
        while len(self._lru) > self.lru_size:
            self._lru.popitem(last=False)

    async def get(self, tenant: str, key: str) -> bytes | None:
        """The cached value, or None. A bucket that cannot be reached is a miss
        (logged and counted): the caller then asks the provider."""
        check_tenant(tenant)
        _check_key(key)
        now = self.clock()
        local = self._lru.get((tenant, key)) if self._lru_current() else None
        if local is not None:
            if local[0] > now:
                self._lru.move_to_end((tenant, key))
                self.stats.lru_hits += 1
                return local[1]
            del self._lru[(tenant, key)]
        generation = self._generation.get(tenant, 0)
        try:
            entry = await self.bucket.kv.get(f"{tenant}.{key}")
        except KeyNotFoundError:
            self.stats.misses += 1
            return None
        except (NatsError, TimeoutError) as e:
            log.warning("cache read failed, treated as a miss: %s", e)
            self.stats.errors += 1
            self.stats.misses += 1
            return None
        data = entry.value or b""
        if len(data) < _EXPIRY.size or _EXPIRY.unpack_from(data)[0] <= now:
            # Expired but not yet removed by the server (its TTL timer is coarse).
            self.stats.misses += 1
            return None
        expires = _EXPIRY.unpack_from(data)[0]
        value = data[_EXPIRY.size:]
        if self._generation.get(tenant, 0) == generation:
            # Otherwise an invalidation came in while the entry was read: it may be its target.
            self._remember(tenant, key, expires, value)
        self.stats.kv_hits += 1
        return value

    async def get_many(self, tenant: str, keys: Sequence[str]) -> list[bytes | None]:
        """get() of many keys at once: the bucket reads run concurrently, so a
        batch costs about one round trip instead of one per key."""
        if len(keys) == 1:  # a completion: no task to gather
            return [await self.get(tenant, keys[0])]
        return list(await asyncio.gather(*(self.get(tenant, k) for k in keys)))

    async def put(self, tenant: str, key: str, value: bytes, model: str, *, ttl_s: float | None = None,
                  replace: bool = False) -> bool:
        """Store value for every worker; True if stored. An entry already there
        (another worker answered the same request) is kept, unless `replace`
        (a refresh). ttl_s may shorten the cache's TTL for this entry. A
        bucket that cannot be written is logged and counted, and the
        caller's reply goes on."""
        check_tenant(tenant)
        _check_key(key)
        if not key.startswith(f"{token(model)}."):
            raise InvalidCacheKey(f"key {key!r} was not made for model {model!r}")
        ttl = self.ttl_s if ttl_s is None else min(ttl_s, self.ttl_s)
        if ttl < 1:
            raise ValueError(f"an entry's TTL must be at least 1 s, not {ttl}")
        # Nats-TTL takes whole seconds.
        whole = math.ceil(ttl)
        expires = self.clock() + whole
        self._remember(tenant, key, expires, value)
        try:
            if replace:
                # A plain publish to the key's subject: KeyValue.put takes no per-entry TTL.
                await self.js.publish(self.bucket.subject(f"{tenant}.{key}"), _EXPIRY.pack(expires) + value,
                                      msg_ttl=whole)
            else:
                await self.bucket.kv.create(f"{tenant}.{key}", _EXPIRY.pack(expires) + value, msg_ttl=whole)
        except KeyWrongLastSequenceError:
            return False
        except (NatsError, TimeoutError) as e:
            log.warning("cache write failed (%d bytes): %s", len(value), e)
            self.stats.errors += 1
            return False
        return True

    async def invalidate(self, tenant: str, keys: Iterable[str] = (), model: str = "", all: bool = False) -> int:
        """Drop the tenant's entries: these keys, every entry of a model, or all
        of them. Returns how many entries were dropped from the bucket or from
        this worker's LRU. Every key is checked before anything is dropped."""
        check_tenant(tenant)
        wanted = {_check_key(k) for k in keys}
        if not (wanted or model or all):
            raise ValueError("nothing to invalidate: give cache keys, a model or all")
        model_prefix = f"{token(model)}." if model else ""
        dropped = self._drop_local(tenant, wanted, token(model) if model else "", all)

        if all:
            filters = [f"{tenant}.>"]
        else:
            filters = [f"{tenant}.{model_prefix}>"] if model else []
            filters += [f"{tenant}.{k}" for k in sorted(wanted) if not (model and k.startswith(model_prefix))]
        for f in dict.fromkeys(filters):
            subject = self.bucket.subject(f)
            info = await self.js.stream_info(self.bucket.stream, subjects_filter=subject)
            present = [k for s in (info.state.subjects or {})
                       if (k := s[len(self.bucket.prefix) + len(tenant) + 1:]) != INVALIDATED]
            if present:
                await self.js.purge_stream(self.bucket.stream, subject=subject)
                dropped.update(present)
        # After the purge, so a worker that drops its LRU entries then reads
        # the bucket finds them gone. Every invalidation is written, even one
        # that found nothing here: other workers' LRUs may still hold entries.
        record = {"keys": sorted(wanted), "model": token(model) if model else "", "all": all}
        await self.bucket.kv.put(f"{tenant}.{INVALIDATED}", json.dumps(record).encode())
        return len(dropped)

    async def apply(self, tenant: str, event: gateway_pb2.CacheInvalidation) -> int:
        """invalidate() for a gateway.cache.invalidate event."""
        return await self.invalidate(tenant, keys=event.cache_keys, model=event.model, all=event.all)
