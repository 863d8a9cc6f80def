"""Rounds, rotation, warm-up and the statistics of a benchmark run.

Absolute times drift on a shared machine; figures taken in the same round
do not drift apart. So every comparison group runs all its configurations
once per round, in an order rotated from round to round (whoever goes first
pays for a cold cache or a neighbour's burst only once in a while), and a
ratio is taken inside each round before the median over rounds.
"""

from __future__ import annotations

import gc
import math
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO

Unit = Literal["msg/s", "ns/op", "latency"]


@dataclass
class Sample:
    """One configuration's figure in one round: a rate (msg/s), a time per
    operation (ns), or, for latency groups, the median of `latencies_ns`."""

    value: float
    latencies_ns: list[int] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        return percentile(sorted(self.latencies_ns), q)


@dataclass
class Case:
    """One configuration of a comparison group: `run(size)` does `size`
    operations and returns what it measured."""

    name: str
    run: Callable[[int], Awaitable[Sample]]


@dataclass
class Group:
    """Configurations compared side by side. With `calibrate_s`, each case's
    size is set from its warm-up so that one run lasts about that long (a
    rate needs enough messages to mean anything, a slow peer must not eat
    the time budget); without it every case does `size` operations."""

    name: str
    unit: Unit
    cases: list[Case]
    size: int
    warmup: int
    calibrate_s: float | None = None
    max_size: int = 1_000_000


Results = dict[str, dict[str, list[Sample]]]


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of an ascending sequence."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return float(sorted_values[rank - 1])


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else math.nan


def rotated(cases: Sequence[Case], round_no: int) -> list[Case]:
    k = round_no % len(cases) if cases else 0
    return [*cases[k:], *cases[:k]]


class Progress:
    """A one-line bar on stderr, drawn only when stderr is a terminal (a log
    file or a pipe to `--json` consumers gets nothing)."""

    WIDTH = 30

    def __init__(self, total: int, stream: TextIO = sys.stderr) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.stream = stream
        self.enabled = stream.isatty()
        self.t0 = time.monotonic()

    def step(self, label: str) -> None:
        self.done += 1
        if not self.enabled:
            return
        filled = self.WIDTH * self.done // self.total
        bar = "#" * filled + "." * (self.WIDTH - filled)
        elapsed = time.monotonic() - self.t0
        self.stream.write(f"\r[{bar}] {self.done}/{self.total} {elapsed:5.0f} s  {label[:40]:<40}")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * (self.WIDTH + 60) + "\r")
            self.stream.flush()


class BenchError(Exception):
    """A configuration failed to complete a run (lost messages, a timeout)."""


async def _timed(group: Group, case: Case, size: int) -> tuple[Sample, float]:
    # A collection triggered by the previous configuration's garbage would
    # be billed to this one.
    gc.collect()
    t0 = time.perf_counter()
    try:
        sample = await case.run(size)
    except Exception as e:
        raise BenchError(f"{group.name}.{case.name}: {type(e).__name__}: {e}") from e
    return sample, time.perf_counter() - t0


async def run_groups(groups: Sequence[Group], rounds: int, progress: Progress | None = None) -> Results:
    """Warm every case up (and size it), then run `rounds` rounds."""
    sizes: dict[tuple[str, str], int] = {}
    for group in groups:
        for case in group.cases:
            _, elapsed = await _timed(group, case, group.warmup)
            size = group.size
            if group.calibrate_s is not None:
                per_op = elapsed / group.warmup
                size = int(min(group.max_size, max(group.warmup, group.calibrate_s / per_op)))
            sizes[group.name, case.name] = size
            if progress:
                progress.step(f"warm-up {group.name}.{case.name}")
    results: Results = {g.name: {c.name: [] for c in g.cases} for g in groups}
    for round_no in range(rounds):
        for group in groups:
            for case in rotated(group.cases, round_no):
                sample, _ = await _timed(group, case, sizes[group.name, case.name])
                results[group.name][case.name].append(sample)
                if progress:
                    progress.step(f"round {round_no + 1}/{rounds} {group.name}.{case.name}")
    return results


def steps(groups: Sequence[Group], rounds: int) -> int:
    return sum(len(g.cases) for g in groups) * (rounds + 1)


# -- figures beside their goals, and how the tables show them ------------------

DASH = "–"


def check(value: float | None, goal: str) -> dict[str, Any]:
    """A figure beside its goal, like "<= 2.0" or "> 100": met is None when
    there is no figure."""
    op, _, bound = goal.partition(" ")
    limit = float(bound)
    met = None
    if value is not None:
        met = {"<": value < limit, "<=": value <= limit, ">": value > limit, ">=": value >= limit}[op]
    return {"value": value, "goal": goal, "met": met}


def mark(met: bool | None) -> str:
    return DASH if met is None else ("yes" if met else "**no**")


def us(d: dict[str, Any] | None, key: str) -> str:
    """A latency figure of a row, in microseconds."""
    return DASH if not d or d.get(key) is None else f"{d[key]:,.0f} µs"
