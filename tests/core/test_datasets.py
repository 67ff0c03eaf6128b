"""Tests for galapagos_nao.core.datasets: MNIST sources, the bundled subset, user tensors."""

from __future__ import annotations

import logging
import os
import re
import struct
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

import galapagos_nao
from galapagos_nao.core import datasets
from galapagos_nao.core.datasets import (
    DATA_DIR_ENV,
    Task,
    bundled_mnist,
    default_task,
    from_tensors,
    mnist,
    mnist_data,
    subset,
)

# Anchored on the package root, where the data ships, not on the module that loads it.
BUNDLED_NPZ = Path(galapagos_nao.__file__).parent / "data" / "mnist_subset.npz"
LOGGER = "galapagos_nao.core.datasets"


def _write_idx(path: Path, magic: int, array: np.ndarray) -> None:
    header = struct.pack(f">I{array.ndim}I", magic, *array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def _make_mnist_root(root: Path, n_train: int = 50, n_test: int = 20) -> Path:
    """Write a tiny MNIST (real images from the bundled file) laid out for torchvision."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    with np.load(BUNDLED_NPZ, allow_pickle=False) as arrays:
        _write_idx(raw / "train-images-idx3-ubyte", 2051, arrays["x_train"][:n_train])
        _write_idx(raw / "train-labels-idx1-ubyte", 2049, arrays["y_train"][:n_train])
        _write_idx(raw / "t10k-images-idx3-ubyte", 2051, arrays["x_test"][:n_test])
        _write_idx(raw / "t10k-labels-idx1-ubyte", 2049, arrays["y_test"][:n_test])
    return root


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No MNIST anywhere: empty GN_DATA_DIR and an empty user cache."""
    (tmp_path / "data").mkdir()
    (tmp_path / "cache").mkdir()
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _xy(n: int, n_classes: int = 3, shape: tuple[int, ...] = (4,)) -> tuple[torch.Tensor, ...]:
    return torch.randn(n, *shape), torch.arange(n) % n_classes


# ------------------------------------------------------------------ mnist()


def test_mnist_from_explicit_root_loads_full_standardized_splits(mnist_root: Path | None) -> None:
    root = mnist_root
    if root is None:
        pytest.skip("real MNIST not available (set GN_DATA_DIR or provide ../shared/data)")

    task = mnist(root)

    assert (task.n_train, task.n_test) == (60000, 10000)
    assert task.input_shape == (1, 28, 28)
    assert task.x_train.dtype == torch.float32 and task.y_train.dtype == torch.int64
    assert task.n_classes == 10
    assert torch.equal(task.y_train.unique(), torch.arange(10))
    assert torch.equal(task.y_test.unique(), torch.arange(10))
    assert abs(float(task.x_train.mean())) < 0.01
    assert abs(float(task.x_train.std()) - 1.0) < 0.01
    assert task.source == f"torchvision:{root}"


def test_mnist_missing_explicit_root_raises_naming_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="MNIST/raw") as info:
        mnist(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(info.value)
    assert "train-images-idx3-ubyte" in str(info.value)


def test_mnist_root_pointing_at_raw_folder_suggests_the_dataset_root(tmp_path: Path) -> None:
    raw = _make_mnist_root(tmp_path / "data") / "MNIST" / "raw"
    with pytest.raises(FileNotFoundError, match=re.escape(f"pass {tmp_path / 'data'} instead")):
        mnist(raw)


def test_mnist_explicit_root_wins_over_gn_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    explicit = _make_mnist_root(tmp_path / "explicit", n_train=30)
    monkeypatch.setenv(DATA_DIR_ENV, str(_make_mnist_root(tmp_path / "env", n_train=40)))

    task = mnist(explicit)

    assert task.n_train == 30
    assert task.source == f"torchvision:{explicit}"


def test_mnist_uses_gn_data_dir_when_no_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    env_root = _make_mnist_root(tmp_path / "env", n_train=40, n_test=10)
    monkeypatch.setenv(DATA_DIR_ENV, str(env_root))

    with caplog.at_level(logging.INFO, logger=LOGGER):
        task = mnist(download=False)

    assert (task.n_train, task.n_test) == (40, 10)
    assert task.input_shape == (1, 28, 28)
    assert task.source == f"torchvision:{env_root}"
    assert any(DATA_DIR_ENV in r.getMessage() for r in caplog.records if r.name == LOGGER)


def test_mnist_uses_user_cache_when_gn_data_dir_lacks_it(
    tmp_path: Path, offline: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "xdg"
    _make_mnist_root(cache / "galapagos_nao", n_train=25)
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))

    task = mnist(download=False)

    assert task.n_train == 25
    assert task.source == f"torchvision:{cache / 'galapagos_nao'}"


def test_mnist_offline_falls_back_to_bundled_subset_and_logs_it(
    offline: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=LOGGER):
        task = mnist(download=False)

    assert task.name == "mnist-bundled"
    assert "bundled" in task.source
    infos = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.INFO]
    assert any("bundled subset" in r.getMessage() for r in infos)
    assert any(
        DATA_DIR_ENV in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
    )


def test_mnist_failed_download_falls_back_to_bundled_subset_with_warning(
    offline: None, caplog: pytest.LogCaptureFixture
) -> None:
    # conftest makes torchvision's download raise, as it would offline.
    with caplog.at_level(logging.INFO, logger=LOGGER):
        task = mnist(download=True)

    assert task.name == "mnist-bundled"
    assert any("could not download MNIST" in r.getMessage() for r in caplog.records)


# ----------------------------------------------------------- bundled subset


def test_bundled_file_is_small_and_loads_without_pickle() -> None:
    assert BUNDLED_NPZ.stat().st_size <= 3_200_000
    with np.load(BUNDLED_NPZ, allow_pickle=False) as arrays:
        assert sorted(arrays.files) == ["x_test", "x_train", "y_test", "y_train"]
        assert arrays["x_train"].dtype == np.uint8
        assert arrays["x_train"].shape[1:] == (28, 28)
        assert arrays["y_test"].dtype == np.uint8
        assert len(arrays["x_train"]) == len(arrays["y_train"])
        assert len(arrays["x_test"]) == len(arrays["y_test"])


def test_bundled_subset_ships_its_attribution() -> None:
    text = (BUNDLED_NPZ.parent / "MNIST_SUBSET_LICENSE.md").read_text(encoding="utf-8")
    for needle in ("Yann LeCun", "Corinna Cortes", "Burges", "CC BY-SA 3.0"):
        assert needle in text


def test_bundled_mnist_is_class_balanced_and_standardized_like_mnist() -> None:
    task = bundled_mnist()

    assert task.input_shape == (1, 28, 28)
    assert task.n_classes == 10
    counts = torch.bincount(task.y_train, minlength=10)
    assert bool((counts == counts[0]).all())
    assert abs(float(task.x_train.mean())) < 0.05
    # Background pixels map to the same value as in mnist(): (0 - mean) / std.
    expected_background = -datasets.MNIST_MEAN / datasets.MNIST_STD
    assert float(task.x_train.min()) == pytest.approx(expected_background)


# ----------------------------------------------------------- from_tensors()


def test_from_tensors_converts_numpy_and_infers_classes() -> None:
    x = np.arange(24, dtype=np.int32).reshape(6, 2, 2)
    y = np.array([0, 1, 2, 0, 1, 4], dtype=np.int16)

    task = from_tensors(x, y, x[:2], y[:2], name="toy")

    assert task.x_train.dtype == torch.float32 and task.y_train.dtype == torch.int64
    assert task.input_shape == (2, 2)
    assert task.n_classes == 5
    assert task.name == "toy" and task.source == "user tensors"
    assert "tensor(" not in repr(task)


@pytest.mark.parametrize(
    ("args", "error", "pattern"),
    [
        pytest.param(
            lambda: (torch.randn(10, 4), torch.arange(9) % 3, *_xy(5)),
            ValueError,
            r"x_train has 10 samples but y_train has 9",
            id="length-mismatch-train",
        ),
        pytest.param(
            lambda: (*_xy(6), torch.randn(5, 4), torch.arange(4) % 3),
            ValueError,
            r"x_test has 5 samples but y_test has 4",
            id="length-mismatch-test",
        ),
        pytest.param(
            lambda: (*_xy(6), torch.randn(3, 4), torch.tensor([0, 1, 7])),
            ValueError,
            r"y_test\[2\] = 7 is out of range for n_classes=3",
            id="label-out-of-range",
        ),
        pytest.param(
            lambda: (torch.randn(3, 4), torch.tensor([0, -1, 1]), *_xy(3)),
            ValueError,
            r"y_train\[1\] = -1 is negative",
            id="negative-label",
        ),
        pytest.param(
            lambda: (*_xy(6), [[0.0] * 4] * 3, torch.arange(3)),
            TypeError,
            r"x_test must be a torch.Tensor or numpy.ndarray, got list",
            id="wrong-type",
        ),
        pytest.param(
            lambda: (torch.randn(3, 4), torch.tensor([0.0, 1.0, 2.0]), *_xy(3)),
            TypeError,
            r"y_train must have an integer dtype, got torch.float32",
            id="float-labels",
        ),
        pytest.param(
            lambda: (*_xy(6), *_xy(3, shape=(5,))),
            ValueError,
            r"x_test samples have shape \(5,\) but x_train samples have shape \(4,\)",
            id="sample-shape-mismatch",
        ),
        pytest.param(
            lambda: (torch.tensor([[1.0], [float("nan")], [0.0]]), torch.arange(3), *_xy(3)),
            ValueError,
            r"x_train\[1\] contains a non-finite value",
            id="non-finite-input",
        ),
        pytest.param(
            lambda: (np.array([["a"], ["b"]]), torch.arange(2), *_xy(3)),
            TypeError,
            r"x_train has numpy dtype <U1",
            id="string-array",
        ),
        pytest.param(
            lambda: (torch.randn(3), torch.arange(3), *_xy(3)),
            ValueError,
            r"x_train must have shape \(n_samples, \*input_shape\), got \(3,\)",
            id="inputs-without-sample-axis",
        ),
    ],
)
def test_from_tensors_rejects_bad_input_naming_the_argument(args, error, pattern) -> None:
    with pytest.raises(error, match=pattern):
        from_tensors(*args(), n_classes=3)


def test_from_tensors_rejects_bad_n_classes() -> None:
    with pytest.raises(ValueError, match=r"y_train\[2\] = 2 is out of range for n_classes=2"):
        from_tensors(*_xy(4), *_xy(2, n_classes=2), n_classes=2)
    with pytest.raises(ValueError, match="n_classes must be at least 2, got 1"):
        from_tensors(*_xy(4), *_xy(2), n_classes=1)
    with pytest.raises(TypeError, match="n_classes must be an int, got float"):
        from_tensors(*_xy(4), *_xy(2), n_classes=3.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="only contain class 0"):
        from_tensors(torch.randn(3, 4), torch.zeros(3, dtype=torch.int64), *_xy(2, n_classes=1))


# ------------------------------------------------------------------ subset()


def test_subset_is_seeded_and_reproducible(small_mnist: Task) -> None:
    first = subset(small_mnist, 500, 100, seed=3)
    again = subset(small_mnist, 500, 100, seed=3)
    other = subset(small_mnist, 500, 100, seed=4)

    assert torch.equal(first.x_train, again.x_train) and torch.equal(first.y_test, again.y_test)
    assert not torch.equal(first.x_train, other.x_train)
    assert (first.n_train, first.n_test) == (500, 100)
    assert first.n_classes == small_mnist.n_classes


def test_subset_is_class_balanced(small_mnist: Task) -> None:
    assert torch.equal(torch.bincount(small_mnist.y_train, minlength=10), torch.full((10,), 300))
    picked = subset(small_mnist, 1005, seed=1)
    counts = torch.bincount(picked.y_train, minlength=10)
    assert int(counts.min()) == 100 and int(counts.max()) == 101
    assert picked.n_test == small_mnist.n_test


def test_subset_lets_other_classes_fill_in_for_a_short_class() -> None:
    labels = torch.tensor([0] * 2 + [1] * 10 + [2] * 10)
    task = from_tensors(torch.randn(22, 3), labels, torch.randn(2, 3), torch.tensor([0, 1]))

    picked = subset(task, 12, seed=0)

    assert torch.bincount(picked.y_train).tolist() == [2, 5, 5]


def test_subset_rejects_sizes_out_of_range(small_mnist: Task) -> None:
    with pytest.raises(ValueError, match=r"n_train must be in \[1, 3000\], got 3001"):
        subset(small_mnist, 3001)
    with pytest.raises(ValueError, match=r"n_test must be in \[1, 1000\], got 0"):
        subset(small_mnist, 10, 0)


# ------------------------------------------------------------ default_task()


def test_default_task_loads_once_across_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    loaded = from_tensors(*_xy(4), *_xy(2))

    def fake_mnist() -> Task:
        calls.append(1)
        return loaded

    # default_task() looks mnist() up in the module that defines both.
    monkeypatch.setattr(mnist_data, "mnist", fake_mnist)
    monkeypatch.setattr(mnist_data, "_default_task", None)
    results: list[Task] = []
    threads = [threading.Thread(target=lambda: results.append(default_task())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(calls) == 1
    assert len(results) == 8 and all(task is loaded for task in results)


def test_conftest_points_gn_home_at_a_temporary_directory() -> None:
    assert "gn_home" in os.environ["GN_HOME"]
