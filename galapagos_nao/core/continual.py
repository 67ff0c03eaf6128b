"""Continual learning's pure parts: the replay memory, what a run trains on, and R/ACC/BWT.

- :class:`ReplayMemory` keeps, per past task of a stream, the indices of a
  class-balanced sample of that task's training split (never its validation split).
- :func:`training_task` makes what a generation trains on: the current task
  alone (naive fine-tuning), or the current task plus the memory, judged on
  every task seen (a :class:`~galapagos_nao.core.datasets.ReplayTask`).
- :class:`TaskMetrics` is the accuracy matrix ``R`` (row ``i``: after the
  ``i``-th task learned; column ``j``: the stream's task ``j``) with average
  accuracy (ACC) and backward transfer (BWT) as Lopez-Paz & Ranzato (2017) define them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from galapagos_nao.core.checks import check_int, describe
from galapagos_nao.core.datasets import ReplayTask, Task
from galapagos_nao.core.datasets.task import _balanced_indices
from galapagos_nao.core.device_data import split_validation

__all__ = ["ReplayMemory", "TaskMetrics", "training_task"]


class ReplayMemory:
    """Indices into each past task's training data: the samples replayed while learning later ones.

    Not thread-safe on its own: the run's stream owns it under its lock.
    """

    def __init__(self, kept: Mapping[int, Sequence[int]] | None = None) -> None:
        self._kept: dict[int, torch.Tensor] = {
            int(task): torch.as_tensor(list(indices), dtype=torch.int64)
            for task, indices in (kept or {}).items()
        }

    def add(
        self, index: int, task: Task, per_task: int, validation_fraction: float, *, seed: int = 0
    ) -> None:
        """Keeps ``per_task`` samples of ``task`` (stream position ``index``), class-balanced.

        They are drawn from the part of the training data that is not held out for
        validation, so fitness never scores a sample the networks trained on.
        """
        check_int("per_task", per_task, minimum=0)
        train_index, _ = split_validation(task, validation_fraction)
        labels = task.y_train[train_index]
        n = min(per_task, len(train_index))
        chosen = _balanced_indices(
            labels, n, task.n_classes, torch.Generator().manual_seed(seed + index)
        )
        self._kept[index] = train_index[chosen]

    def tasks(self) -> list[int]:
        """The stream positions with samples kept, in order."""
        return sorted(self._kept)

    def indices(self, index: int) -> torch.Tensor:
        """The kept indices into ``task.x_train`` of stream position ``index``."""
        return self._kept[index]

    def __len__(self) -> int:
        return sum(len(kept) for kept in self._kept.values())

    def as_dict(self) -> dict[str, list[int]]:
        """JSON-ready: stream position (as a string key) → indices."""
        return {str(task): kept.tolist() for task, kept in sorted(self._kept.items())}

    @classmethod
    def from_dict(cls, data: Any, tasks: Sequence[Task]) -> ReplayMemory:
        """The inverse of :meth:`as_dict`, checked against the stream it belongs to.

        Raises:
            ValueError: naming the entry whose position or indices do not fit ``tasks``.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"replay memory must be a JSON object, got {describe(data)}")
        kept: dict[int, list[int]] = {}
        for key, indices in data.items():
            position = int(key) if str(key).isdigit() else -1
            if not 0 <= position < len(tasks):
                raise ValueError(
                    f"replay memory: task {key!r} is not in a {len(tasks)}-task stream"
                )
            if not isinstance(indices, list) or not all(
                isinstance(i, int) and 0 <= i < tasks[position].n_train for i in indices
            ):
                raise ValueError(
                    f"replay memory[{key}]: indices must be ints in [0, "
                    f"{tasks[position].n_train}) for {tasks[position].name!r}"
                )
            kept[position] = indices
        return cls(kept)


def training_task(
    tasks: Sequence[Task],
    current: int,
    seen: Sequence[int],
    memory: ReplayMemory,
    validation_fraction: float,
    *,
    balanced: bool = False,
) -> Task:
    """What a generation trains on at stream position ``current``.

    With an empty memory (``training.replay`` 0) it is the current task itself:
    naive fine-tuning, fitness on that task only. Otherwise the training data is
    the current task's training split plus every kept sample, and fitness is the
    mean validation accuracy over ``seen`` (and ``current``).

    Appended once, a few hundred kept samples are swamped by the current task's
    thousands: the head learns that only the current classes occur, and past
    classes are forgotten all the same (class-incremental bias). ``balanced``
    repeats each past task's kept samples up to the current task's training size,
    so every task seen weighs the same in an epoch and every class about as much
    as the current ones. An epoch then holds ``len(seen) + 1`` times the current
    task's samples (the ``"auto"`` batch size grows with it, so steps do not).

    Args:
        tasks: The stream.
        current: Position of the task being learned.
        seen: Positions learned before (in any order; repeats are ignored).
        memory: The replay memory.
        validation_fraction: The share of each task held out for fitness.
        balanced: Repeat each past task's samples to the current task's count
            (``training.replay_mixing`` ``"balanced"``); else append them once.
    """
    if not len(memory):
        return tasks[current]
    judged = sorted({*seen, current})
    train_index, _ = split_validation(tasks[current], validation_fraction)
    xs = [tasks[current].x_train[train_index]]
    ys = [tasks[current].y_train[train_index]]
    for position in memory.tasks():
        if position != current:
            kept = memory.indices(position)
            if balanced and len(kept):
                kept = _repeated(kept, len(train_index))
            xs.append(tasks[position].x_train[kept])
            ys.append(tasks[position].y_train[kept])
    x_val, y_val, val_groups, x_test, y_test, test_groups = [], [], [], [], [], []
    for group, position in enumerate(judged):
        task = tasks[position]
        _, val_index = split_validation(task, validation_fraction)
        x_val.append(task.x_train[val_index])
        y_val.append(task.y_train[val_index])
        val_groups.append(torch.full((len(val_index),), group, dtype=torch.int64))
        x_test.append(task.x_test)
        y_test.append(task.y_test)
        test_groups.append(torch.full((task.n_test,), group, dtype=torch.int64))
    base = tasks[current]
    return ReplayTask(
        name=f"{base.name} + replay of {len(memory.tasks())} tasks",
        x_train=torch.cat(xs),
        y_train=torch.cat(ys),
        x_test=torch.cat(x_test),
        y_test=torch.cat(y_test),
        n_classes=base.n_classes,
        source=f"{base.source}, with a replay memory of {len(memory)} samples",
        input_transform=base.input_transform,
        x_val=torch.cat(x_val),
        y_val=torch.cat(y_val),
        val_groups=torch.cat(val_groups),
        test_groups=torch.cat(test_groups),
    )


def _repeated(kept: torch.Tensor, count: int) -> torch.Tensor:
    """``kept`` tiled to ``count`` entries (never fewer): whole copies, then its first ones."""
    copies = -(-count // len(kept))  # ceil division
    return kept.repeat(max(1, copies))[: max(count, len(kept))]


@dataclass(frozen=True)
class TaskMetrics:
    """How the best elite did on every task of a stream, after each task it learned.

    Attributes:
        task_names: The stream's tasks, in order (the columns of ``matrix``).
        trained: The position of the task learned before each row was measured.
        matrix: ``R``: ``matrix[i][j]`` is the best elite's test accuracy on task
            ``j`` after the ``i``-th task learned (``trained[i]``).
    """

    task_names: tuple[str, ...]
    trained: tuple[int, ...]
    matrix: tuple[tuple[float, ...], ...]

    def __repr__(self) -> str:
        # Rounded: a matrix of 17-digit floats hides what it says.
        acc = "-" if self.acc is None else f"{self.acc:.3f}"
        bwt = "-" if self.bwt is None else f"{self.bwt:+.3f}"
        rows = "[" + ", ".join("[" + ", ".join(f"{v:.3f}" for v in r) + "]" for r in self.matrix)
        return (
            f"TaskMetrics(ACC {acc}, BWT {bwt}, tasks learned {len(self.matrix)} of "
            f"{len(self.task_names)}, R={rows}])"
        )

    def seen(self, row: int) -> list[int]:
        """Positions learned up to and including ``row``, in first-learned order."""
        return list(dict.fromkeys(self.trained[: row + 1]))

    def acc_at(self, row: int) -> float:
        """Mean accuracy of row ``row`` over the tasks learned by then."""
        return sum(self.matrix[row][j] for j in self.seen(row)) / len(self.seen(row))

    def bwt_at(self, row: int) -> float:
        """Mean of ``R[row, j] − R[i_j, j]`` over tasks ``j`` learned before the last.

        ``i_j`` is the row measured right after ``j`` was last learned before
        ``row``; with one task learned there is nothing to forget and BWT is 0.
        """
        last_learned: dict[int, int] = {}
        for i in range(row):
            last_learned[self.trained[i]] = i
        last_learned.pop(self.trained[row], None)
        if not last_learned:
            return 0.0
        drops = [self.matrix[row][j] - self.matrix[i][j] for j, i in last_learned.items()]
        return sum(drops) / len(drops)

    @property
    def acc(self) -> float | None:
        """ACC: the mean of the last row over the tasks learned; None before any."""
        return self.acc_at(len(self.matrix) - 1) if self.matrix else None

    @property
    def bwt(self) -> float | None:
        """BWT: backward transfer at the last row (negative: forgetting); None before any."""
        return self.bwt_at(len(self.matrix) - 1) if self.matrix else None

    @property
    def acc_history(self) -> list[float]:
        """ACC after each task learned, oldest first."""
        return [self.acc_at(row) for row in range(len(self.matrix))]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "task_names": list(self.task_names),
            "trained": list(self.trained),
            "matrix": [list(row) for row in self.matrix],
        }

    @classmethod
    def from_dict(cls, data: Any, n_tasks: int) -> TaskMetrics:
        """The inverse of :meth:`as_dict`, checked for a stream of ``n_tasks`` tasks.

        Raises:
            ValueError: naming the field or row that does not fit.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"task metrics must be a JSON object, got {describe(data)}")
        names, trained, matrix = data.get("task_names"), data.get("trained"), data.get("matrix")
        if not isinstance(names, list) or len(names) != n_tasks:
            raise ValueError(f"task metrics: task_names must list {n_tasks} tasks, got {names!r}")
        if not isinstance(trained, list) or not isinstance(matrix, list):
            raise ValueError("task metrics: trained and matrix must be lists")
        if len(trained) != len(matrix):
            raise ValueError(f"task metrics: {len(trained)} trained but {len(matrix)} rows")
        for i, (position, row) in enumerate(zip(trained, matrix, strict=True)):
            if not isinstance(position, int) or not 0 <= position < n_tasks:
                raise ValueError(f"task metrics: trained[{i}] = {position!r} is not a task")
            if not isinstance(row, list) or len(row) != n_tasks:
                raise ValueError(f"task metrics: row {i} must have {n_tasks} values")
            if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in row):
                raise ValueError(f"task metrics: row {i} holds a non-finite value")
        return cls(
            tuple(str(n) for n in names),
            tuple(trained),
            tuple(tuple(float(v) for v in row) for row in matrix),
        )
