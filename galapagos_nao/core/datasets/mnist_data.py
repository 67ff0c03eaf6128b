"""MNIST as a task: torchvision files, download and cache, the bundled subset, the default."""

from __future__ import annotations

import logging
import os
import threading
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from galapagos_nao.core.datasets.task import Task, _checked_task
from galapagos_nao.core.transform import InputTransform

__all__ = [
    "DATA_DIR_ENV",
    "MNIST_MEAN",
    "MNIST_STD",
    "MNIST_TRANSFORM",
    "bundled_mnist",
    "default_task",
    "mnist",
]

# Named after the package, explicitly (not __name__): the records keep the logger name
# users filter on, also when the module is reached through the `gn` alias package.
logger = logging.getLogger("galapagos_nao.core.datasets")

#: Environment variable naming a dataset root that holds ``MNIST/raw/``.
DATA_DIR_ENV = "GN_DATA_DIR"
#: Mean and standard deviation of MNIST training pixels scaled to [0, 1]; fixed
#: constants (not recomputed per subset) so every MNIST task shares one input scale.
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
#: What MNIST tasks apply to images as users hold them (0..1 floats or uint8).
MNIST_TRANSFORM = InputTransform(mean=MNIST_MEAN, std=MNIST_STD, scale_uint8=True)

_MNIST_RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_MNIST_CLASSES = 10
_BUNDLED_FILE = "mnist_subset.npz"


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
        input_transform=MNIST_TRANSFORM,
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
        input_transform=MNIST_TRANSFORM,
    )


def _standardize_mnist(pixels: torch.Tensor) -> torch.Tensor:
    """Map uint8 images ``(n, 28, 28)`` to standardized float32 ``(n, 1, 28, 28)``.

    Exactly :data:`MNIST_TRANSFORM`, once for the whole split, so a trained
    network's input block reproduces what training saw.
    """
    return MNIST_TRANSFORM.apply(pixels).unsqueeze(1)


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
