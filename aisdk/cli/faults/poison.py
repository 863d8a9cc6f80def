"""Poison among good work on the durable RAG ingest queue: a document the
worker rejects, bytes that are not an envelope, and a document whose
transient failure never clears (no gateway to embed it). Each reaches the
dead-letter subject with its reason and attempt count; the good documents
are indexed once."""

from __future__ import annotations

from pathlib import Path

from ai.rag.v1 import rag_pb2
from aisdk.cli import letters
from aisdk.cli.faults.outcome import Outcome, Size, until
from aisdk.cli.faults.workloads import RagIngest, publish_acked, settle
from aisdk.components.storage import temporary_database
from runtime.bus import Bus
from runtime.server import EmbeddedServer
from runtime.settings import BusSettings

NAME = "poison"
MAX_DELIVER = 3


async def run(size: Size, workdir: Path) -> Outcome:
    work = RagIngest("chaos")
    out = Outcome(NAME, sent=size.messages + 3)
    durability = work.durability(max_deliver=MAX_DELIVER)
    rejected = rag_pb2.RagDocument(document_id=f"{work.run}-rejected")
    rejected.chunks.add(chunk_id="empty", content="   ")
    # No gateway answers embeddings here: each attempt fails, retryably.
    stranded = rag_pb2.RagDocument(document_id=f"{work.run}-stranded", content="Text to embed.",
                                   content_type="text/plain")
    with EmbeddedServer(name="chaos-poison") as server:
        async with temporary_database() as db, \
                Bus(server.url, BusSettings(name="chaos-worker", durability_overrides=durability)) as worker, \
                Bus(server.url, BusSettings(name="chaos-producer", durability_overrides=durability)) as producer:
            await worker.serve(work.handler(db))
            acked: set[str] = set()
            await publish_acked(producer, work, range(size.messages // 2), acked)
            await producer.publish(work.spec, rejected, work.tenant, {"message_id": rejected.document_id})
            js = producer.nc.jetstream()
            await js.publish(producer.subject(work.spec, work.tenant), b"\xff\x00 not an envelope",
                             headers={"Nats-Msg-Id": f"{work.run}-garbage"})
            await producer.publish(work.spec, stranded, work.tenant, {"message_id": stranded.document_id})
            await publish_acked(producer, work, range(size.messages // 2, size.messages), acked)

            found: list[letters.Letter] = []

            async def three() -> bool:
                found[:] = await letters.read(js, producer.prefix, operation="rag.ingest", tenant=work.tenant)
                return len(found) >= 3

            out.checks["three dead letters"] = await until(three)
            await settle(producer, work, db, acked, out)
            by_id = {(lt.original.id if lt.original else "garbage"): lt for lt in found}
            expect = {"rejected": (by_id.get(rejected.document_id), 1),
                      "garbage": (by_id.get("garbage"), 1),
                      "stranded": (by_id.get(stranded.document_id), MAX_DELIVER)}
            for what, (letter, attempts) in expect.items():
                ok = letter is not None and bool(letter.letter.reason) and letter.letter.attempts == attempts
                out.checks[f"{what}: dead-lettered with reason and {attempts} attempt(s)"] = ok
            out.detail["dead_letters"] = [lt.summary() for lt in found]
            poison_lost = sum(letter is None for letter, _ in expect.values())
            out.lost += poison_lost
            out.duplicates += max(0, len(found) - 3)
    out.sent = size.messages + 3
    out.processed += len(found) - max(0, len(found) - 3)
    return out
