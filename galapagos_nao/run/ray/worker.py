"""What travels to a Ray worker for one candidate, and what runs there.

The driver side is :mod:`galapagos_nao.run.ray.driver`. A task gets a
:class:`TaskRequest` (the candidate with its parent record stripped of weights,
the training settings, the user's layer types) plus refs to the run's data and
to the parent's weights; it yields :data:`STARTED` first, then a
:class:`TaskResult`. This module imports Ray only inside the task body, so the
package imports without the extra.
"""

from __future__ import annotations

import dataclasses
import os
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from galapagos_nao.core import genome
from galapagos_nao.core.datasets import Task
from galapagos_nao.core.device_data import DeviceData, DeviceDataCache, resolve_device
from galapagos_nao.core.training import CandidateFailure, TrainSettings, never
from galapagos_nao.run.log_relay import collecting
from galapagos_nao.run.records import Candidate
from galapagos_nao.run.train import train_candidate

__all__ = [
    "STARTED",
    "TaskRequest",
    "TaskResult",
    "custom_layer_types",
    "data_on_worker",
    "register_missing",
    "run_candidate_task",
    "task_arrays",
    "task_from_arrays",
    "task_settings",
]

#: The first item every task yields, so the driver times training, not queueing.
STARTED = "started"


@dataclass(frozen=True)
class TaskRequest:
    """Everything one candidate task needs besides the shared data.

    Attributes:
        candidate: The candidate; its parent record travels without weights.
        settings: Training settings of the generation.
        timeout: Seconds training may take, counted on the worker.
        threads: Torch intra-op threads in the worker (the same as the local
            backend's for the same settings, so results match).
        log_level: The driver's level for ``galapagos_nao``; records below it are not sent.
        layer_types: Layer types registered by the user, for workers that lack them.
    """

    candidate: Candidate
    settings: TrainSettings
    timeout: float
    threads: int
    log_level: int
    layer_types: tuple[genome.LayerType, ...] = ()


@dataclass(frozen=True)
class TaskResult:
    """What a finished task sends back.

    Attributes:
        network: The trained record, without weights (they travel as a plain dict).
        weights: Its state dict as CPU tensors.
        seconds: Training wall time on the worker.
        logs: ``(logger name, level, message)`` of each record training emitted.
    """

    network: Any
    weights: dict[str, torch.Tensor]
    seconds: float
    logs: tuple[tuple[str, int, str], ...]


def task_arrays(task: Task) -> dict[str, Any]:
    """The task as numpy arrays and plain fields: the object store maps arrays without copying."""
    return {
        "name": task.name,
        "n_classes": task.n_classes,
        "source": task.source,
        "input_transform": task.input_transform,
        "x_train": task.x_train.numpy(),
        "y_train": task.y_train.numpy(),
        "x_test": task.x_test.numpy(),
        "y_test": task.y_test.numpy(),
    }


def task_from_arrays(arrays: Mapping[str, Any]) -> Task:
    """The inverse of :func:`task_arrays`, sharing the arrays' memory."""
    tensors = {}
    with warnings.catch_warnings():
        # Arrays from the object store are read-only; the task is never written to
        # (device copies are made from it), so sharing their memory is safe.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        for key in ("x_train", "y_train", "x_test", "y_test"):
            tensors[key] = torch.from_numpy(arrays[key])
    return Task(
        name=arrays["name"],
        n_classes=arrays["n_classes"],
        source=arrays["source"],
        input_transform=arrays["input_transform"],
        **tensors,
    )


def custom_layer_types(
    genomes: Iterable[Sequence[Any]] | None = None,
) -> tuple[genome.LayerType, ...]:
    """Layer types registered outside the library, which a fresh worker would not know.

    Args:
        genomes: When given, only the types these genomes use are returned: a
            task carries what it needs, and a type registered for something
            else (perhaps holding a lock no process can receive) stays here.
    """
    used = None if genomes is None else {layer[0] for layers in genomes for layer in layers}
    return tuple(
        t
        for t in genome.layer_types().values()
        if not genome.is_builtin(t) and (used is None or t.name in used)
    )


# -- the worker side ---------------------------------------------------------------

#: One run's data per worker process: data ref id -> (task, its device copies).
_worker_data: dict[str, tuple[Task, DeviceDataCache]] = {}


def data_on_worker(ray: Any, task_ref: Any, settings: TrainSettings) -> DeviceData:
    """The run's data on the device ``settings`` name, fetched and copied once per worker."""
    key = task_ref.hex()
    entry = _worker_data.get(key)
    if entry is None:
        _worker_data.clear()  # a worker keeps only the latest run's data
        entry = (task_from_arrays(ray.get(task_ref)), DeviceDataCache())
        _worker_data[key] = entry
    task, cache = entry
    return cache.get(task, resolve_device(settings.device), settings.validation_fraction)


def register_missing(layer_types: Sequence[genome.LayerType]) -> None:
    """Registers the user's layer types this worker process does not know yet."""
    known = genome.layer_types()
    for layer_type in layer_types:
        if layer_type.name not in known:
            genome.register_layer(
                layer_type.name,
                layer_type.params,
                layer_type.build,
                shape_aware=layer_type.shape_aware,
            )


#: CUDA_VISIBLE_DEVICES when this worker process first used a GPU. torch numbers
#: devices by it for the life of the process, while Ray sets the variable anew for
#: every task it gives a reused worker.
_cuda_visible_at_start: list[str] | None = None


def task_settings(settings: TrainSettings, gpu_ids: Sequence[Any]) -> TrainSettings:
    """The settings with the device this task may use: the GPU Ray gave it, or the CPU.

    Raises:
        CandidateFailure: if this process started on other GPUs than the one
            given (a multi-GPU node); the driver retries, likely elsewhere.
    """
    global _cuda_visible_at_start
    if settings.device == "cpu" or not gpu_ids:
        # No GPU reserved: never touch one, even if this process used one before.
        return dataclasses.replace(settings, device="cpu")
    if _cuda_visible_at_start is None:
        _cuda_visible_at_start = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")
    given = str(gpu_ids[0])
    if given not in _cuda_visible_at_start:
        raise CandidateFailure(
            f"this Ray worker started on GPUs {_cuda_visible_at_start} and cannot reach GPU {given}"
        )
    return dataclasses.replace(settings, device=f"cuda:{_cuda_visible_at_start.index(given)}")


def run_candidate_task(request: TaskRequest, shared: list[Any]) -> Iterator[Any]:
    """The body of one Ray task: trains a candidate on the worker.

    Yields ``"started"`` first (so the driver times training, not queueing),
    then a :class:`TaskResult`. Failures raise; the driver retries or drops.

    Args:
        request: The candidate and its settings.
        shared: ``[task ref, parent weights ref or None]``; nested so Ray hands
            over the refs and the worker fetches only what it has not cached.
    """
    yield STARTED
    import ray  # present wherever this runs: it is a Ray worker

    torch.set_num_threads(request.threads)
    register_missing(request.layer_types)
    settings = task_settings(request.settings, ray.get_gpu_ids())
    data = data_on_worker(ray, shared[0], settings)
    candidate = request.candidate
    if shared[1] is not None and candidate.parent is not None:
        parent = candidate.parent.replace(weights=ray.get(shared[1]))
        candidate = dataclasses.replace(candidate, parent=parent)
    try:
        with collecting(request.log_level) as logs:
            outcome = train_candidate(
                candidate, data, settings, never, time.monotonic() + request.timeout
            )
    finally:
        if settings.device.startswith("cuda"):
            torch.cuda.empty_cache()  # the GPU may be shared with other tasks (num_gpus < 1)
    network = outcome.network
    if network is None or network.weights is None:  # train_candidate raises instead; kept for mypy
        raise CandidateFailure("training returned no weights")
    yield TaskResult(
        network=network.replace(weights=None),
        weights=dict(network.weights),
        seconds=outcome.seconds,
        logs=tuple(logs),
    )
