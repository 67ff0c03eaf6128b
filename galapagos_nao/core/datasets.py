"""Tasks: the labelled data a network is trained and scored on.

A :class:`Task` holds a whole classification problem as CPU tensors, so training
can move it to a device once and slice batches without per-sample Python work.

Where tasks come from:

* :func:`mnist` — the real MNIST through torchvision, found under an explicit root,
  the ``GN_DATA_DIR`` environment variable or the user cache (downloaded there on
  first use); offline, it falls back to the bundled subset.
* :func:`bundled_mnist` — a class-balanced subset of real MNIST shipped inside the
  package, so examples and tests run without a network.
* :func:`from_tensors` — the user's own tensors or numpy arrays, checked up front.
* :func:`subset` — a seeded, class-balanced sample of a task, for tests and quick runs.
* :func:`default_task` — what ``evolve()`` trains on when no task is given.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "DATA_DIR_ENV",
    "MNIST_MEAN",
    "MNIST_STD",
    "Task",
    "bundled_mnist",
    "default_task",
    "from_tensors",
    "mnist",
    "subset",
]

# Named explicitly (not __name__) so the record's logger stays the same when the
# module is reached through the `gn` alias package.
logger = logging.getLogger("galapagos_nao.core.datasets")

#: Environment variable naming a dataset root that holds ``MNIST/raw/``.
DATA_DIR_ENV = "GN_DATA_DIR"
#: Mean and standard deviation of MNIST training pixels scaled to [0, 1]; fixed
#: constants (not recomputed per subset) so every MNIST task shares one input scale.
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081

_MNIST_RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_MNIST_CLASSES = 10
_BUNDLED_FILE = "mnist_subset.npz"
_INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


@dataclass(frozen=True, eq=False)
class Task:
    """A classification task with its data resident as CPU tensors.

    Build one with :func:`from_tensors` (which checks and converts its inputs) or
    one of the loaders; the fields are trusted as they are.
    """

    name: str
    # (n_train, *input_shape) float32, standardized
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

    def __repr__(self) -> str:
        # The dataclass default would print the tensors; summarize them instead.
        return (
            f"Task(name={self.name!r}, n_train={self.n_train}, n_test={self.n_test}, "
            f"input_shape={self.input_shape}, n_classes={self.n_classes}, "
            f"source={self.source!r})"
        )


# --------------------------------------------------------------------- MNIST


def mnist(root: str | os.PathLike[str] | None = None, *, download: bool = True) -> Task:
    """Load the full MNIST (60,000 train / 10,000 test) as a standardized task.

    The data is looked up in this order: ``root`` when given; else the directory
    in the ``GN_DATA_DIR`` environment variable; else the user cache
    (``$XDG_CACHE_HOME/galapagos_nao`` or ``~/.cache/galapagos_nao``), downloading
    into it when ``download`` is true. When none of these yields MNIST (offline,
    download disabled or failed) the bundled subset from :func:`bundled_mnist` is
    returned. The source used is logged at INFO on ``galapagos_nao.core.datasets``.

    Args:
        root: A dataset root holding ``MNIST/raw/`` as torchvision lays it out.
            When given it must contain MNIST; there is no fallback.
        download: Whether MNIST may be downloaded into the user cache.

    Returns:
        The task; pixels are scaled to [0, 1] and standardized with
        :data:`MNIST_MEAN` and :data:`MNIST_STD`, shape ``(n, 1, 28, 28)``.

    Raises:
        FileNotFoundError: If ``root`` is given and lacks the MNIST raw files.
    """
    if root is not None:
        root_path = Path(root).expanduser()
        _require_mnist_raw(root_path)
        return _load_mnist_logged(root_path, "explicit root")

    env_root = os.environ.get(DATA_DIR_ENV)
    if env_root:
        env_path = Path(env_root).expanduser()
        if _missing_mnist_raw(env_path):
            logger.warning(
                "%s=%s has no MNIST/raw/ files; trying the user cache", DATA_DIR_ENV, env_path
            )
        else:
            return _load_mnist_logged(env_path, DATA_DIR_ENV)

    cache = _cache_dir()
    if not _missing_mnist_raw(cache):
        return _load_mnist_logged(cache, "user cache")
    if download and _download_mnist(cache):
        return _load_mnist_logged(cache, "downloaded into the user cache")

    task = bundled_mnist()
    logger.info(
        "MNIST not available (download=%s); using the bundled subset (%d train, %d test)",
        download,
        task.n_train,
        task.n_test,
    )
    return task


def bundled_mnist() -> Task:
    """Load the class-balanced MNIST subset shipped with the package.

    It holds 15,000 training and 3,000 test images of the real MNIST (see
    ``galapagos_nao/data/MNIST_SUBSET_LICENSE.md`` for attribution and the sampled
    indices), standardized exactly like :func:`mnist`. No network is needed.

    Returns:
        The task, named ``"mnist-bundled"``.
    """
    resource = resources.files("galapagos_nao").joinpath("data").joinpath(_BUNDLED_FILE)
    with resource.open("rb") as handle, np.load(handle, allow_pickle=False) as arrays:
        # Copy out of the archive while it is open; NpzFile reads lazily.
        parts = {key: torch.from_numpy(arrays[key].copy()) for key in arrays.files}
    return _checked_task(
        _standardize_mnist(parts["x_train"]),
        parts["y_train"],
        _standardize_mnist(parts["x_test"]),
        parts["y_test"],
        name="mnist-bundled",
        n_classes=_MNIST_CLASSES,
        source=f"bundled subset ({_BUNDLED_FILE})",
    )


def _cache_dir() -> Path:
    """Return the per-user cache directory (not created here)."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "galapagos_nao"


def _missing_mnist_raw(root: Path) -> list[str]:
    """Return the MNIST raw files that torchvision would not find under ``root``."""
    raw = root / "MNIST" / "raw"
    return [name for name in _MNIST_RAW_FILES if not (raw / name).is_file()]


def _require_mnist_raw(root: Path) -> None:
    """Raise FileNotFoundError naming ``root`` and the files it lacks."""
    missing = _missing_mnist_raw(root)
    if not missing:
        return
    hint = ""
    if all((root / name).is_file() for name in _MNIST_RAW_FILES):
        # A common slip: pointing at the raw folder itself instead of its grandparent.
        hint = f"; {root} itself holds the files, so pass {root.parent.parent} instead"
    raise FileNotFoundError(
        f"root={str(root)!r} does not hold MNIST: expected {root / 'MNIST' / 'raw'}/ with "
        f"{', '.join(_MNIST_RAW_FILES)}; missing {', '.join(missing)}{hint}"
    )


def _download_mnist(cache: Path) -> bool:
    """Try to download MNIST into ``cache``; return whether it worked.

    Failures are logged, not raised, because the caller falls back to the
    bundled subset.
    """
    # Imported here so `import galapagos_nao` does not pay for torchvision.
    from torchvision.datasets import MNIST

    try:
        cache.mkdir(parents=True, exist_ok=True)
        for train in (True, False):
            MNIST(cache, train=train, download=True)
    except Exception as error:  # noqa: BLE001 -- any failure means "use the bundled subset"
        logger.warning("could not download MNIST into %s: %s", cache, error)
        return False
    return not _missing_mnist_raw(cache)


def _load_mnist_logged(root: Path, how: str) -> Task:
    """Load MNIST from ``root`` and log where it came from."""
    task = _load_mnist(root)
    logger.info(
        "MNIST from %s (%s; %d train, %d test)", task.source, how, task.n_train, task.n_test
    )
    return task


def _load_mnist(root: Path) -> Task:
    """Load both MNIST splits from ``root`` with torchvision, without transforms."""
    from torchvision.datasets import MNIST

    # `.data`/`.targets` are whole-split tensors: no DataLoader, no per-sample work.
    train = MNIST(root, train=True, download=False)
    test = MNIST(root, train=False, download=False)
    return _checked_task(
        _standardize_mnist(train.data),
        train.targets,
        _standardize_mnist(test.data),
        test.targets,
        name="mnist",
        n_classes=_MNIST_CLASSES,
        source=f"torchvision:{root}",
    )


def _standardize_mnist(pixels: torch.Tensor) -> torch.Tensor:
    """Map uint8 images ``(n, 28, 28)`` to standardized float32 ``(n, 1, 28, 28)``."""
    scaled = pixels.to(torch.float32).div_(255.0)
    return scaled.sub_(MNIST_MEAN).div_(MNIST_STD).unsqueeze(1)


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
    networks should see them. Inputs that already are float32/int64 CPU tensors
    are shared, not copied.

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
    return Task(
        name=f"{task.name}-subset",
        x_train=task.x_train[train_idx],
        y_train=task.y_train[train_idx],
        x_test=task.x_test[test_idx],
        y_test=task.y_test[test_idx],
        n_classes=task.n_classes,
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


# -------------------------------------------------------------- default task

_default_lock = threading.Lock()
_default_task: Task | None = None


def default_task() -> Task:
    """Return the task ``evolve()`` uses when given none: :func:`mnist`, loaded once.

    Thread-safe: concurrent first callers wait for a single load instead of each
    reading (or downloading) MNIST.

    Returns:
        The same Task object on every call in this process.
    """
    global _default_task
    # Held across the load on purpose: the point is that only one thread loads.
    with _default_lock:
        if _default_task is None:
            _default_task = mnist()
        return _default_task
