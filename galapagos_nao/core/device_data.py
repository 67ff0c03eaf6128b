"""A task's splits resident on a device: the seeded validation split and the per-device copies."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import torch

from galapagos_nao.core.datasets import ReplayTask, Task
from galapagos_nao.core.transform import IDENTITY, InputTransform

__all__ = ["DeviceData", "DeviceDataCache", "resolve_device", "split_validation"]

#: Seed of the train/validation split: fixed so every candidate is judged on the same data.
SPLIT_SEED = 0


def resolve_device(name: str) -> torch.device:
    """``"auto"`` → the first CUDA device when available, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass(frozen=True)
class DeviceData:
    """A task's splits resident on one device.

    Shapes: ``x_*`` are ``(n, *input_shape)`` float32, ``y_*`` are ``(n,)`` int64.
    """

    device: torch.device
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    input_shape: tuple[int, ...]
    n_classes: int
    # already applied to x_*; trained records carry it so their models take raw data
    input_transform: InputTransform = IDENTITY
    # (n_val,) / (n_test,) int64 task of each sample when accuracy is a mean over
    # the tasks of a stream (a ReplayTask); None: plain accuracy
    val_groups: torch.Tensor | None = None
    test_groups: torch.Tensor | None = None


def split_validation(task: Task, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(train, val)`` of a seeded random split of the task's training data."""
    n = task.x_train.shape[0]
    n_val = max(1, min(n - 1, int(round(n * fraction))))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED))
    return order[n_val:], order[:n_val]


class DeviceDataCache:
    """One copy of each split per (task, device, validation fraction), made on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._copies: dict[tuple[int, str, float], DeviceData] = {}

    def get(self, task: Task, device: torch.device, validation_fraction: float) -> DeviceData:
        """The task's splits on ``device``, copied there the first time only."""
        key = (id(task), str(device), validation_fraction)
        with self._lock:  # copies are made once even if several workers ask at once
            found = self._copies.get(key)
            if found is None:
                found = self._copy(task, device, validation_fraction)
                self._copies[key] = found
            return found

    @staticmethod
    def _copy(task: Task, device: torch.device, validation_fraction: float) -> DeviceData:
        if isinstance(task, ReplayTask):
            data = _replay_copy(task, device)
        else:
            data = _plain_copy(task, device, validation_fraction)
        if device.type == "cuda":
            # The copies ran on the asking worker's stream; other workers read them
            # from their own streams, so they must be complete before anyone does.
            torch.cuda.current_stream(device).synchronize()
        return data

    def clear(self) -> None:
        """Frees every device copy."""
        with self._lock:
            self._copies.clear()


def _plain_copy(task: Task, device: torch.device, validation_fraction: float) -> DeviceData:
    train_index, val_index = split_validation(task, validation_fraction)
    return DeviceData(
        device=device,
        x_train=task.x_train[train_index].to(device),
        y_train=task.y_train[train_index].to(device),
        x_val=task.x_train[val_index].to(device),
        y_val=task.y_train[val_index].to(device),
        x_test=task.x_test.to(device),
        y_test=task.y_test.to(device),
        input_shape=task.input_shape,
        n_classes=task.n_classes,
        input_transform=task.input_transform,
    )


def _replay_copy(task: ReplayTask, device: torch.device) -> DeviceData:
    # The stream carved each task's validation split already: train on all of x_train.
    return DeviceData(
        device=device,
        x_train=task.x_train.to(device),
        y_train=task.y_train.to(device),
        x_val=task.x_val.to(device),
        y_val=task.y_val.to(device),
        x_test=task.x_test.to(device),
        y_test=task.y_test.to(device),
        input_shape=task.input_shape,
        n_classes=task.n_classes,
        input_transform=task.input_transform,
        val_groups=task.val_groups.to(device),
        test_groups=task.test_groups.to(device),
    )
