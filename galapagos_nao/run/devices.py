"""Where candidates train: devices, how many at once, and in which order.

Pure planning from the ``training.device`` and ``orchestration.workers`` settings
and the machine's cores and GPUs; the evaluators follow these plans.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

from galapagos_nao.core.datasets import Task
from galapagos_nao.core.device_data import resolve_device
from galapagos_nao.core.training import estimated_macs
from galapagos_nao.run.records import Candidate

__all__ = [
    "STREAMS_PER_GPU",
    "assign_devices",
    "longest_first",
    "plan_cpu_workers",
    "plan_workers",
    "training_devices",
    "usable_cores",
]


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def plan_cpu_workers(
    n_candidates: int, workers: Any = "auto", threads: Any = "auto"
) -> tuple[int, int]:
    """How many candidates train at once on the CPU, and intra-op threads for each.

    ``auto`` gives every core a candidate (up to the number of candidates) and
    splits the cores evenly among them, so workers × threads never exceeds the
    cores. Why candidates rather than threads: the networks evolution makes are
    small, so a training step is mostly short operators and Python overhead,
    which one thread runs no slower than two, while two candidates on two cores
    do twice the work; oversubscribing the cores only adds context switches and
    OpenMP spin-waits. ``make bench`` measures this choice against the
    alternatives (see docs/guide/performance.md). The thread count is applied
    inside each worker thread, since torch's intra-op setting is per thread.
    """
    cores = usable_cores()
    n_workers = min(max(1, n_candidates), cores) if workers == "auto" else int(workers)
    n_threads = max(1, cores // n_workers) if threads == "auto" else int(threads)
    return n_workers, n_threads


#: Candidates trained at once per GPU when ``workers`` is ``auto``. Each worker
#: thread has its own CUDA stream, so one candidate's kernels fill the gaps left by
#: another's Python overhead; but small networks leave the GPU waiting on the CPU
#: thread that launches their kernels, and more threads only fight over the GIL.
#: Measured on an H200 (benchmarks/RESULTS.md): 1, 2, 4, 8 workers trained 345,
#: 467, 369, 372 seed-genome candidates per minute.
STREAMS_PER_GPU = 2


def plan_workers(
    n_candidates: int, devices: Sequence[torch.device], workers: Any = "auto", threads: Any = "auto"
) -> tuple[int, int]:
    """Workers (candidates at once) and intra-op threads per worker for ``devices``.

    On GPUs: up to :data:`STREAMS_PER_GPU` candidates per device (or ``workers``),
    one CPU thread each (the CPU only launches kernels). On the CPU:
    :func:`plan_cpu_workers`.
    """
    if devices and devices[0].type == "cuda":
        wanted = max(1, n_candidates) if workers == "auto" else int(workers)
        limit = STREAMS_PER_GPU * len(devices) if workers == "auto" else wanted
        return min(wanted, limit), 1
    return plan_cpu_workers(n_candidates, workers, threads)


def training_devices(setting: str, cuda_count: int | None = None) -> list[torch.device]:
    """Devices candidates are spread over, round-robin: every GPU for 'auto'/'cuda'.

    Args:
        setting: The ``training.device`` setting.
        cuda_count: GPUs visible; None asks torch.
    """
    if cuda_count is None:
        cuda_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if setting in ("auto", "cuda") and cuda_count > 0:
        return [torch.device("cuda", i) for i in range(cuda_count)]
    if setting == "auto":
        return [torch.device("cpu")]
    return [resolve_device(setting)]


def assign_devices(
    candidates: Sequence[Candidate], devices: Sequence[torch.device]
) -> list[torch.device]:
    """The device of each candidate: round-robin over ``devices`` by candidate index."""
    return [devices[c.index % len(devices)] for c in candidates]


def longest_first(
    candidates: Sequence[Candidate], devices: Sequence[torch.device], task: Task
) -> list[tuple[Candidate, torch.device]]:
    """Candidates paired with their devices, costliest first.

    A generation ends when its last candidate does: starting the big ones first
    lets the small ones fill the other workers meanwhile, instead of one big
    candidate finishing alone at the end (longest-processing-time scheduling).
    """
    pairs = list(zip(candidates, devices, strict=True))
    pairs.sort(key=lambda pair: -estimated_macs(pair[0].layers, task.input_shape, task.n_classes))
    return pairs
