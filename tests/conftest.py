"""Shared fixtures: real MNIST tasks and an isolated environment for every test.

Real data comes from ``GN_DATA_DIR`` or ``../shared/data`` next to the repository
(CI); without either, the bundled subset stands in. No test reaches the network:
torchvision downloads are disabled for every test.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision.datasets
from torch import nn

from galapagos_nao.config.settings import TrainingSettings
from galapagos_nao.core import datasets, genome
from galapagos_nao.core.datasets import DATA_DIR_ENV, Task
from galapagos_nao.core.device_data import DeviceDataCache
from galapagos_nao.core.network import Network
from galapagos_nao.core.training import fit
from galapagos_nao.run.records import CANDIDATE_LOGGER
from galapagos_nao.ui.logs import ConsoleHandler

logger = logging.getLogger("galapagos_nao.tests")

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

# Set before any test runs so code that calls mnist() without a root (default_task,
# evolve(task=None)) finds the real data instead of the user cache.
if not os.environ.get(DATA_DIR_ENV) and SHARED_DATA.is_dir():
    os.environ[DATA_DIR_ENV] = str(SHARED_DATA)


def real_mnist_root() -> Path | None:
    """Return the dataset root holding the real MNIST, or None when there is none."""
    root = os.environ.get(DATA_DIR_ENV)
    if root and (Path(root) / "MNIST" / "raw").is_dir():
        return Path(root)
    return None


def pytest_report_header() -> str:
    root = real_mnist_root()
    if root is None:
        return "galapagos_nao data: bundled MNIST subset (no GN_DATA_DIR or ../shared/data)"
    return f"galapagos_nao data: full MNIST from {root}"


def pytest_configure(config: pytest.Config) -> None:
    """Gives the suite Python's Ctrl-C handler when it was started with SIGINT ignored.

    A shell starts a background command (``make test &``, ``nohup``) with SIGINT
    ignored, and Python then installs no KeyboardInterrupt handler: the tests
    that press Ctrl-C would wait forever, and Ray's worker processes would
    inherit the ignore, so a cancelled task would go on training.
    """
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def mnist_root() -> Path | None:
    """The dataset root holding the real MNIST, or None when there is none."""
    return real_mnist_root()


@pytest.fixture(scope="session")
def mnist_task() -> Task:
    """The full real MNIST, or the bundled subset when it is not available."""
    root = real_mnist_root()
    if root is None:
        logger.warning(
            "no real MNIST (set %s or provide ../shared/data); tests use the bundled subset",
            DATA_DIR_ENV,
        )
        return datasets.bundled_mnist()
    return datasets.mnist(root, download=False)


@pytest.fixture(scope="session")
def small_mnist(mnist_task: Task) -> Task:
    """A seeded, class-balanced 3000/1000 sample of ``mnist_task`` for quick training."""
    return datasets.subset(mnist_task, 3000, 1000, seed=0)


@pytest.fixture(scope="session")
def train_network() -> Callable[..., Network]:
    """``train_network(task, layers, seed=…, **record)``: a Network trained for real."""
    return _train_network


def _train_network(task: Task, layers: list, *, seed: int, **record: object) -> Network:
    """A Network trained on ``task`` for real (one epoch, batch 64, CPU), with ``record`` fields."""
    data = DeviceDataCache().get(task, torch.device("cpu"), 0.1)
    result = fit(layers, data, TrainingSettings(batch_size=64).train_settings(), seed=seed)
    return Network(
        layers,
        input_shape=data.input_shape,
        n_classes=data.n_classes,
        input_transform=data.input_transform,
        **record,
        **result.record_fields(),
    )


def _refuse_download(self: object) -> None:
    raise RuntimeError("tests never reach the network: MNIST download disabled")


@pytest.fixture(autouse=True)
def isolated_environment(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Give each test its own GN_HOME and make any MNIST download fail fast."""
    monkeypatch.setenv("GN_HOME", str(tmp_path_factory.mktemp("gn_home")))
    # Patched on the class so the library's real fallback path runs, offline.
    monkeypatch.setattr(torchvision.datasets.MNIST, "download", _refuse_download)
    yield
    _restore_package_logging()


def _restore_package_logging() -> None:
    """Undoes what examples and ``gn.log_level`` did to the package's loggers (process-wide)."""
    package = logging.getLogger("galapagos_nao")
    package.setLevel(logging.NOTSET)
    for handler in list(package.handlers):
        if type(handler) is ConsoleHandler:
            package.removeHandler(handler)
    logging.getLogger(CANDIDATE_LOGGER).setLevel(logging.NOTSET)


@pytest.fixture(scope="session")
def tracked_session() -> Callable[[Any], Any]:
    """``tracked_session(store)``: a fresh Session checkpointing into ``store``."""
    return _tracked_session


def _tracked_session(store: Any) -> Any:
    """A fresh Session (own Parameters, Selection, Library) checkpointing into ``store``.

    Imports on call: only the journal, replay and watch tests need the run layer.
    """
    from galapagos_nao.archive.selection import Selection
    from galapagos_nao.config.parameters import Parameters
    from galapagos_nao.run.api import Session
    from galapagos_nao.store.library import Library

    parameters = Parameters()
    selection = Selection(parameters=parameters)
    session = Session(parameters=parameters, selection=selection, library=Library(workspace=store))
    session.track(selection, store)
    return session


@pytest.fixture(scope="session")
def watched_workspace(tmp_path_factory: pytest.TempPathFactory, small_mnist: Task) -> dict:
    """A workspace written by a real 3-generation run, then a pin and a favor (for ``watch``).

    Returns ``{"path", "elites", "pinned"}``: the file, cell → elite of the
    finished run, and the cell that was pinned and favored 3.
    """
    from galapagos_nao.store.workspace import Workspace

    path = tmp_path_factory.mktemp("watched") / "workspace.db"
    store = Workspace(path)
    session = _tracked_session(store)
    parameters, selection = session.parameters, session.selection
    parameters.put("orchestration", {"generation_size": 3, "workers": 1})
    parameters.put("selection", {"complexity_levels": 4})
    task = datasets.subset(small_mnist, 600, 200)
    session.evolve([("dense", [8, "relu"])], 3, task, seed=0).result(timeout=300)
    elites = selection.elites()
    pinned = next(iter(elites))
    selection.pin(pinned)
    selection.favor(pinned, 3)
    store.close()
    return {"path": path, "elites": elites, "pinned": pinned}


class _Hungry(nn.Module):
    """Asks for 4 TB in its forward: a real allocation failure, from a genome any file holds."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch.empty(10**12)
        return x


def _hungry_build(params: list, features: int) -> tuple[list[nn.Module], int]:
    return [_Hungry()], features


@pytest.fixture
def hungry_genome() -> list:
    """A genome whose training runs out of memory for real.

    (A 784 x 10**9 weight is past the file limits, so the Selection refuses such
    a genome before it is ever trained.)
    """
    genome.register_layer("test_hungry", [], _hungry_build)
    return [("test_hungry", [])]
