"""CPU-bound steps off the event loop, so that one heavy request (a PDF to
parse, 64 texts to embed) never stalls the other requests of the process.

Two kinds of worker, by what the step does with the GIL:

- `in_thread` for work that releases it (numpy, tokenizers, tiktoken,
  scikit-learn's numeric kernels): a thread costs tens of microseconds and
  shares the process's loaded models;
- `in_process` for pure-Python work that holds it (pypdf, sentence splitting
  and chunking): in a thread it would still take the GIL from the loop for
  up to the interpreter's switch interval (5 ms) at a time, so it runs in a
  small process pool instead, and its arguments and result cross by pickle.

Both are bounded: at most `AISDK_OFFLOAD_THREADS` / `AISDK_OFFLOAD_PROCESSES`
steps run at once (default: the number of CPUs), the rest wait on the loop,
where a deadline can still cancel them before they start. Given `timeout`
(the caller's time left, `Context.time_left()`), a step that has not
finished by then is answered with DEADLINE_EXCEEDED; the step itself cannot
be interrupted, but nobody waits for it and its slot frees when it ends.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from functools import partial
from typing import TypeVar, TypeVarTuple, Unpack

from ai.envelope.v1 import envelope_pb2
from aisdk.components.environment import whole
from runtime.errors import HandlerError

Code = envelope_pb2.Error
THREADS_ENV = "AISDK_OFFLOAD_THREADS"
PROCESSES_ENV = "AISDK_OFFLOAD_PROCESSES"

Ts = TypeVarTuple("Ts")
T = TypeVar("T")


def _limit(env: str) -> int:
    return whole(os.environ, env, max(1, os.cpu_count() or 1), minimum=1)


class _Pool:
    """One executor and the semaphore that bounds the steps in flight on it.
    Both are made on first use, and the semaphore again for another event
    loop (each test has its own)."""

    def __init__(self, env: str, make: Callable[[int], Executor]) -> None:
        self._env = env
        self._make = make
        self._executor: Executor | None = None
        self._sem: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.size = 0

    def _ready(self) -> tuple[Executor, asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        if self._executor is None:
            self.size = _limit(self._env)
            self._executor = self._make(self.size)
        if self._sem is None or self._loop is not loop:
            self._sem, self._loop = asyncio.Semaphore(self.size), loop
        return self._executor, self._sem

    async def run(self, timeout: float | None, fn: Callable[[Unpack[Ts]], T], *args: Unpack[Ts]) -> T:
        executor, sem = self._ready()
        try:
            return await self._run(executor, sem, timeout, fn, *args)
        except TimeoutError:
            name = getattr(fn, "__qualname__", type(fn).__name__)
            raise HandlerError(Code.CODE_DEADLINE_EXCEEDED,
                               f"{name} did not finish within the caller's deadline ({timeout:.3g} s)") from None

    @staticmethod
    async def _run(executor: Executor, sem: asyncio.Semaphore, timeout: float | None,
                   fn: Callable[[Unpack[Ts]], T], *args: Unpack[Ts]) -> T:
        async with asyncio.timeout(timeout):
            await sem.acquire()
            try:
                future = asyncio.get_running_loop().run_in_executor(executor, fn, *args)
            except BaseException:
                sem.release()
                raise
            # The slot frees when the step has really ended, not when its
            # caller stops waiting: a step cannot be interrupted, and a pool
            # that counted a timed-out one as done would run more at once
            # than it is bounded to.
            future.add_done_callback(partial(_ended, sem))
            # shield: a cancelled waiter leaves the running step alone.
            return await asyncio.shield(future)

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._executor, self._sem, self._loop = None, None, None


def _ended(sem: asyncio.Semaphore, future: asyncio.Future[object]) -> None:
    sem.release()
    if not future.cancelled():
        future.exception()  # retrieved: a step whose caller left fails quietly


def _processes(n: int) -> Executor:
    # forkserver, not fork: the parent has threads (the thread pool, the
    # database driver's) that a forked child would inherit half-held locks of.
    return ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("forkserver"))


_threads = _Pool(THREADS_ENV, lambda n: ThreadPoolExecutor(n, thread_name_prefix="aisdk-offload"))
_procs = _Pool(PROCESSES_ENV, _processes)


async def in_thread(fn: Callable[[Unpack[Ts]], T], *args: Unpack[Ts], timeout: float | None = None) -> T:
    """fn(*args) on the bounded thread pool (work that releases the GIL)."""
    return await _threads.run(timeout, fn, *args)


async def in_process(fn: Callable[[Unpack[Ts]], T], *args: Unpack[Ts], timeout: float | None = None) -> T:
    """fn(*args) in the bounded process pool (pure Python that holds the
    GIL). fn must be a module-level function; arguments and result are
    pickled."""
    return await _procs.run(timeout, fn, *args)


def shutdown() -> None:
    """Stop both pools (they are made again on the next use)."""
    _threads.shutdown()
    _procs.shutdown()
