"""Group commit: handlers that run at once (a JetStream pull batch handled
with concurrency) hand their items to one `flush`, one transaction for all
of them, and each gets its own result back once that transaction is
committed, so that its message is acked only after its row is stored.

There is no timer: a flush starts as soon as one is asked for and none is
running; what arrives meanwhile goes into the next one. Alone, an item is
flushed at once; under load, batches grow by themselves.

A batch that fails is flushed again item by item, so that one bad item
fails only its own handler (and its message is redelivered or dead-lettered
alone), not the others that happened to share its batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

I = TypeVar("I")
R = TypeVar("R")


class Batches(Generic[I, R]):
    def __init__(self, flush: Callable[[list[I]], Awaitable[Sequence[R]]], max_batch: int) -> None:
        if max_batch < 1:
            raise ValueError(f"a batch holds at least 1 item, not {max_batch}")
        self._flush = flush
        self._max = max_batch
        self._pending: list[tuple[I, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None
        # The largest batch flushed so far (tests check that batching happens).
        self.largest = 0

    async def submit(self, item: I) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="batch flush")
        return await future

    async def _drain(self) -> None:
        while self._pending:
            # One turn of the loop, so that the handlers of a pull batch that
            # started together all reach submit() before the flush.
            await asyncio.sleep(0)
            batch, self._pending = self._pending[:self._max], self._pending[self._max:]
            batch = [(item, f) for item, f in batch if not f.done()]  # a handler may have been cancelled
            if batch:
                await self._run(batch)

    async def _run(self, batch: list[tuple[I, asyncio.Future[R]]]) -> None:
        self.largest = max(self.largest, len(batch))
        try:
            results = await self._flush([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"a flush of {len(batch)} items returned {len(results)} results")
        except Exception as e:  # noqa: BLE001 - handed to the handlers, which answer for it
            if len(batch) == 1:
                _settle(batch[0][1], error=e)
                return
            for one in batch:
                await self._run([one])
            return
        for (_, future), result in zip(batch, results):
            _settle(future, result=result)


def _settle(future: asyncio.Future[R], *, result: R | None = None, error: BaseException | None = None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)  # type: ignore[arg-type]  # R, given whenever error is None
