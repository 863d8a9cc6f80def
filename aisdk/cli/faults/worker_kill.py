"""A worker is killed (SIGKILL) after its handler stored an LLM operation and
before the ack: the message goes to the other worker of the queue group, and
the operation is stored once."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from aisdk.cli.faults.outcome import Outcome, Size, until
from aisdk.cli.faults.workloads import LlmopsOperations, publish_acked, settle
from aisdk.components.storage import temporary_database
from runtime.bus import Bus
from runtime.server import EmbeddedServer
from runtime.settings import BusSettings

NAME = "worker-kill"
ACK_WAIT_MS = 2_000
WORKERS = 2


@dataclass(slots=True)
class Worker:
    proc: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)

    async def read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            self.lines.append(raw.decode().strip())

    def said(self, prefix: str) -> list[str]:
        return [line for line in self.lines if line.startswith(prefix)]


async def spawn(url: str, db: str, tenant: str, hold: str) -> Worker:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aisdk.cli.faults.worker", url, db, tenant, hold, str(ACK_WAIT_MS),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )
    return Worker(proc)


async def run(size: Size, workdir: Path) -> Outcome:
    out = Outcome(NAME, sent=size.messages)
    work = LlmopsOperations("chaos")
    hold = work.key(size.messages // 2)
    workers: list[Worker] = []
    readers: list[asyncio.Task[None]] = []
    with EmbeddedServer(name="chaos-kill") as server:
        async with temporary_database() as db, Bus(server.url, BusSettings(name="chaos-producer")) as producer:
            try:
                for _ in range(WORKERS):
                    w = await spawn(server.url, db, work.tenant, hold)
                    workers.append(w)
                    readers.append(asyncio.create_task(w.read()))
                out.checks["the workers started"] = await until(lambda: all(w.said("ready") for w in workers))
                acked: set[str] = set()
                await publish_acked(producer, work, range(size.messages), acked)
                held = await until(lambda: any(w.said("holding") for w in workers))
                out.checks["a worker held the message mid-handler"] = held
                if held:
                    victim = next(w for w in workers if w.said("holding"))
                    os.kill(victim.proc.pid, signal.SIGKILL)
                    await victim.proc.wait()
                    survivors = [w for w in workers if w is not victim]
                    out.checks["another worker processed the redelivery"] = await until(
                        lambda: any(line.startswith(f"done {hold} ") and not line.endswith(" 1")
                                    for w in survivors for line in w.lines))
                await settle(producer, work, db, acked, out)
                out.detail["killed_pid"] = next((w.proc.pid for w in workers if w.said("holding")), None)
            finally:
                for w in workers:
                    if w.proc.returncode is None:
                        w.proc.send_signal(signal.SIGTERM)
                for w in workers:
                    try:
                        await asyncio.wait_for(w.proc.wait(), 30)
                    except asyncio.TimeoutError:
                        w.proc.kill()
                        await w.proc.wait()
                for r in readers:
                    r.cancel()
    return out
