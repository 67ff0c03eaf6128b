"""Whole groups as Ray tasks: a GPU worker trains a stacked group, not one candidate.

When the group size resolves above 1 (``training.group_size``; ``"auto"`` is
:data:`~galapagos_nao.run.grouped.AUTO_CUDA_GROUP` when tasks get a GPU, else 1),
the driver forms groups the way the local evaluator does
(:class:`~galapagos_nao.run.grouped.Grouper`) and submits each as one task.
The worker runs :func:`~galapagos_nao.run.grouped.train_group` on the group and
sends back one entry per member: its trained record and weights, or why it
failed. A group whose task fails is retried whole, up to ``max_retries`` times,
then each member is dropped with the reason; stopping the run cancels the groups
still out.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from galapagos_nao.config.settings import OrchestrationSettings
from galapagos_nao.core.training import CandidateFailure, NonFiniteLoss, TrainSettings
from galapagos_nao.run.grouped import AUTO_CUDA_GROUP, Grouper, train_group
from galapagos_nao.run.ray import worker
from galapagos_nao.run.records import Candidate, EvaluationJob, Outcome
from galapagos_nao.run.train import failed_outcome

__all__ = ["GroupRequest", "evaluate_groups", "ray_group_size", "run_group_task"]

logger = logging.getLogger("galapagos_nao.run.ray.driver")

#: Prefix of every group task's name.
GROUP_TASK_NAME = "gn-group"
#: Seconds between checks of the stop flag while group tasks run.
POLL_SECONDS = 0.2
#: Seconds past a group's timeout after which its silent task is killed.
HARD_TIMEOUT_GRACE = 30.0


def ray_group_size(settings: TrainSettings, section: OrchestrationSettings) -> int:
    """The largest group a Ray task trains: the setting, ``"auto"`` by whether tasks get a GPU."""
    if settings.group_size != "auto":
        return int(settings.group_size)
    return AUTO_CUDA_GROUP if section.num_gpus > 0 and settings.device != "cpu" else 1


@dataclass(frozen=True)
class GroupRequest:
    """One group's task: its candidates (parents without weights) and how to train them."""

    candidates: tuple[Candidate, ...]
    settings: TrainSettings
    timeout: float
    threads: int
    log_level: int
    padded_share: float
    layer_types: tuple[Any, ...] = ()


def run_group_task(request: GroupRequest, shared: list[Any]) -> Iterator[Any]:
    """The body of a group task: yields ``"started"``, then one entry per member.

    An entry is ``(record without weights, weights, seconds)`` for a trained
    member, or the reason it failed as a string (``"stopped"`` when it was).

    Args:
        request: The group.
        shared: ``[task ref, {parent id: weights ref}]``.
    """
    yield worker.STARTED
    import ray  # present wherever this runs: it is a Ray worker

    torch.set_num_threads(request.threads)
    worker.register_missing(request.layer_types)
    settings = worker.task_settings(request.settings, ray.get_gpu_ids())
    data = worker.data_on_worker(ray, shared[0], settings)
    candidates = []
    for candidate in request.candidates:
        ref = shared[1].get(candidate.parent.id) if candidate.parent is not None else None
        if ref is not None and candidate.parent is not None:
            parent = candidate.parent.replace(weights=ray.get(ref))
            candidate = dataclasses.replace(candidate, parent=parent)
        candidates.append(candidate)
    started = time.monotonic()
    outcomes = train_group(
        candidates,
        data,
        settings,
        lambda: False,
        started + request.timeout * (1 if settings.device.startswith("cuda") else len(candidates)),
        started,
        request.padded_share,
    )
    if settings.device.startswith("cuda"):
        torch.cuda.empty_cache()
    entries: list[Any] = []
    for outcome in outcomes:
        network = outcome.network
        if network is not None and network.weights is not None:
            entries.append((network.replace(weights=None), dict(network.weights), outcome.seconds))
        else:
            entries.append("stopped" if outcome.stopped else outcome.failure or "no result")
    yield entries


@dataclass
class _GroupAttempt:
    group: list[Candidate]
    padded_share: float
    number: int
    started: float | None = None


def evaluate_groups(
    ray: Any,
    remote: Any,
    task_ref: Any,
    candidates: Sequence[Candidate],
    job: EvaluationJob,
    settings: TrainSettings,
    group_size: int,
) -> Iterator[Outcome]:
    """Plans groups, submits each as a task and yields every member's outcome."""
    section = job.settings.orchestration
    planned = Grouper().plan(
        candidates,
        job.task.input_shape,
        job.task.n_classes,
        group_size,
        exact=section.num_gpus == 0,
    )
    parents: dict[str, Any] = {}
    for candidate in candidates:
        weights = candidate.inherited_weights
        if weights is not None and candidate.parent is not None:
            parents.setdefault(candidate.parent.id, ray.put(dict(weights)))
    threads = section.threads_per_worker
    threads = threads if isinstance(threads, int) else max(1, int(section.num_cpus))
    level = logging.getLogger("galapagos_nao").getEffectiveLevel()
    layer_types = worker.custom_layer_types(c.layers for c in candidates)

    def submit(attempt: _GroupAttempt) -> Any:
        shipped = tuple(
            c if c.parent is None else dataclasses.replace(c, parent=c.parent.replace(weights=None))
            for c in attempt.group
        )
        request = GroupRequest(
            shipped, settings, section.timeout, threads, level, attempt.padded_share, layer_types
        )
        first = attempt.group[0]
        return remote.options(
            num_cpus=section.num_cpus,
            num_gpus=section.num_gpus,
            num_returns="streaming",
            name=f"{GROUP_TASK_NAME}-g{first.generation}-c{first.index}-n{len(attempt.group)}",
        ).remote(request, [task_ref, parents])

    pending = {submit(a): a for a in (_GroupAttempt(g, s, 1) for g, s in planned)}
    try:
        yield from _collect(ray, pending, submit, job, section)
    finally:
        for task in list(pending):
            try:
                ray.cancel(task)
            except Exception as error:  # already finished, or Ray is shutting down
                logger.debug("Cancelling a group task failed: %s", error)


def _collect(
    ray: Any,
    pending: dict[Any, _GroupAttempt],
    submit: Any,
    job: EvaluationJob,
    section: OrchestrationSettings,
) -> Iterator[Outcome]:
    while pending:
        if job.stop_event.is_set():
            for attempt in pending.values():
                yield from (Outcome(c, stopped=True) for c in attempt.group)
            return
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_SECONDS)
        for task in ready:
            attempt = pending.pop(task)
            try:
                item: Any = ray.get(next(task))
                error: BaseException | None = None
            except StopIteration:
                item, error = None, CandidateFailure("the group's task ended without a result")
            except Exception as raised:
                item, error = None, raised
            if item == worker.STARTED:
                attempt.started = time.monotonic()
                pending[task] = attempt
            elif isinstance(item, list):
                yield from _members(attempt, item)
            else:
                yield from _retry_or_drop(attempt, error, submit, pending, section)
        now = time.monotonic()
        limit = section.timeout * max(len(a.group) for a in pending.values()) if pending else 0
        for task, attempt in list(pending.items()):
            if attempt.started is not None and now - attempt.started > limit + HARD_TIMEOUT_GRACE:
                del pending[task]
                ray.cancel(task, force=True)
                failure = CandidateFailure("no answer from the group's task past its timeout")
                yield from _retry_or_drop(attempt, failure, submit, pending, section)


def _members(attempt: _GroupAttempt, entries: Sequence[Any]) -> Iterator[Outcome]:
    seconds = time.monotonic() - (attempt.started or time.monotonic())
    size, share = len(attempt.group), attempt.padded_share
    for candidate, entry in zip(attempt.group, entries, strict=True):
        if isinstance(entry, tuple):
            network, weights, trained = entry
            yield Outcome(
                candidate,
                network=network.replace(weights=weights),
                seconds=trained,
                group_size=size,
                padded_share=share,
            )
        elif entry == "stopped":
            yield Outcome(candidate, stopped=True, seconds=seconds, group_size=size)
        else:
            yield Outcome(
                candidate, failure=entry, seconds=seconds, group_size=size, padded_share=share
            )


def _retry_or_drop(
    attempt: _GroupAttempt,
    error: BaseException | None,
    submit: Any,
    pending: dict[Any, _GroupAttempt],
    section: OrchestrationSettings,
) -> Iterator[Outcome]:
    cause = getattr(error, "cause", None) or error or CandidateFailure("the group's task failed")
    retry = not isinstance(cause, NonFiniteLoss) and attempt.number <= section.max_retries
    if retry:
        logger.warning(
            "A group of %d failed on attempt %d (%s); retrying",
            len(attempt.group),
            attempt.number,
            f"{type(cause).__name__}: {cause}",
        )
        again = _GroupAttempt(attempt.group, attempt.padded_share, attempt.number + 1)
        pending[submit(again)] = again
        return
    seconds = time.monotonic() - (attempt.started or time.monotonic())
    for candidate in attempt.group:
        yield failed_outcome(candidate, cause, seconds)
