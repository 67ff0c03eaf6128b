"""A run's place in a task stream: when it moves on, what it trains on, and what it retained.

The generation loop asks its :class:`TaskStream` for the task at the start of
each generation (:meth:`TaskStream.begin_generation`) and tells it when a
generation completed (:meth:`TaskStream.end_generation`); a switch therefore
only ever happens between generations. At a switch the stream

1. measures the best elite on every task's test split (a row of ``R``) unless
   the task just left already has its row,
2. keeps a class-balanced replay sample of that task (``training.replay``),
3. re-scores every elite and queued record on the new fitness (without
   training), so that no cell keeps a score measured on data it no longer means.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.settings import Settings
from galapagos_nao.core.checks import check_int, describe
from galapagos_nao.core.continual import ReplayMemory, TaskMetrics, training_task
from galapagos_nao.core.datasets import Task, check_stream
from galapagos_nao.core.device_data import DeviceDataCache, resolve_device
from galapagos_nao.core.network import Network, build
from galapagos_nao.core.training import accuracy

__all__ = ["TaskStream"]

logger = logging.getLogger("galapagos_nao.run")


class TaskStream:
    """The tasks a run moves through and its position in them; thread-safe.

    Args:
        tasks: The stream (checked with ``datasets.check_stream``).
        generations_per_task: Generations on each task before moving on; None
            moves only on :meth:`switch_to`.
        cycle: After the last task, start again from the first (else stay on it).
    """

    def __init__(
        self, tasks: Sequence[Task], *, generations_per_task: int | None = None, cycle: bool = False
    ) -> None:
        self.tasks = check_stream(tasks)
        if generations_per_task is not None:
            check_int("generations_per_task", generations_per_task, minimum=1)
        if not isinstance(cycle, bool):
            raise ValueError(f"cycle must be True or False, got {describe(cycle)}")
        self.generations_per_task = generations_per_task
        self.cycle = cycle
        self._lock = threading.Lock()
        self._position = 0
        self._on_task = 0  # generations completed on the current task
        self._measured = False  # whether the current task's row of R is recorded
        self._learned: list[int] = []  # positions left behind, in order
        self._trained: list[int] = []
        self._rows: list[tuple[float, ...]] = []
        self._memory = ReplayMemory()
        self._pending: int | None = None
        self._built: tuple[tuple[Any, ...], Task] | None = None

    # -- what users see ------------------------------------------------------------

    @property
    def position(self) -> int:
        """Index of the current task in :attr:`tasks`."""
        with self._lock:
            return self._position

    @property
    def current(self) -> Task:
        """The task being learned."""
        with self._lock:
            return self.tasks[self._position]

    def describe(self) -> str:
        """``task 2/5 'split-mnist 2,3'`` for the Run's repr."""
        with self._lock:
            task = self.tasks[self._position]
            return f"task {self._position + 1}/{len(self.tasks)} {task.name!r}"

    def metrics(self) -> TaskMetrics:
        """``R`` with ACC and BWT so far (a snapshot)."""
        with self._lock:
            return TaskMetrics(
                tuple(t.name for t in self.tasks), tuple(self._trained), tuple(self._rows)
            )

    def replay_size(self) -> int:
        """Samples in the replay memory."""
        with self._lock:
            return len(self._memory)

    def switch_to(self, task: Task) -> None:
        """Moves to ``task`` at the start of the next generation.

        A task of the stream (the same object) is moved to; any other task is
        appended to the stream first, checked like the stream's own.

        Raises:
            ValueError: if ``task`` is not a Task or does not fit the stream.
        """
        with self._lock:
            for index, known in enumerate(self.tasks):
                if known is task:
                    self._pending = index
                    return
            self.tasks = check_stream([*self.tasks, task])
            self._pending = len(self.tasks) - 1
            # R gains a column: earlier rows did not measure the new task (NaN).
            self._rows = [(*row, float("nan")) for row in self._rows]

    # -- what the loop calls ---------------------------------------------------------

    def begin_generation(
        self, selection: Selection, settings: Settings, cache: DeviceDataCache
    ) -> Task:
        """Switches if it is time (re-scoring the archive), then returns the task to train on."""
        with self._lock:
            target = self._next_position()
            if target is not None:
                self._switch(target, selection, settings, cache)
            return self._training_task(settings)

    def end_generation(
        self, selection: Selection, settings: Settings, cache: DeviceDataCache
    ) -> None:
        """Counts a completed generation; measures a row of ``R`` when the task's time is up."""
        with self._lock:
            self._on_task += 1
            if self._on_task == self.generations_per_task and not self._measured:
                self._measure(selection, settings, cache)

    def _next_position(self) -> int | None:
        if self._pending is not None:
            target, self._pending = self._pending, None
            return target
        if self.generations_per_task is None or self._on_task < self.generations_per_task:
            return None
        if self._position + 1 < len(self.tasks):
            return self._position + 1
        return 0 if self.cycle and len(self.tasks) > 1 else None

    def _switch(
        self, target: int, selection: Selection, settings: Settings, cache: DeviceDataCache
    ) -> None:
        if not self._measured and self._on_task:
            self._measure(selection, settings, cache)
        replay = settings.training.replay
        if replay and self._position not in self._memory.tasks():
            fraction = settings.training.validation_fraction
            self._memory.add(self._position, self.tasks[self._position], replay, fraction)
        logger.info(
            "Task stream: %r → %r after %d generations%s",
            self.tasks[self._position].name,
            self.tasks[target].name,
            self._on_task,
            f", replay memory {len(self._memory)} samples" if replay else "",
        )
        if self._position not in self._learned:
            self._learned.append(self._position)
        self._position, self._on_task, self._measured = target, 0, False
        self._rescore(selection, self._training_task(settings), settings, cache)

    def _training_task(self, settings: Settings) -> Task:
        # Rebuilt only when what it is made of changes, so device copies are reused.
        fraction = settings.training.validation_fraction
        seen = sorted(self._learned)
        balanced = settings.training.replay_mixing == "balanced"
        key = (
            self._position,
            tuple(seen),
            tuple(self._memory.tasks()),
            fraction,
            balanced,
            len(self.tasks),
        )
        if self._built is None or self._built[0] != key:
            memory = self._memory if settings.training.replay else ReplayMemory()
            if len(memory) and settings.orchestration.backend == "ray":
                # Ray workers receive plain tasks: they would carve their own validation
                # split out of the replay data and score the current task only.
                raise RuntimeError(
                    "training.replay with orchestration.backend 'ray' is not supported yet; "
                    "use the 'threads' backend or replay 0"
                )
            task = training_task(
                self.tasks, self._position, seen, memory, fraction, balanced=balanced
            )
            self._built = (key, task)
        return self._built[1]

    def _rescore(
        self, selection: Selection, task: Task, settings: Settings, cache: DeviceDataCache
    ) -> None:
        """Every elite and queued record with metrics gets its val/test accuracy on ``task``."""
        training = settings.training
        data = cache.get(task, resolve_device(training.device), training.validation_fraction)
        precision = training.precision
        elites = {cell: _scored(n, data, precision) for cell, n in selection.elites().items()}
        queue = {key: _scored(n, data, precision) for key, n in selection.queued().items()}
        selection.restore(elites, queue)

    def _measure(self, selection: Selection, settings: Settings, cache: DeviceDataCache) -> None:
        """Appends a row of ``R``: the fittest elite's test accuracy on every task."""
        elites = [net for net in selection.elites().values() if net.weights is not None]
        if not elites:
            return
        best = max(elites, key=lambda net: -1.0 if net.fitness is None else net.fitness)
        model = _model(best)
        training = settings.training
        device = resolve_device(training.device)
        model.to(device)
        row = []
        for task in self.tasks:
            data = cache.get(task, device, training.validation_fraction)
            row.append(accuracy(model, data.x_test, data.y_test, precision=training.precision))
        self._rows.append(tuple(row))
        self._trained.append(self._position)
        self._measured = True

    # -- checkpoints -------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """JSON-ready: position, counters, the replay memory and ``R``; the tasks by name."""
        with self._lock:
            return {
                "tasks": [{"name": t.name, "n_train": t.n_train} for t in self.tasks],
                "generations_per_task": self.generations_per_task,
                "cycle": self.cycle,
                "position": self._position,
                "on_task": self._on_task,
                "measured": self._measured,
                "learned": list(self._learned),
                "replay": self._memory.as_dict(),
                "metrics": TaskMetrics(
                    tuple(t.name for t in self.tasks), tuple(self._trained), tuple(self._rows)
                ).as_dict(),
            }

    @classmethod
    def from_state(cls, state: Any, tasks: Sequence[Task]) -> TaskStream:
        """The stream a checkpoint recorded, continued over ``tasks`` (the same stream).

        Raises:
            ValueError: naming what does not match: the number of tasks, a task's
                name or size, or a damaged field of the state.
        """
        if not isinstance(state, Mapping):
            raise ValueError(f"stream state must be a JSON object, got {describe(state)}")
        tasks = check_stream(tasks)
        recorded = state.get("tasks")
        if not isinstance(recorded, list) or len(recorded) != len(tasks):
            count = len(recorded) if isinstance(recorded, list) else recorded
            raise ValueError(
                f"tasks: the checkpointed run was on a stream of {count} tasks, got {len(tasks)}"
            )
        for index, (entry, task) in enumerate(zip(recorded, tasks, strict=True)):
            expected = {"name": task.name, "n_train": task.n_train}
            if entry != expected:
                raise ValueError(f"tasks[{index}] is {expected} but the checkpoint has {entry}")
        stream = cls(
            tasks,
            generations_per_task=state.get("generations_per_task"),
            cycle=state.get("cycle", False),
        )
        position = check_int("stream position", state.get("position"), minimum=0)
        on_task = check_int("stream on_task", state.get("on_task"), minimum=0)
        if position >= len(tasks):
            raise ValueError(f"stream position {position} is past the {len(tasks)} tasks")
        metrics = TaskMetrics.from_dict(state.get("metrics"), len(tasks))
        stream._position, stream._on_task = position, on_task
        stream._measured = bool(state.get("measured"))
        learned = state.get("learned")
        if not isinstance(learned, list) or not all(
            isinstance(p, int) and 0 <= p < len(tasks) for p in learned
        ):
            raise ValueError(f"stream learned must list task positions, got {describe(learned)}")
        stream._learned = list(learned)
        stream._memory = ReplayMemory.from_dict(state.get("replay"), tasks)
        stream._trained, stream._rows = list(metrics.trained), list(metrics.matrix)
        return stream


def _model(net: Network) -> torch.nn.Module:
    """``net``'s layers and weights without its input transform: stream data is standardized."""
    model = build(net.layers, net.input_shape, net.n_classes)
    if net.weights is not None:
        model.load_state_dict(dict(net.weights))
    return model


def _scored(net: Network, data: Any, precision: str) -> Network:
    if net.weights is None or net.fitness is None:
        return net  # an unevaluated record has no score to go stale
    model = _model(net).to(data.device)
    val = accuracy(model, data.x_val, data.y_val, precision=precision, groups=data.val_groups)
    test = accuracy(model, data.x_test, data.y_test, precision=precision, groups=data.test_groups)
    return net.replace(val_acc=val, test_acc=test)
