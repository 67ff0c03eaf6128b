"""The local evaluator: candidates train on threads of this process, on the CPU or local GPUs.

A thread cannot be killed. A candidate whose forward pass or builder never
returns (a user's layer waiting on a lock, a driver that hangs) would hold its
worker and the whole generation forever, so every wait here has a deadline
(:class:`~galapagos_nao.run.workers.Supervisor`): a candidate, or a group of
candidates, gets its timeout plus a grace (or the grace after ``stop()``).
Past it, it is reported as failed (as stopped after ``stop()``) and left
behind on its daemon thread, which cannot hold up the interpreter's exit; the
candidates still queued move to fresh workers.

Both paths work this way: one candidate per task (``training.group_size`` 1),
or stacked groups (:mod:`galapagos_nao.run.grouped`), whose planning builds
each genome on the ``meta`` device and so runs on the workers under the same
deadlines.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from galapagos_nao.config.settings import OrchestrationSettings
from galapagos_nao.core.datasets import Task as DataTask
from galapagos_nao.core.training import TrainSettings, estimated_macs
from galapagos_nao.run.devices import (
    assign_devices,
    plan_workers,
    training_devices,
    usable_cores,
)
from galapagos_nao.run.grouped import Grouper, resolve_group_size, train_group
from galapagos_nao.run.limits import bound_threads, memory_budget
from galapagos_nao.run.records import Candidate, EvaluationJob, Outcome
from galapagos_nao.run.train import failed_outcome
from galapagos_nao.run.workers import STUCK_GRACE_SECONDS, Finished, Supervisor, Task, stuck_after

__all__ = ["LocalEvaluator", "STUCK_GRACE_SECONDS", "stuck_after", "unit_timeout"]

logger = logging.getLogger("galapagos_nao")

#: Candidates of one task, the device they train on, and the group's padded share of MACs.
Unit = tuple[list[Candidate], torch.device, float]


class LocalEvaluator:
    """Trains candidates on daemon threads of this process, on the CPU or local GPUs."""

    def __init__(self) -> None:
        self._supervisor = Supervisor()
        self._local = threading.local()
        self._grouper = Grouper()
        self._warned: set[str] = set()

    def evaluate(self, candidates: Sequence[Candidate], job: EvaluationJob) -> Iterator[Outcome]:
        """Trains the candidates concurrently and yields outcomes as they finish.

        A candidate (or group) still running :func:`stuck_after` its timeout
        (or :data:`STUCK_GRACE_SECONDS` after ``stop()``) is yielded as failed
        (as stopped after ``stop()``) without waiting for its thread.
        """
        # Imported here, on the run's thread, once: torch imports it lazily in a
        # worker's first meta forward or optimizer step, which takes seconds, and a
        # worker caught inside that import when the interpreter exits aborts it.
        import torch._dynamo  # noqa: F401

        settings = job.settings.training.train_settings()
        orchestration = job.settings.orchestration
        devices = training_devices(settings.device)
        group_size = resolve_group_size(settings.group_size, devices[0])
        units: list[Unit] = []
        yield from self._plan(candidates, job, devices, group_size, units)  # the stuck ones
        workers, threads = self._workers(len(units), devices, orchestration)
        budget = memory_budget(settings.max_memory, devices[0], -(-workers // len(devices)))
        timeout = orchestration.timeout
        tasks = [
            Task(
                functools.partial(
                    self._train_unit, group, device, share, settings, job, timeout, budget
                ),
                allowance=self.allowance(group, device, timeout),
                tag=group,
            )
            for group, device, share in units
        ]
        for finished in self._supervisor.run(tasks, job.stop_event, workers, threads):
            yield from _outcomes(finished)

    def allowance(self, group: Sequence[Candidate], device: torch.device, timeout: float) -> float:
        """Seconds after its start at which a unit is given up: its timeout plus a grace."""
        return stuck_after(unit_timeout(timeout, group, device))

    def _workers(
        self, units: int, devices: Sequence[torch.device], orchestration: OrchestrationSettings
    ) -> tuple[int, int]:
        """Workers and threads each, cut to what the machine can run (said once per cut)."""
        workers, threads = plan_workers(
            units, devices, orchestration.workers, orchestration.threads_per_worker
        )
        workers, threads, message = bound_threads(workers, threads, usable_cores())
        if message is not None and message not in self._warned:
            self._warned.add(message)
            logger.warning(message)
        return workers, threads

    def _plan(
        self,
        candidates: Sequence[Candidate],
        job: EvaluationJob,
        devices: Sequence[torch.device],
        group_size: int,
        units: list[Unit],
    ) -> Iterator[Outcome]:
        """Fills ``units`` with what to train, costliest first; yields candidates stuck in planning.

        Planning reads each genome's shapes (its cost, and with groups its
        signature), which calls registered builders: user code, so it runs on
        the workers under the candidate's deadline, not on the run's thread.
        """
        task = job.task
        orchestration = job.settings.orchestration
        grouping = group_size > 1
        tasks = [
            Task(
                functools.partial(self._measure, candidate, task, grouping),
                allowance=stuck_after(orchestration.timeout),
                tag=[candidate],
            )
            for candidate in candidates
        ]
        workers, threads = self._workers(len(tasks), devices, orchestration)
        measured: dict[int, tuple[Any, int]] = {}
        planned: list[Candidate] = []
        for finished in self._supervisor.run(tasks, job.stop_event, workers, threads):
            (candidate,) = finished.task.tag
            if finished.stuck:
                yield from _outcomes(finished)
                continue
            planned.append(candidate)
            # One that raised: no group and no cost; its own training reports the error.
            measured[candidate.index] = (None, 0) if finished.error else finished.value
        planned.sort(key=lambda c: c.index)
        if not grouping:
            costs = {index: cost for index, (_, cost) in measured.items()}
            order = sorted(planned, key=lambda c: -costs[c.index])  # longest first
            placed = assign_devices(order, devices)
            units.extend(([c], device, 0.0) for c, device in zip(order, placed, strict=True))
            return
        plans = [measured[c.index][0] for c in planned]
        # Exact groups on the CPU: each member computes the bits it computes alone. On a
        # GPU, looser groups of any widths: more members per launch, rounding aside.
        features = math.prod(task.input_shape)
        exact = devices[0].type == "cpu"
        groups = self._grouper.groups(planned, plans, group_size, features, exact=exact)
        groups.sort(key=lambda pair: len(pair[0]), reverse=True)  # the biggest first
        logger.info(
            "Generation %d: %d candidates in groups of %s",
            candidates[0].generation if candidates else -1,
            len(candidates),
            [len(g) for g, _ in groups],
        )
        units.extend(
            (group, devices[i % len(devices)], share) for i, (group, share) in enumerate(groups)
        )

    def _measure(self, candidate: Candidate, task: DataTask, grouping: bool) -> tuple[Any, int]:
        """The candidate's layers as a group sees them (None alone) and its cost in MACs."""
        plan = None
        if grouping:
            plan = self._grouper.member_plan(candidate, task.input_shape, task.n_classes)
        return plan, estimated_macs(candidate.layers, task.input_shape, task.n_classes)

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
        started = time.monotonic()
        if job.stop_event.is_set():
            return [Outcome(c, stopped=True) for c in group]
        deadline = started + unit_timeout(timeout, group, device)
        try:
            data = job.data_cache.get(job.task, device, settings.validation_fraction)
            with self._stream(device):
                stop = job.stop_event.is_set
                return train_group(
                    group, data, settings, stop, deadline, started, padded_share, budget
                )
        # BaseException: a candidate's SystemExit or KeyboardInterrupt (raised by its
        # own code: signals reach only the main thread) must not end the run either.
        except BaseException as error:  # noqa: BLE001
            return [failed_outcome(c, error, time.monotonic() - started) for c in group]

    def _stream(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        # One CUDA stream per worker thread lets candidates on one GPU overlap.
        if device.type != "cuda":
            return contextlib.nullcontext()
        streams = self._local.__dict__.setdefault("streams", {})
        if device not in streams:
            streams[device] = torch.cuda.Stream(device)
        return torch.cuda.stream(streams[device])

    def close(self) -> None:
        """Lets the worker threads end; candidates still queued are cancelled."""
        self._supervisor.close()


def unit_timeout(timeout: float, group: Sequence[Candidate], device: torch.device) -> float:
    """Seconds a task may train before it times out.

    On the CPU a group's members share the cores, so it gets each one's
    timeout; on a GPU a group trains in about one candidate's time.
    """
    return timeout * (len(group) if device.type == "cpu" else 1)


def _outcomes(finished: Finished) -> list[Outcome]:
    """The outcome of each candidate of a task that ended, raised or was given up."""
    group: list[Candidate] = finished.task.tag
    if finished.stuck and finished.stopped:
        return [Outcome(c, stopped=True, seconds=finished.seconds) for c in group]
    if finished.stuck:
        reason = (
            f"did not return within {finished.task.allowance:g} s; "
            "its thread may linger until the op returns"
        )
        return [Outcome(c, failure=reason, seconds=finished.seconds) for c in group]
    if finished.error is not None:
        return [failed_outcome(c, finished.error, finished.seconds) for c in group]
    outcomes: list[Outcome] = finished.value
    return outcomes
