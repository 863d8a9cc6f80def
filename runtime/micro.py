"""The NATS micro discovery protocol ($SRV.PING / $SRV.INFO / $SRV.STATS),
so `nats micro ls`-style tooling sees every served component, with its
endpoints and their proto types (the schemas micro itself dropped)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from runtime import codec

if TYPE_CHECKING:
    from runtime.bus import Bus
    from runtime.endpoint import Endpoint

VERBS = ("PING", "INFO", "STATS")


class MicroService:
    """Answers discovery requests for one served handler."""

    def __init__(self, bus: Bus, name: str, description: str, version: str, endpoints: Sequence[Endpoint]) -> None:
        self.bus = bus
        self.name = name
        self.id = codec.new_id()
        self.description = description
        self.version = version
        self.endpoints = list(endpoints)
        self.started = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
        self._subs: list[Subscription] = []

    def _base(self, kind: str) -> dict[str, Any]:
        return {
            "type": f"io.nats.micro.v1.{kind}_response",
            "name": self.name,
            "id": self.id,
            "version": self.version,
            "metadata": {"schema": "protobuf", "prefix": self.bus.prefix},
        }

    def _endpoint_info(self, ep: Endpoint) -> dict[str, Any]:
        spec = ep.spec
        return {
            "name": f"{spec.rpc}",
            "subject": ep.subject,
            "queue_group": ep.queue_group,
            "metadata": {
                "pattern": spec.pattern.value,
                "request_type": spec.request_name,
                "reply_type": spec.reply_name,
                "durable": str(spec.durable).lower(),
                "schema_version": spec.schema_version,
            },
        }

    def ping(self) -> dict[str, Any]:
        return self._base("ping")

    def info(self) -> dict[str, Any]:
        return {
            **self._base("info"),
            "description": self.description,
            "endpoints": [self._endpoint_info(ep) for ep in self.endpoints],
        }

    def stats(self) -> dict[str, Any]:
        rows = []
        for ep in self.endpoints:
            s = ep.stats
            done = s.handled + s.errors
            rows.append(
                {
                    "name": ep.spec.rpc,
                    "subject": ep.subject,
                    "queue_group": ep.queue_group,
                    "num_requests": s.received,
                    "num_errors": s.errors + s.invalid,
                    "last_error": s.last_error,
                    "processing_time": s.processing_ns,
                    "average_processing_time": s.processing_ns // done if done else 0,
                    "data": {"invalid": s.invalid, "expired": s.expired, "retried": s.retried,
                             "dead_lettered": s.dead_lettered, "dead_letter_failed": s.dead_letter_failed,
                             "internal_errors": s.internal_errors},
                }
            )
        return {**self._base("stats"), "started": self.started, "endpoints": rows, "now": time.time()}

    async def start(self) -> None:
        nc = self.bus.nc
        for verb in VERBS:
            handler = self._responder(verb)
            for subject in (f"$SRV.{verb}", f"$SRV.{verb}.{self.name}", f"$SRV.{verb}.{self.name}.{self.id}"):
                self._subs.append(await nc.subscribe(subject, cb=handler))

    def _responder(self, verb: str) -> Any:
        build = {"PING": self.ping, "INFO": self.info, "STATS": self.stats}[verb]

        async def respond(msg: Msg) -> None:
            if msg.reply:
                await self.bus.nc.publish(msg.reply, json.dumps(build()).encode())

        return respond

    async def stop(self) -> None:
        for sub in self._subs:
            await sub.unsubscribe()
        self._subs.clear()
