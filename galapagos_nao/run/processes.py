"""The ``processes`` backend: candidates train in worker processes of this machine.

Chosen with ``gn.Parameters.put(gn.orchestration, {"backend": "processes"})``.
Planning, grouping, worker counts and memory budgets are the local backend's
(:class:`~galapagos_nao.run.local.LocalEvaluator`); only where a unit trains
differs. Each worker thread hands its unit to a worker process of its own
(:mod:`galapagos_nao.run.process_worker`), taken from a pool that keeps the
processes for the session (:mod:`galapagos_nao.run.process_pool`), and waits
for the result. A worker holds one copy of the run's splits
(the ones a worker thread would train on: 219 MB for MNIST), sent when it
starts and again only when the task or ``validation_fraction`` changes.
Processes share no interpreter lock, so on a CPU they train more candidates a
minute than threads (``docs/guide/performance.md`` has the figures); and a
candidate that never returns is killed with its process rather than left
running on a thread.

Messages are bytes (:mod:`galapagos_nao.run.process_wire`), never pickle:
the splits travel as their tensors' bytes, parents and results as sealed
network files, and a result is checked like any input before it is used.

What cannot travel as bytes trains on the worker thread, as with the local
backend, saying so once: a genome using a layer type registered in this
process only (its builder is Python code), and a continual stream's replay
task.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence

import torch

from galapagos_nao.config.settings import OrchestrationSettings
from galapagos_nao.core import genome
from galapagos_nao.core.budget import format_bytes
from galapagos_nao.core.datasets import ReplayTask, Task
from galapagos_nao.core.training import TrainSettings
from galapagos_nao.run.limits import available_memory
from galapagos_nao.run.local import LocalEvaluator, unit_timeout
from galapagos_nao.run.log_relay import replay
from galapagos_nao.run.process_pool import (
    START_SECONDS,
    WorkerGone,
    WorkerPool,
    WorkerProcess,
    WorkerStopped,
    WorkerTimedOut,
    shared_pool,
)
from galapagos_nao.run.process_wire import (
    Unit,
    WireError,
    data_message,
    frame_prefix,
    outcomes_from_message,
    unit_message,
)
from galapagos_nao.run.records import Candidate, EvaluationJob, Outcome
from galapagos_nao.run.train import failed_outcome
from galapagos_nao.run.workers import stuck_after

__all__ = ["MEMORY_SHARE", "WORKER_BASE_BYTES", "ProcessEvaluator", "processes_that_fit"]

logger = logging.getLogger("galapagos_nao")

#: Unique memory of a worker process besides its data: torch and its lazy
#: imports (measured 400 MiB on full MNIST with torch 2.14), with a margin.
WORKER_BASE_BYTES = 512 << 20
#: Share of the available memory that worker processes may take between them.
MEMORY_SHARE = 0.5


class ProcessEvaluator(LocalEvaluator):
    """Trains each unit in a worker process of this machine (see the module docstring)."""

    def __init__(self, pool: WorkerPool | None = None) -> None:
        """Trains in the processes of ``pool``: by default this session's (:func:`shared_pool`)."""
        super().__init__()
        self._pool = pool if pool is not None else shared_pool()
        self._data_bytes = 0  # the task's splits, which every worker process holds
        self._task: Task | None = None  # the task being evaluated

    def evaluate(self, candidates: Sequence[Candidate], job: EvaluationJob) -> Iterator[Outcome]:
        """As the local backend, with no more worker processes than the memory holds."""
        task = self._task = job.task
        self._data_bytes = sum(
            t.nbytes for t in (task.x_train, task.y_train, task.x_test, task.y_test)
        )
        yield from super().evaluate(candidates, job)

    def _workers(
        self, units: int, devices: Sequence[torch.device], orchestration: OrchestrationSettings
    ) -> tuple[int, int]:
        workers, threads = super()._workers(units, devices, orchestration)
        fit = processes_that_fit(workers, self._data_bytes, available_memory(torch.device("cpu")))
        if fit < workers:
            self._say_once(
                f"orchestration.workers cut from {workers} to {fit} worker processes: each "
                f"takes about {format_bytes(WORKER_BASE_BYTES + self._data_bytes)} (torch and "
                f"the data), and at most half of the memory available goes to them",
                logging.WARNING,
            )
        return fit, threads

    def allowance(self, group: Sequence[Candidate], device: torch.device, timeout: float) -> float:
        """The unit's allowance; one that travels gets the time to start a process and send data."""
        allowance = super().allowance(group, device, timeout)
        if self._task is not None and _stays_here(group, self._task) is None:
            allowance += START_SECONDS
        return allowance

    def _train_unit(
        self,
        group: list[Candidate],
        device: torch.device,
        padded_share: float,
        settings: TrainSettings,
        job: EvaluationJob,
        timeout: float,
        budget: int | None,
    ) -> list[Outcome]:
        why = _stays_here(group, job.task)
        if why is not None:
            self._say_once(f"Trained on a worker thread, not in a worker process: {why}")
            return super()._train_unit(group, device, padded_share, settings, job, timeout, budget)
        started = time.monotonic()
        unit = Unit(
            candidates=tuple(group),
            settings=settings,
            device=str(device),
            timeout=unit_timeout(timeout, group, device),
            threads=torch.get_num_threads(),  # the worker thread's own count
            budget=budget,
            padded_share=padded_share,
            log_level=logging.getLogger("galapagos_nao").getEffectiveLevel(),
        )
        try:
            header, blob = unit_message(unit)
            return self._in_a_process(unit, frame_prefix(header, len(blob)), blob, job)
        except WorkerStopped:
            return [Outcome(c, stopped=True, seconds=time.monotonic() - started) for c in group]
        except (WorkerGone, WireError, ValueError, OSError) as error:
            return [failed_outcome(c, error, time.monotonic() - started) for c in group]

    def _in_a_process(
        self, unit: Unit, prefix: bytes, blob: bytes, job: EvaluationJob
    ) -> list[Outcome]:
        stopped = job.stop_event.is_set
        worker = self._pool.take()
        try:
            start_by = time.monotonic() + START_SECONDS
            try:
                worker.wait_until_ready(start_by, stopped)
                self._send_data(worker, job, unit.settings.validation_fraction, start_by)
                worker.send(prefix, [blob], start_by, stopped)
            except WorkerTimedOut:
                raise WorkerGone(
                    f"its worker process did not start and take the data within {START_SECONDS:g} s"
                ) from None
            allowance = stuck_after(unit.timeout)
            try:
                reply = worker.receive(time.monotonic() + allowance, stopped)
            except WorkerTimedOut:
                raise WorkerGone(
                    f"did not return within {allowance:g} s; its worker process was killed"
                ) from None
            outcomes, logs = outcomes_from_message(*reply, unit.candidates, worker.name)
        except BaseException:
            self._pool.discard(worker)  # what it was doing is given up; the next unit gets another
            raise
        self._pool.give_back(worker)
        replay(logs, __file__)
        return outcomes

    @staticmethod
    def _send_data(worker: WorkerProcess, job: EvaluationJob, share: float, by: float) -> None:
        """Sends the run's splits unless the worker holds them: once per task and share."""
        held = worker.holds
        if held is not None and held[0] is job.task and held[1] == share:
            return
        worker.holds = None
        # The CPU splits a worker thread would train on, made once for the run.
        data = job.data_cache.get(job.task, torch.device("cpu"), share)
        header, parts = data_message(data)
        length = sum(memoryview(p).nbytes for p in parts)
        worker.send(frame_prefix(header, length), parts, by, job.stop_event.is_set)
        worker.holds = (job.task, share)

    def _say_once(self, message: str, level: int = logging.INFO) -> None:
        if message not in self._warned:
            self._warned.add(message)
            logger.log(level, message)


def processes_that_fit(workers: int, data_bytes: int, available: int | None) -> int:
    """At most ``workers`` worker processes, as many as half of ``available`` bytes hold.

    Each holds torch (:data:`WORKER_BASE_BYTES`) and its own copy of the data;
    the other half is left for training and for everything else. None for
    ``available`` (the machine does not say) leaves ``workers`` as it is.
    """
    if available is None:
        return workers
    each = WORKER_BASE_BYTES + data_bytes
    return max(1, min(workers, int(available * MEMORY_SHARE) // each))


def _stays_here(group: Sequence[Candidate], task: Task) -> str | None:
    """Why the unit must train in this process, or None if it can travel."""
    if isinstance(task, ReplayTask):
        return "a continual stream's replay task"
    for candidate in group:
        layers = list(candidate.layers)
        if candidate.parent is not None:
            layers += list(candidate.parent.layers)
        for name, _ in layers:
            if not genome.is_builtin(genome.layer_type(name)):
                return f"layer type {name!r} is registered in this process only"
    return None
