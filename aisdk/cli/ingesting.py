"""Documents from files into rag.ingest, followed on rag.status until each
one is indexed, unchanged or failed: `aisdk ingest` and the demo."""

from __future__ import annotations

import asyncio
import hashlib
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from aisdk.cli.errors import CommandError

if TYPE_CHECKING:
    from ai.rag.v1 import rag_pb2
    from runtime.bus import Bus, Observed

# What a directory contributes: the types the RAG worker parses. A file named
# on the command line is sent whatever its name, and the worker judges it.
EXTENSIONS = frozenset({".txt", ".text", ".md", ".markdown", ".html", ".htm", ".pdf"})
MAX_ID = 128


@dataclass(frozen=True, slots=True)
class Item:
    path: Path
    document_id: str


@dataclass(slots=True)
class Summary:
    indexed: list[str] = field(default_factory=list)
    # Indexed before with the same content, so not embedded again.
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def done(self) -> int:
        return len(self.indexed) + len(self.skipped) + len(self.failed)

    def line(self) -> str:
        return f"{self.done} document(s): {len(self.indexed)} indexed, {len(self.skipped)} skipped (unchanged), " \
               f"{len(self.failed)} failed"

    def to_json(self) -> dict[str, object]:
        return {"indexed": self.indexed, "skipped": self.skipped,
                "failed": [{"document_id": k, "error": v} for k, v in self.failed.items()]}


def document_id(path: Path, base: Path | None = None) -> str:
    """The path relative to base (else the current directory) when under it,
    else absolute: the same file gets the same id on every run, which is what
    lets the worker skip it when unchanged. Ids over the contract's 128
    characters keep their end, behind a digest of the whole."""
    full = path.resolve()
    root = (base or Path.cwd()).resolve()
    text = full.relative_to(root).as_posix() if full.is_relative_to(root) else full.as_posix()
    if len(text) <= MAX_ID:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return f"{digest}~{text[-(MAX_ID - len(digest) - 1):]}"


def collect(paths: Sequence[str | Path], base: Path | None = None) -> list[Item]:
    """Files named, and the parseable files under directories named (hidden
    ones left out), each once, in a stable order."""
    found: dict[Path, Item] = {}
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files: Iterable[Path] = sorted(
                p for p in path.rglob("*")
                if p.is_file() and p.suffix.lower() in EXTENSIONS
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        elif path.is_file():
            files = [path]
        else:
            raise CommandError(f"{raw}: no such file or directory")
        for f in files:
            found.setdefault(f.resolve(), Item(f, document_id(f, base)))
    if not found:
        raise CommandError(f"no documents in {', '.join(map(str, paths))} (looked for {', '.join(sorted(EXTENSIONS))})")
    return list(found.values())


def read(item: Item) -> rag_pb2.RagDocument:
    """Text as content, anything else (PDF, bytes that are not UTF-8) as data:
    the worker parses or refuses it and says why on rag.status."""
    from ai.rag.v1 import rag_pb2

    raw = item.path.read_bytes()
    doc = rag_pb2.RagDocument(document_id=item.document_id, source_uri=item.document_id)
    if item.path.suffix.lower() == ".pdf":
        doc.data = raw
        return doc
    try:
        doc.content = raw.decode("utf-8")
    except UnicodeDecodeError:
        doc.data = raw
    return doc


async def prepared(bus: Bus, tenant: str, item: Item) -> rag_pb2.RagDocument:
    """The document as one message, or, when its bytes would not fit the
    server's max_payload, as a reference to a JetStream object holding them
    (aisdk.components.rag.objects)."""
    from ai.rag.v1 import rag_pb2

    from aisdk.components.rag import objects

    doc = read(item)
    size = len(doc.data) or len(doc.content.encode())
    if not objects.too_large(size, bus.nc.max_payload):
        return doc
    ref = await objects.put(bus.nc.jetstream(), tenant, item.document_id, item.path.read_bytes())
    return rag_pb2.RagDocument(document_id=doc.document_id, source_uri=doc.source_uri, content_ref=ref)


class Progress:
    """One redrawn line on a terminal; nothing anywhere else."""

    def __init__(self, total: int, out: TextIO = sys.stderr) -> None:
        self.total = total
        self.out = out
        self.on = out.isatty()

    def draw(self, summary: Summary) -> None:
        if not self.on:
            return
        width = 24
        filled = width * summary.done // max(1, self.total)
        bar = "#" * filled + "-" * (width - filled)
        self.out.write(f"\ringesting [{bar}] {summary.done}/{self.total}  {len(summary.indexed)} indexed  "
                       f"{len(summary.skipped)} unchanged  {len(summary.failed)} failed")
        self.out.flush()

    def close(self) -> None:
        if self.on:
            self.out.write("\n")
            self.out.flush()


async def ingest(bus: Bus, tenant: str, items: Sequence[Item], *, timeout: float = 300.0,
                 progress: Progress | None = None) -> Summary:
    """Publish every item on rag.ingest and wait, at most `timeout` seconds
    after the last is sent, for each one's final rag.status."""
    from ai.rag.v1 import rag_bus, rag_pb2

    from runtime.errors import PlatformError

    State = rag_pb2.IngestState
    summary = Summary()
    pending = {item.document_id for item in items}
    last: dict[str, str] = {}
    finished = asyncio.Event()

    def settle(doc_id: str, outcome: str, error: str = "") -> None:
        pending.discard(doc_id)
        if outcome == "failed":
            summary.failed[doc_id] = error
        else:
            (summary.skipped if outcome == "skipped" else summary.indexed).append(doc_id)
        if progress is not None:
            progress.draw(summary)
        if not pending:
            finished.set()

    async def on_status(o: Observed) -> None:
        status = o.payload
        if status is None or status.document_id not in pending:
            return
        last[status.document_id] = State.Name(status.state).removeprefix("INGEST_STATE_")
        if status.state == State.INGEST_STATE_INDEXED:
            settle(status.document_id, "skipped" if status.unchanged else "indexed")
        elif status.state == State.INGEST_STATE_FAILED:
            settle(status.document_id, "failed", status.error or "failed")

    client = rag_bus.RagServiceClient(bus, tenant)
    # Subscribed before the first document goes out: no status is missed.
    sub = await bus.subscribe(rag_bus.RAG_STATUS, on_status, tenant_id=tenant)
    try:
        if progress is not None:
            progress.draw(summary)
        for item in items:
            try:
                await client.ingest(await prepared(bus, tenant, item))
            except (OSError, PlatformError) as e:
                # Not sent (unreadable, over the contract's or the server's size): it alone fails.
                settle(item.document_id, "failed", f"not sent: {e}")
        if pending:
            try:
                await asyncio.wait_for(finished.wait(), timeout)
            except TimeoutError:
                for doc_id in sorted(pending):
                    state = last.get(doc_id, "QUEUED")
                    settle(doc_id, "failed", f"no final status within {timeout:g} s (last {state}); "
                                             "it stays queued on rag.ingest for the RAG worker")
    finally:
        await sub.unsubscribe()
        if progress is not None:
            progress.close()
    return summary
