"""Grouped training against the per-candidate path, seed genome, through ``evolve``.

Each row is a short run of clones (:func:`benchmarks.engine.measure_engine`)
with ``training.group_size`` set: 1 is the per-candidate path (one candidate
per core on the CPU), ``n / cores`` gives every worker one group, ``n`` puts the
whole generation in one group. Run alone with
``python -m benchmarks --sections grouped`` (add ``--device cuda`` on a GPU).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from benchmarks.engine import measure_engine
from galapagos_nao.core.datasets import Task
from galapagos_nao.example import seed_layers
from galapagos_nao.run.devices import usable_cores

__all__ = ["CPU_SIZES", "grouped_rows"]

#: Generation sizes of the CPU rows (three measured generations each: one is lost in the noise).
CPU_SIZES = (4, 8)


def _group_sizes(size: int, on_gpu: bool) -> list[int]:
    if on_gpu:
        return [1, size]
    per_core = max(1, -(-size // usable_cores()))
    return sorted({1, per_core, size})


def grouped_rows(
    task: Task, device: str, seed: int, sizes: Sequence[int] = CPU_SIZES, generations: int = 3
) -> dict[str, Any]:
    """Candidate-epochs per minute at each generation size and group size.

    Returns:
        ``{"genome", "rows": [{generation_size, group_size, per_minute, test_acc,
        ratio}]}``; ``ratio`` is against group size 1 at the same generation size.
    """
    on_gpu = device.startswith("cuda")
    rows = []
    for size in sizes:
        baseline = None
        for group_size in _group_sizes(size, on_gpu):
            measure = measure_engine(
                [seed_layers()],
                task,
                seed=seed,
                generation_size=size,
                generations=generations,
                training={"device": device, "group_size": group_size},
            )
            if group_size == 1:
                baseline = measure.per_minute
            rows.append(
                {
                    "generation_size": size,
                    "group_size": group_size,
                    "per_minute": measure.per_minute,
                    "cpu_per_candidate": measure.cpu_per_candidate,
                    "test_acc": measure.test_acc,
                    "failures": len(measure.failures),
                    "ratio": measure.per_minute / baseline if baseline else float("nan"),
                }
            )
    return {"genome": "8 layers (seed)", "rows": rows}
