"""Fixtures shared by the run tests."""

from __future__ import annotations

import pytest
import torch

from galapagos_nao.core import datasets


def separable_task(n_train: int, n_test: int, name: str) -> datasets.Task:
    """Samples of 4 features, two classes (the sign of the first): trains in milliseconds."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n_train + n_test, 4, generator=generator)
    y = (x[:, 0] > 0).long()
    return datasets.from_tensors(x[:n_train], y[:n_train], x[n_train:], y[n_train:], name=name)


@pytest.fixture
def tiny_task() -> datasets.Task:
    """64 training and 32 test samples."""
    return separable_task(64, 32, "tiny")


@pytest.fixture
def wide_task() -> datasets.Task:
    """600 training samples: room for a batch of 512."""
    return separable_task(600, 200, "wide")
