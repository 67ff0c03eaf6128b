"""The generation loop: a :class:`Run` evolves a Selection on a background thread.

Each generation reads one Parameters snapshot (typed: :class:`Settings`), breeds children from every
network in the Selection (elites plus the unevaluated queue; a lone parent is
cloned ``generation_size`` times first), trains them through an evaluator, and
lets the Selection keep the fittest per cell. The run's hooks (``Run.hooks``,
given when it is made; see :mod:`galapagos_nao.run.hooks`) see a
:class:`GenerationReport` after each generation; logs go to the
``galapagos_nao`` logger only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager

import numpy as np

from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.config.settings import Settings
from galapagos_nao.core.bindings import Viewable
from galapagos_nao.core.clock import (
    BREEDING,
    SELECTION,
    Stamp,
    SteeringClock,
    holding,
    in_order,
)
from galapagos_nao.core.continual import TaskMetrics
from galapagos_nao.core.datasets import Task, default_task
from galapagos_nao.core.device_data import DeviceDataCache
from galapagos_nao.core.listeners import Listeners
from galapagos_nao.run.failures import GenerationsFailing, Retries
from galapagos_nao.run.generation import (
    bred_from,
    breed_within,
    make_evaluator,
    nothing_to_breed,
)
from galapagos_nao.run.records import CANDIDATE_LOGGER, EvaluationJob, Evaluator, Outcome
from galapagos_nao.run.reports import CandidateHook, GenerationHook, GenerationReport, RunStatus
from galapagos_nao.run.stream import TaskStream
from galapagos_nao.run.waiting import Waiting

__all__ = ["CandidateHook", "GenerationHook", "GenerationReport", "Run", "RunStatus"]

logger = logging.getLogger("galapagos_nao.run")
candidate_logger = logging.getLogger(CANDIDATE_LOGGER)


class Run(Waiting, Viewable):
    """A handle on evolution running on a background daemon thread.

    Made and started by ``evolve`` / ``evolve_continual`` / resume (one
    preparation path, :mod:`galapagos_nao.run.api`); do not build directly.

    Attributes:
        generations: Generations to run, or None for a continual run.
        selection: The archive it evolves.
        parameters: The settings each generation snapshots.
        seed: The seed it runs with: the one given, else ``training.seed``, else
            one drawn from fresh entropy when it starts (so it can be recorded).
        hooks: Called with each generation's report, in order (history,
            lineage, checkpoint, then the caller's).
        candidate_hooks: Called with each candidate's outcome as it completes.
        stream: The task stream it moves through, or None for one task.

    ``on_task`` (a constructor argument) is called on the run's thread with the
    task it resolved, before the first generation (the session checks it
    against the experiment's).
    """

    def __init__(
        self,
        *,
        generations: int | None,
        task: Task | None,
        selection: Selection,
        parameters: Parameters,
        evaluator: Evaluator | None = None,
        seed: int | None = None,
        generation_offset: int = 0,
        rng: np.random.Generator | None = None,
        hooks: Iterable[GenerationHook] = (),
        candidate_hooks: Iterable[CandidateHook] = (),
        stream: TaskStream | None = None,
        on_task: Callable[[Task], None] | None = None,
    ) -> None:
        self.generations = generations
        self.stream = stream
        self.selection = selection
        self.parameters = parameters
        self.seed = seed
        self.hooks: list[GenerationHook] = list(hooks)
        self.candidate_hooks: list[CandidateHook] = list(candidate_hooks)
        #: Told ``("stop", {})`` and ``("switch_task", {"task"})`` (the session journal listens).
        self.listeners = Listeners()
        self._task = task
        # Told the task the run resolved, on its thread, before the first generation.
        self._on_task = on_task
        self._evaluator = evaluator
        self._rng = rng
        self._generation_offset = generation_offset
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._state = "starting"
        self._completed = 0
        self._evaluated = 0
        self._failed = 0
        self._error: BaseException | None = None
        self._started = time.monotonic()
        self._ended: float | None = None
        # Waits use this event, not Thread.join: a Ctrl-C inside Thread.join can
        # leave the thread marked as ended while it still runs.
        self._ended_event = threading.Event()
        self._retries = Retries(self._stop_event)
        self._data_cache = DeviceDataCache()
        self._thread = threading.Thread(target=self._main, name="gn-run", daemon=True)

    # -- control ---------------------------------------------------------------

    def start(self) -> Run:
        """Starts the background thread (done by evolve).

        Raises:
            RuntimeError: if the run was started before; a run runs once.
        """
        if self._thread.ident is not None:
            raise RuntimeError(
                "this run was already started; a run runs once: start another with "
                "gn.evolve(...), or continue this one's archive with gn.evolve_continual(None)"
            )
        self.selection.claim(self)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Asks the run to stop: candidates in training end at their next batch.

        The generation in flight is not selected; one not yet bred does not start.
        """
        with holding(self._clocks()):  # the stop lands wholly before or after a boundary
            with self._lock:
                if self._state in ("starting", "running"):
                    self._state = "stopping"
            self._stop_event.set()
            self.listeners.notify("stop", {})

    def status(self) -> RunStatus:
        """A consistent snapshot of the run's progress."""
        elites = self.selection.elites()
        accuracies = [n.test_acc for n in elites.values() if n.test_acc is not None]
        with self._lock:
            end = self._ended if self._ended is not None else time.monotonic()
            last = self._generation_offset + self._completed - 1
            return RunStatus(
                state=self._state,
                generation=last if last >= 0 else None,
                completed=self._completed,
                generations=self.generations,
                evaluated=self._evaluated,
                failed=self._failed,
                best_test_acc=max(accuracies, default=None),
                elapsed=end - self._started,
                error=self._error,
            )

    def switch_task(self, task: Task) -> None:
        """Moves to ``task`` at the next generation (see ``TaskStream.switch_to``).

        Raises:
            ValueError: if this run has no task stream or ``task`` does not fit it.
        """
        if self.stream is None:
            raise ValueError("switch_task: this run has no task stream; start it with tasks=[...]")
        with holding(self._clocks()):  # read at the next breeding boundary: stamped with it
            self.stream.switch_to(task)
            self.listeners.notify("switch_task", {"task": task})

    def task_metrics(self) -> TaskMetrics | None:
        """The accuracy matrix R with ACC and BWT so far; None for a run without a stream."""
        return None if self.stream is None else self.stream.metrics()

    @property
    def first_generation(self) -> int:
        """The archive generation this run started at (0 unless the archive had some)."""
        return self._generation_offset

    @property
    def generation(self) -> int:
        """Index of the generation to run next, counting any resumed ones."""
        with self._lock:
            return self._generation_offset + self._completed

    def __repr__(self) -> str:
        s = self.status()
        total = "∞" if s.generations is None else str(s.generations)
        best = "-" if s.best_test_acc is None else f"{s.best_test_acc:.3f}"
        minutes, seconds = divmod(int(s.elapsed), 60)
        task = "" if self.stream is None else f"{self.stream.describe()}, "
        # The archive's generation (as everywhere), then this run's count against its total.
        done = "-" if s.generation is None else str(s.generation)
        return (
            f"<Run {s.state}: {task}generation {done} (this run {s.completed}/{total}), "
            f"{s.evaluated} evaluated, {s.failed} failed, best test_acc {best}, "
            f"{minutes:02d}:{seconds:02d}>"
        )

    # -- the loop ----------------------------------------------------------------

    def _main(self) -> None:
        try:
            with self._lock:
                if self._state == "starting":
                    self._state = "running"
            task = self._task
            if task is None:
                task = self.stream.current if self.stream is not None else default_task()
            if self._on_task is not None:
                self._on_task(task)
            seed = self.seed if self.seed is not None else self.parameters.settings().training.seed
            rng = self._rng if self._rng is not None else np.random.default_rng(seed)
            self._rng = rng
            evaluator = (
                self._evaluator if self._evaluator is not None else make_evaluator(self.parameters)
            )
            self._evaluator = evaluator
            try:
                while self._announce_next_generation():
                    self._run_generation(task, rng, evaluator)
            finally:
                evaluator.close()
                self._data_cache.clear()
            final = "stopped" if self._stop_event.is_set() else "finished"
        except GenerationsFailing as error:  # expected: its message says it all
            logger.error("The run stopped: %s", error)
            self._error = error
            final = "failed"
        except BaseException as error:  # noqa: BLE001 - reported through result()
            logger.exception("The run failed: %s", error)
            self._error = error
            final = "failed"
        with self._lock:
            self._state = final
            self._ended = time.monotonic()
        self._ended_event.set()

    def _announce_next_generation(self) -> bool:
        """True if another generation should run; logs the seed's countdown line for it."""
        with self._lock:
            if self._stop_event.is_set() or self._state != "running":
                return False  # a stopped run says nothing more
            if self.generations is not None and self._completed >= self.generations:
                return False
            remaining = (
                "infinity" if self.generations is None else self.generations - self._completed
            )
        if not self._retries.idle:  # a run waiting to breed said so once
            candidate_logger.info("Generations remaining: %s", remaining)
        return True

    @property
    def rng(self) -> np.random.Generator | None:
        """The run's generator (None before the run starts); its state is checkpointable."""
        return self._rng

    def _run_generation(self, task: Task, rng: np.random.Generator, evaluator: Evaluator) -> None:
        started_wall, started = time.time(), time.monotonic()
        generation = self.generation
        # Everything steering can change is read at this boundary, holding the clock.
        with self._boundary(Stamp(generation, BREEDING), Stamp(generation, SELECTION)):
            if self._stop_event.is_set():
                return  # stopped before this generation bred
            # One read: the report keeps the plain snapshot, the generation reads it typed.
            snapshot = self.parameters.snapshot()
            settings = Settings.from_snapshot(snapshot)
            if self.stream is not None:  # switches between generations only, re-scoring
                task = self.stream.begin_generation(self.selection, settings, self._data_cache)
            plan = self.selection.breeding_plan(generation)  # parents, favor, vetoes: one read
        queued = plan.queued
        idle = nothing_to_breed(plan.parents, plan.weights)
        dropped: list[str] = []
        stop = self._stop_event
        candidates = [] if idle else breed_within(plan, rng, settings, generation, stop, dropped)
        if self._stop_event.is_set():
            return  # stopped while breeding: nothing to train or select
        if not candidates:  # the archive keeps its parents and queue; the run waits
            with self._boundary(Stamp(generation, SELECTION), Stamp(generation, BREEDING)):
                pass  # steering meanwhile reaches this generation's next try
            if idle is not None:
                self._retries.nothing_to_breed(generation, idle)
            else:
                self._retries.nothing_bred(generation, dropped)
            return
        job = EvaluationJob(task, settings, self._stop_event, self._data_cache)
        outcomes: list[Outcome] = []
        for outcome in evaluator.evaluate(candidates, job):
            outcomes.append(outcome)
            with self._lock:
                self._evaluated += outcome.network is not None
                self._failed += outcome.failure is not None
            for candidate_hook in list(self.candidate_hooks):
                candidate_hook(outcome)
        outcomes.sort(key=lambda o: o.candidate.index)
        failed_entirely = bool(outcomes) and all(o.network is None for o in outcomes)
        # A generation that failed entirely is tried again: changes meanwhile reach its retry.
        then = Stamp(generation if failed_entirely else generation + 1, BREEDING)
        with self._boundary(Stamp(generation, SELECTION), then):
            if self._stop_event.is_set():
                return  # an interrupted generation is not selected: its results may be partial
            if not failed_entirely:
                # Queued networks that already carry metrics compete as they are.
                pool = [o.network for o in outcomes if o.network is not None]
                pool += [n for n in queued.values() if n.fitness is not None]
                changes = self.selection.select(
                    pool, settings=settings, consumed=bred_from(queued, candidates)
                )
        if failed_entirely:
            limit = settings.orchestration.max_failed_generations
            self._retries.failed(generation, outcomes, limit)
            return  # not selected: the parents and the queue stay for the next try
        self._retries.trained()
        if self.stream is not None:
            self.stream.end_generation(self.selection, settings, self._data_cache)
        report = GenerationReport(
            run=self,
            generation=generation,
            snapshot=snapshot,
            outcomes=tuple(outcomes),
            changes=tuple(changes),
            elites=self.selection.elites(),
            started=started_wall,
            seconds=time.monotonic() - started,
            train_seconds=sum(o.seconds for o in outcomes),
        )
        with self._lock:
            self._completed += 1
        for hook in list(self.hooks):
            hook(report)

    def _clocks(self) -> list[SteeringClock]:
        """The steering clocks of the archive's and the run's Parameters, in a fixed order."""
        return in_order([self.selection.parameters.clock, self.parameters.clock])

    @contextmanager
    def _boundary(self, stamp: Stamp, then: Stamp) -> Iterator[None]:
        """Passes boundary ``stamp`` holding every clock that orders this run's steering."""
        with ExitStack() as stack:
            for clock in self._clocks():
                stack.enter_context(clock.boundary(stamp, then))
            yield
