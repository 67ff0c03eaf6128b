"""The population rows of issue 12: grouped training at large generation sizes, on a GPU.

For the seed genome at each generation size (16, 64, 256, 1,024 on a GPU), with
mutation off (every child has the seed's shapes) and on (real, heterogeneous
children at the default mutation rate): candidate-epochs per minute through
``evolve`` with ``group_size="auto"``, the share of the float32 matmul peak,
the mean group size, the share of its multiply-adds a group spends on padding,
and the ratio to today's per-candidate path
(``group_size=1``, measured in the same run at the smallest size: at 1,024 it
would take minutes). ``--quick`` (CPU smoke test) uses sizes 4 and 8.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from benchmarks.engine import measure_engine
from benchmarks.genomes import training_flops
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core.datasets import Task
from galapagos_nao.core.device_data import split_validation
from galapagos_nao.example import seed_layers

__all__ = ["GPU_SIZES", "QUICK_SIZES", "population_rows"]

#: Generation sizes of the GPU rows (the issue's).
GPU_SIZES = (16, 64, 256, 1024)
#: Generation sizes of ``--quick``, to try the section on a CPU in seconds.
QUICK_SIZES = (4, 8)
#: The default mutation rate: children of one parent then differ in widths and types.
MUTATION_ON = 0.25


def population_rows(
    task: Task, device: str, seed: int, peak: float, sizes: Sequence[int] = GPU_SIZES
) -> dict[str, Any]:
    """Grouped throughput at each size, mutation off and on, against the per-candidate path.

    Args:
        task: The data (its training split sets the work per candidate-epoch).
        device: ``"cuda"`` (or ``"cpu"`` for a smoke test).
        seed: The runs' seed.
        peak: Float32 matmul peak of ``device`` in FLOP/s.
        sizes: Generation sizes.

    Returns:
        ``{"baseline": {...}, "rows": [...]}``, one row per size and mutation setting.
    """
    layers = seed_layers()
    flops = training_flops(layers, task.input_shape, task.n_classes)
    fraction = Parameters.defaults()["training"]["validation_fraction"]
    n_train = int(split_validation(task, fraction)[0].numel())
    training = {"device": device, "group_size": "auto"}
    baseline = measure_engine(
        [layers],
        task,
        seed=seed,
        generation_size=sizes[0],
        training={**training, "group_size": 1},
    )
    print(f"population baseline: {baseline.per_minute:.1f}/min", file=sys.stderr, flush=True)
    rows = []
    for mutation in (0.0, MUTATION_ON):
        for size in sizes:
            measure = measure_engine(
                [layers],
                task,
                seed=seed,
                generation_size=size,
                training=training,
                evolution={"mutation_rate": mutation},
            )
            row = {
                "generation_size": size,
                "mutation": "on" if mutation else "off",
                "per_minute": measure.per_minute,
                # Mutated children differ in size: the seed genome's FLOPs are nominal there.
                "percent_of_peak": 100 * flops * n_train * measure.per_minute / 60 / peak,
                "mean_group_size": measure.mean_group_size,
                "padded_share": measure.padded_share,
                "ratio": measure.per_minute / baseline.per_minute,
                "overhead": measure.overhead,
                "test_acc": measure.test_acc,
                "failures": len(measure.failures),
            }
            rows.append(row)
            # Printed as measured: a run cut short by its time limit still leaves its rows.
            print(f"population row: {row}", file=sys.stderr, flush=True)
    return {
        "genome": "8 layers (seed)",
        "baseline": {
            "generation_size": sizes[0],
            "per_minute": baseline.per_minute,
            "test_acc": baseline.test_acc,
        },
        "rows": rows,
    }
