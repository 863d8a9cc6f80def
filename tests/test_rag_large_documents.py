"""A document larger than one NATS message goes through a JetStream object
store: `aisdk ingest` of a 20 MB PDF on a server with the default 1 MB
max_payload is indexed, the object is deleted once indexed, and a reference
to another tenant's object or to bytes that are not what it says is refused."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from ai.rag.v1 import rag_bus, rag_pb2
from nats.js.errors import NotFoundError

from aisdk.components import COMPONENTS
from aisdk.components.rag import objects
from aisdk.components.rag.worker import RagWorker
from aisdk.components.storage import temporary_database
from runtime import Bus, EmbeddedServer
from runtime.settings import BusSettings
from tests.support import ROOT, checkout_env, until

SIZE = 20 * 1024 * 1024
TEXT = "Refunds for large orders are accepted within 45 days."


def big_pdf(path: Path, padding: int = SIZE) -> None:
    """A real PDF: one page with a line of text, and an unreferenced stream of
    incompressible bytes that makes the file `padding` bytes larger."""
    page = f"BT /F1 12 Tf 72 720 Td ({TEXT}) Tj ET".encode()
    bodies = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(page) + page + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    noise = os.urandom(padding)
    bodies.append(b"<< /Length %d >>\nstream\n" % len(noise) + noise + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(bodies, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(bodies) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(bodies) + 1, xref)
    path.write_bytes(bytes(out))


@pytest.fixture(scope="module")
async def deployment() -> AsyncIterator[tuple[str, Bus, RagWorker]]:
    # nats-server's default max_payload (1 MB): the PDF cannot be one message.
    with EmbeddedServer(name="aisdk-large-docs") as server:
        async with temporary_database() as url:
            async with Bus(server.url, BusSettings(name="large-docs")) as bus:
                await bus.serve(COMPONENTS["gateway"]())
                worker = RagWorker(database_url=url)
                await bus.serve(worker)
                yield server.url, bus, worker


async def test_aisdk_ingest_sends_a_20_mb_pdf_through_the_object_store(
    deployment: tuple[str, Bus, RagWorker], tmp_path: Path,
) -> None:
    url, bus, worker = deployment
    assert bus.nc.max_payload < SIZE
    pdf = tmp_path / "large-orders.pdf"
    big_pdf(pdf)
    assert pdf.stat().st_size > SIZE
    out = await asyncio.to_thread(subprocess.run, [
        sys.executable, "-m", "aisdk.cli", "ingest", str(pdf), "--tenant", "bigdocs", "--json", "--nats-url", url,
    ], cwd=tmp_path, env=checkout_env(ROOT), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["indexed"] == ["large-orders.pdf"]
    assert worker.store is not None
    [chunk] = [c for _, _, _, c in await worker.store.chunks("bigdocs")]
    assert TEXT in chunk
    # Indexed, so the object is gone.
    store = await bus.nc.jetstream().object_store(objects.BUCKET)
    digest = hashlib.sha256(pdf.read_bytes()).hexdigest()
    with pytest.raises(NotFoundError):
        await store.get(f"bigdocs/large-orders.pdf/{digest}")


async def test_a_reference_to_another_tenants_object_or_to_other_bytes_is_refused(
    deployment: tuple[str, Bus, RagWorker],
) -> None:
    _, bus, _ = deployment
    js = bus.nc.jetstream()
    ref = await objects.put(js, "victim", "secret.txt", b"The victim's own text.")
    failures: dict[str, str] = {}

    async def on_status(observed: object) -> None:
        status = observed.payload  # type: ignore[attr-defined]
        if status.state == rag_pb2.INGEST_STATE_FAILED:
            failures[status.document_id] = status.error

    await bus.subscribe(rag_bus.RAG_STATUS, on_status, tenant_id="thief")
    client = rag_bus.RagServiceClient(bus, "thief")
    await client.ingest(rag_pb2.RagDocument(document_id="stolen", content_ref=ref))
    forged = rag_pb2.ObjectRef()
    forged.CopyFrom(await objects.put(js, "thief", "mine.txt", b"Some text of my own."))
    forged.sha256 = "0" * 64
    await client.ingest(rag_pb2.RagDocument(document_id="forged", content_ref=forged))
    await until(lambda: {"stolen", "forged"} <= failures.keys(), timeout=30)
    assert "is not an object of tenant thief" in failures["stolen"]
    assert "digest is not the reference's" in failures["forged"]
    # The victim's object is untouched.
    assert await objects.take(js, "victim", ref) == b"The victim's own text."
