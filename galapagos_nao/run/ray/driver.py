"""The Ray backend: each candidate trains as one task on a Ray cluster.

Chosen with ``gn.Parameters.put(gn.orchestration, {"backend": "ray"})``; everything
else (Selection, Library, Parameters, ``Run``, log lines) behaves as with the local
threads, because the workers run the same :func:`~galapagos_nao.run.train.train_candidate`
and failures go through the same :func:`~galapagos_nao.run.train.failed_outcome`.

Connection: :func:`~galapagos_nao.run.ray.connection.connect` reuses this
process's Ray, joins the cluster ``ray_address`` or ``RAY_ADDRESS`` names, or starts
a local one; it is re-exported here with ``disconnect`` and ``import_ray``.

What travels: the task's arrays go into the object store once per run (workers
keep one copy per process); each task carries its candidate (genome, seed,
origins, parent id), the parent's weights (put once per parent per generation),
the training settings and any layer types the user registered; it returns the
trained record with CPU weights and the log records it produced, which are
replayed on the driver's ``galapagos_nao`` loggers.

Faults: a task that raises, times out or whose worker dies is retried up to
``max_retries`` times, then dropped with a logged reason. Stopping the run
cancels its outstanding tasks.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from galapagos_nao.config.settings import OrchestrationSettings
from galapagos_nao.core.datasets import Task
from galapagos_nao.core.extras import MISSING_RAY, check_ray_installed
from galapagos_nao.core.training import (
    CandidateFailure,
    CandidateTimeout,
    NonFiniteLoss,
    TrainSettings,
)
from galapagos_nao.run.log_relay import replay
from galapagos_nao.run.ray.connection import connect, disconnect, import_ray
from galapagos_nao.run.ray.group_tasks import evaluate_groups, ray_group_size, run_group_task
from galapagos_nao.run.ray.worker import (
    STARTED,
    TaskRequest,
    TaskResult,
    custom_layer_types,
    run_candidate_task,
    task_arrays,
)
from galapagos_nao.run.records import Candidate, EvaluationJob, Outcome
from galapagos_nao.run.train import failed_outcome

__all__ = [
    "MISSING_RAY",
    "TASK_NAME",
    "RayEvaluator",
    "check_ray_installed",
    "connect",
    "disconnect",
    "import_ray",
]

logger = logging.getLogger("galapagos_nao.run.ray.driver")

#: Prefix of every candidate task's name; Ray titles the worker process ``ray::<name>``.
TASK_NAME = "gn-candidate"
#: Seconds between checks of the stop flag and the deadlines while tasks run.
POLL_SECONDS = 0.2
#: Seconds past ``timeout`` after which a task that has not answered is killed.
#: Training ends itself at ``timeout`` (checked every batch); this only catches a
#: worker stuck outside Python, so it is generous.
HARD_TIMEOUT_GRACE = 30.0


@dataclass
class _Attempt:
    """One submission of a candidate."""

    candidate: Candidate
    number: int  # 1 for the first try
    submitted: float
    started: float | None = None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


class RayEvaluator:
    """Trains each candidate as one Ray task (see the module docstring).

    Args:
        address: The cluster to join when Ray is not initialised yet; None uses
            ``RAY_ADDRESS`` or starts a local Ray.

    Raises:
        ImportError: naming the ``galapagos-nao[ray]`` extra when Ray is missing.
    """

    def __init__(self, *, address: str | None = None) -> None:
        self._ray = import_ray()
        self._address = address
        self._remote: Any = None
        self._group_remote: Any = None
        # id(task) -> (task, its ref): the task is held so its id is not reused.
        self._task_refs: dict[int, tuple[Task, Any]] = {}

    # -- per run -----------------------------------------------------------------

    def _task_ref(self, task: Task) -> Any:
        entry = self._task_refs.get(id(task))
        if entry is None or entry[0] is not task:
            entry = (task, self._ray.put(task_arrays(task)))
            self._task_refs[id(task)] = entry
        return entry[1]

    def _remote_function(self) -> Any:
        if self._remote is None:
            # Retries are the driver's, so each one is counted and logged. Workers
            # are reused, GPU ones too (their CUDA context and data copy are the
            # expensive part): the task picks the GPU Ray gave it (ray_tasks).
            self._remote = self._ray.remote(max_retries=0)(run_candidate_task)
        return self._remote

    # -- per generation ------------------------------------------------------------

    def evaluate(self, candidates: Sequence[Candidate], job: EvaluationJob) -> Iterator[Outcome]:
        """Submits every candidate as a task and yields outcomes as they finish."""
        if not candidates:
            return
        connect(self._address)
        section = job.settings.orchestration
        settings = job.settings.training.train_settings()
        unfit = self._unfit_reason(section, settings)
        if unfit is not None:
            for candidate in candidates:
                yield failed_outcome(candidate, CandidateFailure(unfit), 0.0)
            return
        group_size = ray_group_size(settings, section)
        if group_size > 1:  # whole groups per task: what a GPU worker is for
            if self._group_remote is None:
                self._group_remote = self._ray.remote(max_retries=0)(run_group_task)
            yield from evaluate_groups(
                self._ray,
                self._group_remote,
                self._task_ref(job.task),
                candidates,
                job,
                settings,
                group_size,
            )
            return
        submit = self._submitter(candidates, job, section, settings)
        pending: dict[Any, _Attempt] = {}
        try:
            for candidate in candidates:
                yield from self._submit_or_fail(
                    submit, _Attempt(candidate, 1, time.monotonic()), pending
                )
            yield from self._collect(pending, submit, job, section)
        finally:
            self._cancel(pending, force=False)

    def _submitter(
        self,
        candidates: Sequence[Candidate],
        job: EvaluationJob,
        section: OrchestrationSettings,
        settings: TrainSettings,
    ) -> Any:
        """A function ``attempt -> task`` for this generation's candidates."""
        ray = self._ray
        task_ref = self._task_ref(job.task)
        parent_refs: dict[str, Any] = {}  # parent id -> its weights, put once per generation
        for candidate in candidates:
            weights = candidate.inherited_weights
            if weights is not None and candidate.parent is not None:
                parent_id = candidate.parent.id
                if parent_id not in parent_refs:
                    parent_refs[parent_id] = ray.put(dict(weights))
        threads = section.threads_per_worker
        threads = threads if isinstance(threads, int) else max(1, int(section.num_cpus))
        layer_types = custom_layer_types(c.layers for c in candidates)
        log_level = logging.getLogger("galapagos_nao").getEffectiveLevel()
        remote = self._remote_function()

        def submit(attempt: _Attempt) -> Any:
            candidate = attempt.candidate
            parent = candidate.parent
            shipped = candidate
            if parent is not None:
                shipped = dataclasses.replace(candidate, parent=parent.replace(weights=None))
            request = TaskRequest(
                shipped, settings, section.timeout, threads, log_level, layer_types
            )
            weights_ref = parent_refs.get(parent.id) if parent is not None else None
            return remote.options(
                num_cpus=section.num_cpus,
                num_gpus=section.num_gpus,
                num_returns="streaming",
                name=f"{TASK_NAME}-g{candidate.generation}-c{candidate.index}",
            ).remote(request, [task_ref, weights_ref])

        return submit

    def _unfit_reason(self, section: OrchestrationSettings, settings: TrainSettings) -> str | None:
        """Why no node could run the tasks as asked, or None."""
        if settings.device.startswith("cuda") and section.num_gpus == 0:
            return (
                f"training.device is {settings.device!r} but orchestration.num_gpus is 0: "
                "Ray gives the task no GPU"
            )
        nodes = [n.get("Resources", {}) for n in self._ray.nodes() if n.get("Alive")]
        asked = (("num_cpus", section.num_cpus, "CPU"), ("num_gpus", section.num_gpus, "GPU"))
        for key, amount, resource in asked:
            largest = max((n.get(resource, 0.0) for n in nodes), default=0.0)
            if amount > largest:
                return (
                    f"orchestration.{key} is {amount} but the largest Ray node has "
                    f"{largest:g} {resource}"
                )
        return None

    def _submit_or_fail(
        self, submit: Any, attempt: _Attempt, pending: dict[Any, _Attempt]
    ) -> Iterator[Outcome]:
        try:
            task = submit(attempt)
        except Exception as error:  # e.g. a custom layer that cannot be serialised
            yield failed_outcome(attempt.candidate, error, 0.0)
            return
        pending[task] = attempt

    def _collect(
        self,
        pending: dict[Any, _Attempt],
        submit: Any,
        job: EvaluationJob,
        section: OrchestrationSettings,
    ) -> Iterator[Outcome]:
        """Waits on the tasks, yielding each candidate's final outcome."""
        ray = self._ray
        hard_limit = section.timeout + HARD_TIMEOUT_GRACE
        attempts = section.max_retries + 1
        while pending:
            if job.stop_event.is_set():
                yield from self._stop(pending)
                return
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_SECONDS)
            for task in ready:
                attempt = pending.pop(task)
                item, error = self._next_item(task)
                if isinstance(item, str) and item == STARTED:
                    attempt.started = time.monotonic()
                    pending[task] = attempt
                elif isinstance(item, TaskResult):
                    yield self._success(attempt.candidate, item)
                else:
                    yield from self._retry_or_drop(attempt, error, attempts, submit, pending, job)
            yield from self._kill_overdue(pending, hard_limit, attempts, submit, job)

    def _next_item(self, task: Any) -> tuple[Any, BaseException | None]:
        try:
            return self._ray.get(next(task)), None
        except StopIteration:
            return None, CandidateFailure("the task ended without a result")
        except Exception as error:
            return None, error

    def _success(self, candidate: Candidate, result: TaskResult) -> Outcome:
        replay(result.logs)
        network = result.network.replace(weights=result.weights)
        return Outcome(candidate, network=network, seconds=result.seconds)

    def _retry_or_drop(
        self,
        attempt: _Attempt,
        error: BaseException | None,
        attempts: int,
        submit: Any,
        pending: dict[Any, _Attempt],
        job: EvaluationJob,
    ) -> Iterator[Outcome]:
        cause, retry = self._explain(error)
        seconds = time.monotonic() - (attempt.started or attempt.submitted)
        candidate = attempt.candidate
        if job.stop_event.is_set():
            yield Outcome(candidate, stopped=True, seconds=seconds)
            return
        if retry and attempt.number < attempts:
            logger.warning(
                "Candidate %d of generation %d failed on attempt %d of %d (%s); retrying",
                candidate.index,
                candidate.generation,
                attempt.number,
                attempts,
                _reason(cause),
            )
            yield from self._submit_or_fail(
                submit, _Attempt(candidate, attempt.number + 1, time.monotonic()), pending
            )
            return
        yield failed_outcome(candidate, cause, seconds)

    def _explain(self, error: BaseException | None) -> tuple[BaseException, bool]:
        """The error to report for a failed task, and whether a retry may help."""
        exceptions = self._ray.exceptions
        if error is None:
            return CandidateFailure("the task failed without an error"), True
        if isinstance(error, exceptions.RayTaskError):
            cause = error.cause if isinstance(error.cause, BaseException) else error
            # The same seed on the same data gives the same NaN: retrying cannot help.
            return cause, not isinstance(cause, NonFiniteLoss)
        if isinstance(error, exceptions.RayError):  # the worker or its node died, ...
            return CandidateFailure(f"{type(error).__name__}: {_first_line(error)}"), True
        return error, True

    def _kill_overdue(
        self,
        pending: dict[Any, _Attempt],
        hard_limit: float,
        attempts: int,
        submit: Any,
        job: EvaluationJob,
    ) -> Iterator[Outcome]:
        now = time.monotonic()
        overdue = [
            t for t, a in pending.items() if a.started is not None and now - a.started > hard_limit
        ]
        for task in overdue:
            attempt = pending.pop(task)
            self._ray.cancel(task, force=True)  # kills the stuck worker process
            error = CandidateTimeout(f"no answer {hard_limit:.0f}s after the task started; killed")
            yield from self._retry_or_drop(attempt, error, attempts, submit, pending, job)

    def _stop(self, pending: dict[Any, _Attempt]) -> Iterator[Outcome]:
        now = time.monotonic()
        attempts = list(pending.values())
        self._cancel(pending, force=False)
        for attempt in attempts:
            seconds = now - (attempt.started or attempt.submitted)
            yield Outcome(attempt.candidate, stopped=True, seconds=seconds)

    def _cancel(self, pending: dict[Any, _Attempt], *, force: bool) -> None:
        for task in list(pending):
            try:
                self._ray.cancel(task, force=force)
            except Exception as error:  # already finished, or Ray is shutting down
                logger.debug("Cancelling a task failed: %s", error)
        pending.clear()

    def close(self) -> None:
        """Releases the run's data in the object store.

        Tasks are cancelled when :meth:`evaluate` ends, however it ends. The Ray
        connection stays (see :func:`disconnect`): starting Ray again for the next
        run would cost seconds, and a cluster it joined is not its own.
        """
        self._task_refs.clear()


def _reason(error: BaseException) -> str:
    if isinstance(error, CandidateFailure):
        return str(error)
    return f"{type(error).__name__}: {_first_line(error)}"
