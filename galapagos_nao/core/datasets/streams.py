"""Task streams for continual learning: Split MNIST, Permuted MNIST and checked user lists.

A stream is a plain list of :class:`Task` objects that share an input shape, a
label space and an input transform, so one network can move from task to task
without changing its head (class-incremental: one head over every label).
:class:`ReplayTask` is what a run trains on while it is in a stream with a
replay memory: the current task plus samples kept from past tasks, judged on
every task seen so far.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from galapagos_nao.core.checks import check_int, describe
from galapagos_nao.core.datasets.mnist_data import default_task
from galapagos_nao.core.datasets.task import Task

__all__ = [
    "SPLIT_MNIST_PAIRS",
    "ReplayTask",
    "check_stream",
    "permuted_mnist",
    "pixel_permutations",
    "split_mnist",
]

#: The digits of each Split MNIST task, in stream order (the usual protocol).
SPLIT_MNIST_PAIRS: tuple[tuple[int, int], ...] = ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9))


@dataclass(frozen=True, eq=False, kw_only=True)
class ReplayTask(Task):
    """A task with its own validation split whose accuracy is a mean over groups.

    ``x_train``/``y_train`` are trained on whole (no validation is carved from
    them); validation and test accuracy are the mean of the per-group accuracies,
    one group per task seen, so a task with a small split weighs as much as one
    with a large split.
    """

    # (n_val, *input_shape) float32, the held-out samples fitness is measured on
    x_val: torch.Tensor
    # (n_val,) int64
    y_val: torch.Tensor
    # (n_val,) int64, the group (seen task) of each validation sample
    val_groups: torch.Tensor
    # (n_test,) int64, the group of each test sample
    test_groups: torch.Tensor


def split_mnist(base: Task | None = None) -> list[Task]:
    """Five tasks of two digits each, class-incremental: one 10-way head, labels as they are.

    Args:
        base: The MNIST task to split (a subset keeps tests quick); the default
            task (:func:`~galapagos_nao.core.datasets.default_task`) when None.

    Returns:
        Tasks named ``"split-mnist 0,1"`` … ``"split-mnist 8,9"``; each keeps the
        base's ``n_classes`` and input transform.

    Raises:
        ValueError: if ``base`` lacks a digit of a pair in its train or test split.
    """
    base = default_task() if base is None else _checked_base(base)
    tasks = []
    for pair in SPLIT_MNIST_PAIRS:
        train = torch.isin(base.y_train, torch.tensor(pair))
        test = torch.isin(base.y_test, torch.tensor(pair))
        for split, labels, mask in (("train", base.y_train, train), ("test", base.y_test, test)):
            missing = [d for d in pair if not bool((labels[mask] == d).any())]
            if missing:
                raise ValueError(f"base has no digit {missing[0]} in its {split} split")
        tasks.append(
            base.select(
                train,
                test,
                name=f"split-mnist {pair[0]},{pair[1]}",
                source=f"{base.source}, digits {pair}",
            )
        )
    return tasks


def pixel_permutations(n_tasks: int, seed: int, n_pixels: int) -> list[torch.Tensor]:
    """The fixed pixel permutation of each Permuted MNIST task: ``(n_pixels,)`` int64 each.

    One generator seeded with ``seed`` draws them in task order, so the same
    seed always gives the same stream and task ``i`` is the same whatever
    ``n_tasks`` is.
    """
    generator = torch.Generator().manual_seed(seed)
    return [torch.randperm(n_pixels, generator=generator) for _ in range(n_tasks)]


def permuted_mnist(n_tasks: int = 5, seed: int = 0, base: Task | None = None) -> list[Task]:
    """``n_tasks`` tasks, each the base task under its own fixed pixel permutation.

    Domain-incremental: every task has the same ten labels. The permutation
    applies to the standardized pixels; standardization is per pixel value, so
    a network of a permuted task takes permuted images as users hold them.

    Args:
        n_tasks: How many tasks (≥ 1).
        seed: Seeds the permutations (see :func:`pixel_permutations`).
        base: The task to permute; the default task when None.

    Raises:
        ValueError: naming ``n_tasks`` or ``seed`` when out of range.
    """
    check_int("n_tasks", n_tasks, minimum=1)
    check_int("seed", seed, minimum=0)
    base = default_task() if base is None else _checked_base(base)
    n_pixels = int(torch.tensor(base.input_shape).prod())
    tasks = []
    for index, order in enumerate(pixel_permutations(n_tasks, seed, n_pixels)):
        tasks.append(
            Task(
                name=f"permuted-mnist {index}",
                x_train=_permuted(base.x_train, order),
                y_train=base.y_train,
                x_test=_permuted(base.x_test, order),
                y_test=base.y_test,
                n_classes=base.n_classes,
                source=f"{base.source}, pixel permutation {index} of seed {seed}",
                input_transform=base.input_transform,
            )
        )
    return tasks


def _permuted(x: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """``x`` ``(n, *shape)`` with its flattened pixels reordered by ``order``, shape kept."""
    return x.reshape(x.shape[0], -1)[:, order].reshape(x.shape).contiguous()


def _checked_base(base: Any) -> Task:
    if not isinstance(base, Task):
        raise ValueError(f"base must be a datasets.Task or None, got {describe(base)}")
    return base


def check_stream(tasks: Any) -> list[Task]:
    """The tasks as a list, checked to form one stream.

    Every task must be a :class:`Task` with the first one's input shape, number
    of classes and input transform: a network moves between them unchanged.

    Raises:
        ValueError: naming the index of the first task that differs, what it has
            and what ``tasks[0]`` has; nothing is kept then.
    """
    if isinstance(tasks, Task) or not isinstance(tasks, Sequence) or isinstance(tasks, str):
        raise ValueError(f"tasks must be a list of datasets.Task, got {describe(tasks)}")
    if not tasks:
        raise ValueError("tasks is empty: a stream needs at least one task")
    for index, task in enumerate(tasks):
        if not isinstance(task, Task):
            raise ValueError(f"tasks[{index}] must be a datasets.Task, got {describe(task)}")
    first = tasks[0]
    for index, task in enumerate(tasks[1:], start=1):
        for what in ("input_shape", "n_classes", "input_transform"):
            if getattr(task, what) != getattr(first, what):
                raise ValueError(
                    f"tasks[{index}] ({task.name!r}) has {what} {getattr(task, what)} but "
                    f"tasks[0] ({first.name!r}) has {getattr(first, what)}; a stream's tasks "
                    "must share input shape, label space and input transform"
                )
    return list(tasks)
