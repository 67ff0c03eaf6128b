"""Our engine, measured through the public path: ``evolve`` with a fixed seed.

Each measurement is a short run of clones: mutation is switched off and weight
inheritance too, so every candidate of every generation trains the given genome
from a fresh, seeded init for one epoch. The first generation is a warm-up (it
copies the task to the device and starts the worker threads, once per run);
the figures come from the generations after it, in steady state.

Timing uses only the run's public hooks: a candidate hook notes when each
outcome arrives (its training interval is the ``seconds`` it reports, ending
then), and a generation hook notes when each generation ends. Whatever part of
the wall time no candidate was training is the overhead: breeding, selection,
bookkeeping, the other hooks and the hand-offs between threads.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from galapagos_nao import evolve
from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core.datasets import Task
from galapagos_nao.core.network import Network
from galapagos_nao.core.typing import Genome
from galapagos_nao.run.devices import plan_workers, training_devices
from galapagos_nao.run.loop import GenerationReport
from galapagos_nao.run.records import Outcome

__all__ = ["EngineMeasure", "measure_engine", "union_seconds"]


@dataclass
class EngineMeasure:
    """Steady-state figures of one short run.

    Attributes:
        workers: Candidates trained at once (as planned by the evaluator).
        threads: Intra-op threads per worker.
        candidates: Candidates trained in the measured generations.
        seconds: Wall time of the measured generations, hook to hook.
        cpu_seconds: CPU time the process used meanwhile (all threads).
        train_seconds: Part of it during which at least one candidate trained.
        fit_seconds: Sum of the candidates' own training times.
        test_accs: Test accuracy of each measured candidate.
        val_accs: Validation accuracy (the fitness) of each measured candidate.
        by_genome: Genome → (training seconds, test accuracy) of each of its candidates.
        failures: Reasons of candidates that failed (expected empty).
        group_sizes: Size of the group each measured candidate trained in (1: alone).
        padded_shares: Share of its group's multiply-adds spent on padding, per candidate.
    """

    workers: int
    threads: int
    candidates: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    train_seconds: float = 0.0
    fit_seconds: float = 0.0
    test_accs: list[float] = field(default_factory=list)
    val_accs: list[float] = field(default_factory=list)
    by_genome: dict[tuple[Any, ...], list[tuple[float, float]]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    group_sizes: list[int] = field(default_factory=list)
    padded_shares: list[float] = field(default_factory=list)

    @property
    def padded_share(self) -> float:
        """Mean over candidates of the padded share of their group's multiply-adds."""
        return statistics.fmean(self.padded_shares) if self.padded_shares else float("nan")

    @property
    def mean_group_size(self) -> float:
        """Mean size of the group a candidate trained in."""
        return statistics.fmean(self.group_sizes) if self.group_sizes else float("nan")

    @property
    def per_minute(self) -> float:
        """Candidate-epochs per minute."""
        return 60.0 * self.candidates / self.seconds if self.seconds > 0 else 0.0

    @property
    def overhead(self) -> float:
        """Share of the wall time with no candidate training."""
        return 1.0 - self.train_seconds / self.seconds if self.seconds > 0 else 0.0

    @property
    def idle_share(self) -> float:
        """Share of worker time not spent training (overhead plus waiting for the slowest)."""
        capacity = self.workers * self.seconds
        return 1.0 - self.fit_seconds / capacity if capacity > 0 else 0.0

    @property
    def cpu_per_candidate(self) -> float:
        """CPU seconds per candidate-epoch: the cost, whatever share of the cores the OS gave."""
        return self.cpu_seconds / self.candidates if self.candidates else float("nan")

    @property
    def test_acc(self) -> float:
        """Mean test accuracy of the measured candidates."""
        return statistics.fmean(self.test_accs) if self.test_accs else float("nan")

    def genome_figures(self, layers: Genome) -> tuple[float, float]:
        """Mean training seconds and mean test accuracy of the candidates of ``layers``."""
        samples = self.by_genome.get(Network(tuple(layers)).layers, [])
        if not samples:
            return float("nan"), float("nan")
        return statistics.fmean(s for s, _ in samples), statistics.fmean(a for _, a in samples)

    def genome_per_minute(self, layers: Genome) -> float:
        """Candidate-epochs per minute if every worker trained ``layers``.

        ``workers / mean training seconds``: in a generation of mixed genomes each
        candidate trains beside others, so its own time is what it costs there.
        """
        seconds, _ = self.genome_figures(layers)
        return 60.0 * self.workers / seconds


def union_seconds(intervals: Sequence[tuple[float, float]], start: float, end: float) -> float:
    """Length of the union of ``intervals`` clipped to ``[start, end]``."""
    total, reach = 0.0, start
    for low, high in sorted(intervals):
        low, high = max(low, reach), min(high, end)
        if high > low:
            total += high - low
            reach = high
    return total


class _Recorder:
    """Collects outcome arrival times and generation ends from a run's hooks."""

    def __init__(self) -> None:
        self.outcomes: list[tuple[float, Outcome]] = []
        self.generation_ends: list[float] = []
        self.generation_cpu: list[float] = []

    def on_outcome(self, outcome: Outcome) -> None:
        self.outcomes.append((time.monotonic(), outcome))

    def on_generation(self, report: GenerationReport) -> None:
        self.generation_ends.append(time.monotonic())
        self.generation_cpu.append(time.process_time())


def _parameters(
    genomes: Sequence[Genome],
    workers: Any,
    threads: Any,
    generation_size: int,
    training: Mapping[str, Any],
    evolution: Mapping[str, Any],
    backend: str = "threads",
) -> Parameters:
    parameters = Parameters()
    parameters.put("evolution", {"mutation_rate": 0.0, "inherit_weights": False, **evolution})
    parameters.put(
        "orchestration",
        {
            "generation_size": generation_size,
            "workers": workers,
            "threads_per_worker": threads,
            "backend": backend,
        },
    )
    # One level per genome, so that every genome stays a parent in every generation.
    parameters.put("selection", {"complexity_levels": max(len(g) for g in genomes)})
    parameters.put("training", dict(training))
    return parameters


def measure_engine(
    genomes: Sequence[Genome],
    task: Task,
    *,
    seed: int,
    workers: Any = "auto",
    threads: Any = "auto",
    generation_size: int = 4,
    generations: int = 1,
    training: Mapping[str, Any] | None = None,
    evolution: Mapping[str, Any] | None = None,
    backend: str = "threads",
) -> EngineMeasure:
    """Trains clones of ``genomes`` through :func:`evolve` and times the steady state.

    Args:
        genomes: The genomes; each generation trains at least one clone of each.
        task: The data.
        seed: The run's seed.
        workers: ``orchestration.workers`` (candidates at once).
        threads: ``orchestration.threads_per_worker``.
        generation_size: Candidates per generation.
        generations: Measured generations, after one warm-up generation.
        training: Extra ``training`` settings (device, batch size, precision...).
        evolution: ``evolution`` settings over the clones' (mutation and inheritance off).
        backend: ``orchestration.backend``: ``"threads"`` or ``"processes"`` (whose
            workers start in the warm-up generation, outside the measure).

    Returns:
        The measure of the generations after the warm-up.
    """
    parameters = _parameters(
        genomes, workers, threads, generation_size, training or {}, evolution or {}, backend
    )
    recorder = _Recorder()
    run = evolve(
        [Network(tuple(g)) for g in genomes],
        generations + 1,
        task,
        selection=Selection(parameters=parameters),
        parameters=parameters,
        seed=seed,
        hooks=[recorder.on_generation],
        candidate_hooks=[recorder.on_outcome],
    )
    run.result()  # re-raises whatever killed the run
    return _summarise(recorder, parameters, generation_size)


def _summarise(recorder: _Recorder, parameters: Parameters, generation_size: int) -> EngineMeasure:
    settings = parameters.settings()
    devices = training_devices(settings.training.device)
    workers, threads = plan_workers(
        generation_size,
        devices,
        settings.orchestration.workers,
        settings.orchestration.threads_per_worker,
    )
    measure = EngineMeasure(workers=workers, threads=threads)
    start, end = recorder.generation_ends[0], recorder.generation_ends[-1]
    intervals = []
    for arrived, outcome in recorder.outcomes:
        if arrived <= start:
            continue  # the warm-up generation
        intervals.append((arrived - outcome.seconds, arrived))
        measure.fit_seconds += outcome.seconds
        measure.group_sizes.append(outcome.group_size)
        measure.padded_shares.append(outcome.padded_share)
        if outcome.network is None:
            measure.failures.append(outcome.failure or "stopped")
            continue
        measure.candidates += 1
        measure.test_accs.append(float(outcome.network.test_acc or 0.0))
        samples = measure.by_genome.setdefault(outcome.network.layers, [])
        samples.append((outcome.seconds, float(outcome.network.test_acc or 0.0)))
        measure.val_accs.append(float(outcome.network.val_acc or 0.0))
    measure.seconds = end - start
    measure.cpu_seconds = recorder.generation_cpu[-1] - recorder.generation_cpu[0]
    measure.train_seconds = union_seconds(intervals, start, end)
    return measure
