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
* :func:`split_mnist`, :func:`permuted_mnist` — task streams for continual
  learning; :func:`check_stream` checks a user's list of tasks.

In import order: :mod:`~galapagos_nao.core.datasets.task` (the record, its checks,
subsets), then :mod:`~galapagos_nao.core.datasets.mnist_data` (MNIST sources and the
default task), then :mod:`~galapagos_nao.core.datasets.streams` (task streams).
Log records go to the ``galapagos_nao.core.datasets`` logger.
"""

from galapagos_nao.core.datasets.mnist_data import (
    DATA_DIR_ENV,
    MNIST_MEAN,
    MNIST_STD,
    MNIST_TRANSFORM,
    bundled_mnist,
    default_task,
    mnist,
)
from galapagos_nao.core.datasets.streams import (
    SPLIT_MNIST_PAIRS,
    ReplayTask,
    check_stream,
    permuted_mnist,
    pixel_permutations,
    split_mnist,
)
from galapagos_nao.core.datasets.task import Task, from_tensors, subset

__all__ = [
    # the record and the user's data
    "Task",
    "from_tensors",
    "subset",
    # MNIST
    "DATA_DIR_ENV",
    "MNIST_MEAN",
    "MNIST_STD",
    "MNIST_TRANSFORM",
    "bundled_mnist",
    "default_task",
    "mnist",
    # streams
    "SPLIT_MNIST_PAIRS",
    "ReplayTask",
    "check_stream",
    "permuted_mnist",
    "pixel_permutations",
    "split_mnist",
]
