"""The :class:`Task` record, its input checks and seeded class-balanced subsets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from galapagos_nao.core.transform import IDENTITY, InputTransform

__all__ = ["Task", "from_tensors", "subset"]

_INTEGER_DTYPES = (
    torch.uint8,
    torch.uint16,
    torch.uint32,
    torch.int8,
    torch.int16,
    torch.int32,
    torch.int64,
)
#: Most classes a task may have: the head is (features, n_classes); a label of 10**9
#: would make every candidate allocate a billion outputs.
MAX_CLASSES = 100_000


@dataclass(frozen=True, eq=False)
class Task:
    """A classification task with its data resident as CPU tensors.

    Build one with :func:`from_tensors` (which checks and converts its inputs) or
    one of the loaders; the fields are trusted as they are.
    """

    name: str
    # (n_train, *input_shape) float32, on the model's scale (input_transform applied)
    x_train: torch.Tensor
    # (n_train,) int64, labels in [0, n_classes)
    y_train: torch.Tensor
    # (n_test, *input_shape) float32, on the same scale as x_train
    x_test: torch.Tensor
    # (n_test,) int64
    y_test: torch.Tensor
    # number of output classes the head must have
    n_classes: int
    # where the data came from, e.g. "torchvision:/path" or "bundled subset"
    source: str
    # how the data as users hold it (MNIST: 0..1 or uint8) became x_train/x_test;
    # trained networks carry it so that they take that data
    input_transform: InputTransform = IDENTITY

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one sample, e.g. ``(1, 28, 28)`` for MNIST."""
        return tuple(self.x_train.shape[1:])

    @property
    def n_train(self) -> int:
        """The number of training samples."""
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        """The number of test samples."""
        return int(self.x_test.shape[0])

    def select(self, train: torch.Tensor, test: torch.Tensor, *, name: str, source: str) -> Task:
        """A task of the samples at indices ``train`` and ``test``; same classes and transform."""
        return Task(
            name=name,
            x_train=self.x_train[train],
            y_train=self.y_train[train],
            x_test=self.x_test[test],
            y_test=self.y_test[test],
            n_classes=self.n_classes,
            source=source,
            input_transform=self.input_transform,
        )

    def __repr__(self) -> str:
        # The dataclass default would print the tensors; summarize them instead.
        return (
            f"Task(name={self.name!r}, n_train={self.n_train}, n_test={self.n_test}, "
            f"input_shape={self.input_shape}, n_classes={self.n_classes}, "
            f"source={self.source!r})"
        )


# ----------------------------------------------------------------- user data


def from_tensors(
    x_train: Any,
    y_train: Any,
    x_test: Any,
    y_test: Any,
    *,
    name: str = "tensors",
    n_classes: int | None = None,
) -> Task:
    """Build a task from the user's tensors or numpy arrays.

    The inputs are used as given (no standardization): scale them the way the
    networks should see them; trained networks then take inputs on that scale.
    Inputs that already are float32/int64 CPU tensors are shared, not copied.

    Args:
        x_train: Training inputs, shape ``(n_train, *input_shape)``, any real dtype.
        y_train: Training labels, shape ``(n_train,)``, an integer dtype.
        x_test: Test inputs, shape ``(n_test, *input_shape)``.
        y_test: Test labels, shape ``(n_test,)``.
        name: A name for the task, used in logs and records.
        n_classes: The number of classes; inferred as the largest label + 1
            when None.

    Returns:
        The task, with float32 inputs and int64 labels on the CPU.

    Raises:
        TypeError: If an argument is not a tensor or array, or has a dtype that
            cannot serve (complex inputs, non-integer labels).
        ValueError: If shapes, lengths, labels, values or ``n_classes`` are wrong;
            the message names the argument and the offending value.
    """
    return _checked_task(
        x_train,
        y_train,
        x_test,
        y_test,
        name=name,
        n_classes=n_classes,
        source="user tensors",
    )


def _checked_task(
    x_train: Any,
    y_train: Any,
    x_test: Any,
    y_test: Any,
    *,
    name: str,
    n_classes: int | None,
    source: str,
    input_transform: InputTransform = IDENTITY,
) -> Task:
    """Check and convert the parts of a task; the one place a Task is validated."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    xs = {"x_train": _as_inputs("x_train", x_train), "x_test": _as_inputs("x_test", x_test)}
    ys = {"y_train": _as_labels("y_train", y_train), "y_test": _as_labels("y_test", y_test)}
    for x_name, y_name in (("x_train", "y_train"), ("x_test", "y_test")):
        if len(xs[x_name]) != len(ys[y_name]):
            raise ValueError(
                f"{x_name} has {len(xs[x_name])} samples but {y_name} has "
                f"{len(ys[y_name])} labels; they must match"
            )
    if len(xs["x_train"]) < 2:
        raise ValueError(
            f"x_train has {len(xs['x_train'])} sample; training needs at least 2 "
            "(part of them is held out as the validation split)"
        )
    if xs["x_train"].shape[1:] != xs["x_test"].shape[1:]:
        raise ValueError(
            f"x_test samples have shape {tuple(xs['x_test'].shape[1:])} but x_train samples "
            f"have shape {tuple(xs['x_train'].shape[1:])}; they must match"
        )
    n_classes = _checked_n_classes(n_classes, ys)
    return Task(
        name=name,
        x_train=xs["x_train"],
        y_train=ys["y_train"],
        x_test=xs["x_test"],
        y_test=ys["y_test"],
        n_classes=n_classes,
        source=source,
        input_transform=input_transform,
    )


def _as_tensor(arg_name: str, value: Any) -> torch.Tensor:
    """Return ``value`` as a CPU tensor, accepting only tensors and numpy arrays."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.ndarray):
        try:
            return torch.from_numpy(value)
        except TypeError as error:  # object or string arrays
            raise TypeError(
                f"{arg_name} has numpy dtype {value.dtype}, which torch cannot hold"
            ) from error
    raise TypeError(
        f"{arg_name} must be a torch.Tensor or numpy.ndarray, got {type(value).__name__}"
    )


def _as_inputs(arg_name: str, value: Any) -> torch.Tensor:
    """Check one input array and return it as float32 ``(n, *input_shape)``."""
    tensor = _as_tensor(arg_name, value)
    if tensor.is_complex():
        raise TypeError(f"{arg_name} has complex dtype {tensor.dtype}; inputs must be real")
    if tensor.dim() < 2:
        raise ValueError(
            f"{arg_name} must have shape (n_samples, *input_shape), got {tuple(tensor.shape)}"
        )
    if len(tensor) == 0:
        raise ValueError(f"{arg_name} is empty; a task needs at least one sample per split")
    if tensor[0].numel() == 0:
        raise ValueError(
            f"{arg_name} samples have no features (shape {tuple(tensor.shape)}); "
            "each sample needs at least one value"
        )
    tensor = tensor.to(torch.float32)
    finite = torch.isfinite(tensor).flatten(1).all(dim=1)
    if not bool(finite.all()):
        index = int(torch.nonzero(~finite)[0])
        raise ValueError(f"{arg_name}[{index}] contains a non-finite value (nan or inf)")
    return tensor.contiguous()


def _as_labels(arg_name: str, value: Any) -> torch.Tensor:
    """Check one label array and return it as int64 ``(n,)``."""
    tensor = _as_tensor(arg_name, value)
    if tensor.dtype not in _INTEGER_DTYPES:
        raise TypeError(f"{arg_name} must have an integer dtype, got {tensor.dtype}")
    if tensor.dim() != 1:
        raise ValueError(f"{arg_name} must have shape (n_samples,), got {tuple(tensor.shape)}")
    labels = tensor.to(torch.int64).contiguous()
    if len(labels) and int(labels.min()) < 0:
        index = int(torch.argmin(labels))
        raise ValueError(f"{arg_name}[{index}] = {int(labels[index])} is negative")
    return labels


def _checked_n_classes(n_classes: int | None, ys: dict[str, torch.Tensor]) -> int:
    """Infer or check ``n_classes`` against every label (labels are already >= 0)."""
    largest = max(int(labels.max()) for labels in ys.values() if len(labels))
    if n_classes is None:
        for arg_name, labels in ys.items():
            too_large = torch.nonzero(labels >= MAX_CLASSES)
            if len(too_large):
                index = int(too_large[0])
                raise ValueError(
                    f"{arg_name}[{index}] = {int(labels[index])}: a task has at most "
                    f"{MAX_CLASSES} classes (labels in [0, {MAX_CLASSES}))"
                )
        n_classes = largest + 1
        if n_classes < 2:
            raise ValueError(
                f"the labels only contain class {largest}; a classifier needs at least 2 "
                "classes (pass n_classes to declare the others)"
            )
        return n_classes
    if isinstance(n_classes, bool) or not isinstance(n_classes, int | np.integer):
        raise TypeError(f"n_classes must be an int, got {type(n_classes).__name__}")
    if n_classes < 2:
        raise ValueError(f"n_classes must be at least 2, got {n_classes}")
    if n_classes > MAX_CLASSES:
        raise ValueError(f"n_classes must be at most {MAX_CLASSES}, got {n_classes}")
    for arg_name, labels in ys.items():
        too_large = torch.nonzero(labels >= n_classes)
        if len(too_large):
            index = int(too_large[0])
            raise ValueError(
                f"{arg_name}[{index}] = {int(labels[index])} is out of range for "
                f"n_classes={n_classes} (labels must be in [0, {n_classes}))"
            )
    return int(n_classes)


# ------------------------------------------------------------------- subsets


def subset(task: Task, n_train: int, n_test: int | None = None, *, seed: int = 0) -> Task:
    """Draw a seeded, class-balanced random subset of a task.

    Each class gets an equal share of the samples (as far as it has them; the
    other classes fill in for a class that runs short), so small subsets keep
    every class. The same ``seed`` always gives the same subset.

    Args:
        task: The task to sample from.
        n_train: How many training samples to keep, in ``[1, task.n_train]``.
        n_test: How many test samples to keep, in ``[1, task.n_test]``; None keeps
            the whole test split.
        seed: Seed of the generator that draws the samples.

    Returns:
        A new task whose samples keep their original relative order.

    Raises:
        ValueError: If ``n_train`` or ``n_test`` is out of range.
    """
    n_test = task.n_test if n_test is None else n_test
    _check_count("n_train", n_train, task.n_train)
    _check_count("n_test", n_test, task.n_test)
    generator = torch.Generator().manual_seed(seed)
    train_idx = _balanced_indices(task.y_train, n_train, task.n_classes, generator)
    test_idx = _balanced_indices(task.y_test, n_test, task.n_classes, generator)
    return task.select(
        train_idx,
        test_idx,
        name=f"{task.name}-subset",
        source=f"{task.source}, subset(n_train={n_train}, n_test={n_test}, seed={seed})",
    )


def _check_count(arg_name: str, value: int, available: int) -> None:
    """Raise unless ``value`` is an int in ``[1, available]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{arg_name} must be an int, got {type(value).__name__}")
    if not 1 <= value <= available:
        raise ValueError(f"{arg_name} must be in [1, {available}], got {value}")


def _balanced_indices(
    labels: torch.Tensor, n: int, n_classes: int, generator: torch.Generator
) -> torch.Tensor:
    """Pick ``n`` indices round-robin over classes, in random order within each class.

    Every sample gets its rank within its class in a random permutation; taking
    the ``n`` lowest ranks takes one sample per class per round, so classes stay
    balanced and a short class simply drops out of later rounds. Vectorized:
    no Python loop over samples.
    """
    perm = torch.randperm(len(labels), generator=generator)
    shuffled = labels[perm]
    by_class = torch.argsort(shuffled, stable=True)  # grouped by class, shuffled within
    counts = torch.bincount(shuffled, minlength=n_classes)
    class_start = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(perm)
    rank[by_class] = torch.arange(len(labels)) - class_start[shuffled[by_class]]
    # Stable sort keeps the random order among equal ranks, so the last, partial
    # round picks its classes at random.
    chosen = perm[torch.argsort(rank, stable=True)[:n]]
    return torch.sort(chosen).values
