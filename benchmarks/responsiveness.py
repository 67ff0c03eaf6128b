"""Responsiveness: how long the REPL waits on ``gn.Selection.get_all()`` while a run trains.

The main thread plays the user: at fixed instants it calls ``gn.Selection.get_all()``
or ``gn.Parameters.get("training", "batch_size")`` while :func:`gn.evolve` trains on
its background threads. A sample is the time from the instant the call was due
to the moment it returned, so it includes what a user at the prompt would wait
for besides the call itself: getting the interpreter lock back from the
training threads, and any lock the run holds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import galapagos_nao as gn
from galapagos_nao.core.datasets import Task
from galapagos_nao.core.typing import Genome

__all__ = ["Latencies", "measure_latency", "percentile"]


def percentile(values: list[float], share: float) -> float:
    """The ``share`` quantile (0..1) of ``values`` by the nearest-rank rule."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    # The smallest value with at least ``share`` of the samples at or below it.
    rank = max(0, min(len(ordered) - 1, math.ceil(share * len(ordered) - 1e-9) - 1))
    return ordered[rank]


@dataclass
class Latencies:
    """Seconds from due time to return, per call, gathered while a run trained.

    Attributes:
        get_all: Samples of ``gn.Selection.get_all()``.
        parameters_get: Samples of ``gn.Parameters.get("training", "batch_size")``.
        elites_seen: Elites ``get_all`` returned at the last sample (shows it was not empty).
    """

    get_all: list[float] = field(default_factory=list)
    parameters_get: list[float] = field(default_factory=list)
    elites_seen: int = 0

    def summary(self) -> dict[str, Any]:
        """p50/p99 in milliseconds and sample counts, for the table and JSON."""
        return {
            "get_all_p50_ms": 1e3 * percentile(self.get_all, 0.50),
            "get_all_p99_ms": 1e3 * percentile(self.get_all, 0.99),
            "parameters_get_p50_ms": 1e3 * percentile(self.parameters_get, 0.50),
            "parameters_get_p99_ms": 1e3 * percentile(self.parameters_get, 0.99),
            "samples": len(self.get_all) + len(self.parameters_get),
            "elites_seen": self.elites_seen,
        }


def _timed_at(due: float, call: Callable[[], Any]) -> tuple[float, Any]:
    pause = due - time.perf_counter()
    if pause > 0:
        time.sleep(pause)
    result = call()
    return time.perf_counter() - due, result


def measure_latency(
    genome: Genome,
    task: Task,
    *,
    seed: int,
    samples: int = 400,
    interval: float = 0.02,
    generations: int = 3,
) -> Latencies:
    """Samples both calls alternately while ``gn.evolve(genome, generations, task)`` trains.

    Sampling starts once the first generation has filled the archive and stops
    after ``samples`` samples or when the run ends. The run uses the shared
    ``gn.Selection`` and ``gn.Parameters``, which are cleared before and after.

    Returns:
        The samples.
    """
    gn.Selection.clear()
    latencies = Latencies()
    run = gn.evolve(genome, generations, task, seed=seed)
    try:
        while run.generation < 1 and not run.done():
            time.sleep(0.01)
        due = time.perf_counter()
        while not run.done() and len(latencies.get_all) + len(latencies.parameters_get) < samples:
            due += interval
            seconds, elites = _timed_at(due, gn.Selection.get_all)
            latencies.get_all.append(seconds)
            latencies.elites_seen = len(elites)
            due += interval
            seconds, _ = _timed_at(due, lambda: gn.Parameters.get("training", "batch_size"))
            latencies.parameters_get.append(seconds)
    finally:
        run.stop()
        run.join()
        gn.Selection.clear()
    run.result()  # re-raises whatever killed the run
    return latencies
