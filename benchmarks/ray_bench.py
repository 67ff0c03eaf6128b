"""The Ray backend on one machine against the local threads, and what Ray adds per task.

``python -m benchmarks.ray_bench`` prints the figures; :func:`measure` returns them
so the main bench can add a row. Both backends evolve the same seeded run (same
candidates, same shape of parallelism: one intra-op thread per candidate, as many
candidates at once as the machine has cores), and throughput is counted over the
generations after the first, which pays for start-up (Ray's worker processes
import torch then). The per-task overhead is the wall time of one tiny candidate
round trip minus the training time its worker reports, one task at a time.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks import default_data_root
from galapagos_nao import evolve
from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core import datasets
from galapagos_nao.core.datasets import Task
from galapagos_nao.core.training import DeviceDataCache
from galapagos_nao.example import seed_layers
from galapagos_nao.run.devices import usable_cores
from galapagos_nao.run.local import LocalEvaluator
from galapagos_nao.run.loop import GenerationReport
from galapagos_nao.run.ray import driver
from galapagos_nao.run.records import Candidate, EvaluationJob, Evaluator

__all__ = ["main", "measure"]


def load_task(root: str | Path | None, n_train: int | None, n_test: int | None) -> Task:
    """MNIST from ``root``, GN_DATA_DIR or ../shared/data (bundled subset otherwise), subsampled."""
    root = root or default_data_root()
    task = datasets.mnist(root, download=False)
    if n_train is not None or n_test is not None:
        task = datasets.subset(task, n_train or task.n_train, n_test or task.n_test, seed=0)
    return task


def _evolution(
    backend: str, task: Task, generations: int, generation_size: int, epochs: int
) -> dict[str, Any]:
    parameters = Parameters()
    parameters.put("orchestration", {"backend": backend, "generation_size": generation_size})
    parameters.put("orchestration", {"threads_per_worker": 1, "num_cpus": 1})
    parameters.put("training", {"epochs": epochs, "device": "cpu"})
    reports: list[GenerationReport] = []
    run = evolve(
        seed_layers(),
        generations,
        task,
        selection=Selection(parameters=parameters),
        parameters=parameters,
        seed=0,
    )
    run.hooks.append(reports.append)
    run.join()
    status = run.status()
    if status.state != "finished":
        raise RuntimeError(f"the {backend} run ended {status.state}: {status.error}")
    steady = reports[1:]
    seconds = sum(r.seconds for r in steady)
    candidate_epochs = sum(r.evaluated for r in steady) * epochs
    return {
        "first_generation_s": round(reports[0].seconds, 2),
        "steady_generations_s": round(seconds, 2),
        "candidate_epochs_per_min": round(60.0 * candidate_epochs / seconds, 1),
        "failed": status.failed,
    }


def _round_trips(evaluator: Evaluator, task: Task, count: int) -> list[float]:
    """Wall time minus reported training time of ``count`` tiny candidates, one at a time."""
    parameters = Parameters()
    parameters.put("orchestration", {"threads_per_worker": 1, "num_cpus": 1})
    parameters.put("training", {"device": "cpu"})
    job = EvaluationJob(task, parameters.settings(), threading.Event(), DeviceDataCache())
    overheads = []
    for index in range(count + 1):  # the first warms the worker up and is not counted
        candidate = Candidate(index, 0, (("dense", [4, "none"]),), seed=index)
        started = time.perf_counter()
        [outcome] = evaluator.evaluate([candidate], job)
        if outcome.network is None:
            raise RuntimeError(f"a tiny candidate failed: {outcome.failure}")
        if index:
            overheads.append(time.perf_counter() - started - outcome.seconds)
    return overheads


def _per_task_overhead(task: Task, count: int) -> dict[str, float]:
    tiny = datasets.subset(task, 256, 256, seed=0)
    figures = {}
    for name, evaluator in (("threads", LocalEvaluator()), ("ray", driver.RayEvaluator())):
        try:
            overheads = _round_trips(evaluator, tiny, count)
        finally:
            evaluator.close()
        figures[f"{name}_task_overhead_ms"] = round(1000 * statistics.median(overheads), 2)
    return figures


def measure(
    *,
    root: str | Path | None = None,
    n_train: int | None = 20000,
    n_test: int | None = 5000,
    generations: int = 4,
    generation_size: int = 8,
    epochs: int = 1,
    round_trips: int = 20,
) -> dict[str, Any]:
    """Measures both backends on this machine.

    Args:
        root: Dataset root holding ``MNIST/raw``; see :func:`load_task`.
        n_train: Training samples (None: all); fewer make the run shorter.
        n_test: Test samples (None: all).
        generations: Generations per backend; the first is reported apart.
        generation_size: Candidates per generation.
        epochs: Epochs per candidate.
        round_trips: Tiny tasks timed for the per-task overhead.

    Returns:
        A flat dict of figures: for each backend its candidate-epochs per minute
        and first-generation seconds, the per-task overheads, the Ray start-up
        seconds, the cores and the data size.
    """
    task = load_task(root, n_train, n_test)
    started = time.perf_counter()
    connection = driver.connect()
    ray_start = time.perf_counter() - started
    try:
        figures: dict[str, Any] = {
            "cores": usable_cores(),
            "n_train": task.n_train,
            "generation_size": generation_size,
            "epochs": epochs,
            "ray_connection": connection,
            "ray_start_s": round(ray_start, 2),
        }
        for backend in ("threads", "ray"):
            for key, value in _evolution(
                backend, task, generations, generation_size, epochs
            ).items():
                figures[f"{backend}_{key}"] = value
        figures.update(_per_task_overhead(task, round_trips))
        figures["ray_vs_threads"] = round(
            figures["ray_candidate_epochs_per_min"] / figures["threads_candidate_epochs_per_min"], 2
        )
        return figures
    finally:
        if connection != "existing":
            driver.disconnect()  # a local Ray this call started; a joined cluster stays up


def main(argv: list[str] | None = None) -> None:
    """Prints :func:`measure`'s figures, one per line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=None, help="dataset root holding MNIST/raw")
    parser.add_argument("--n-train", type=int, default=20000, help="training samples (0: all)")
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--generation-size", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args(argv)
    figures = measure(
        root=args.root,
        n_train=args.n_train or None,
        generations=args.generations,
        generation_size=args.generation_size,
        epochs=args.epochs,
    )
    width = max(len(key) for key in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
