"""Soak: does resident memory stay flat over thousands of generations?

Run it with ``python -m benchmarks.soak`` (a few minutes on two cores). A
continual run evolves tiny genomes on a tiny synthetic task, untracked (no
workspace), so every generation costs milliseconds and whatever the process
keeps per generation shows up quickly. After a warm-up (allocator pools,
torch's kernels, the history and lineage windows filling up), the resident set
is sampled after every generation; the figure is the slope of a least-squares
line through those samples, in MiB per 1,000 generations. It prints one JSON
object; docs/guide/performance.md quotes it (target: at most 5 MiB).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

__all__ = ["rss_slope", "soak"]

MIB = 1024 * 1024


def _rss_bytes() -> int:
    # /proc/self/statm: sizes in pages; the second field is the resident set.
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def rss_slope(points: Sequence[tuple[int, int]]) -> float:
    """Least-squares slope of ``(generation, rss bytes)`` points, in MiB per 1,000 generations."""
    n = len(points)
    if n < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    cov = sum((x - mean_x) * (y - mean_y) for x, y in points)
    return 0.0 if var == 0 else cov / var * 1000 / MIB


def soak(generations: int, warmup: int, seed: int) -> dict[str, Any]:
    """Runs ``warmup + generations`` generations and measures RSS growth after the warm-up."""
    import torch

    import galapagos_nao as gn
    from galapagos_nao.archive.selection import Selection
    from galapagos_nao.config.parameters import Parameters

    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(seed)
    # Two well-separated classes of 4 features: each candidate trains in a millisecond.
    x = torch.randn(96, 4, generator=generator)
    y = (x[:, 0] > 0).long()
    task = gn.datasets.from_tensors(x[:64], y[:64], x[64:], y[64:], name="soak")
    parameters = Parameters()
    parameters.put("orchestration", {"generation_size": 2, "workers": 1, "threads_per_worker": 1})
    parameters.put("training", {"device": "cpu", "batch_size": 32})
    # Tiny genomes stay tiny: dense layers of a few units, rarely duplicated.
    parameters.put(
        "evolution", {"layer_types": {"dense": [4, "relu"], "dropout": [0.1]}, "std_dev": 0.5}
    )
    total = warmup + generations
    samples: list[tuple[int, int]] = []
    done = threading.Event()

    def sample(report: Any) -> None:
        if report.generation == warmup:
            gc.collect()  # start from a collected heap, so cycles are not counted as growth
        if report.generation >= warmup:
            samples.append((report.generation, _rss_bytes()))
        if report.generation + 1 >= total:
            done.set()

    started = time.perf_counter()
    run = gn.evolve(
        [("dense", [4, "relu"])],
        total,
        task,
        selection=Selection(parameters=parameters),
        parameters=parameters,
        seed=seed,
        hooks=[sample],
    )
    run.result()
    seconds = time.perf_counter() - started
    first, last = samples[0][1], samples[-1][1]
    return {
        "generations": generations,
        "warmup": warmup,
        "seconds": round(seconds, 1),
        "rss_start_mib": round(first / MIB, 1),
        "rss_end_mib": round(last / MIB, 1),
        "growth_mib_per_1000_generations": round(rss_slope(samples), 2),
        "history_entries_in_ram": len(run.selection.history()),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Parses the command line, runs the soak and prints its JSON; 1 if over the target."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--generations", type=int, default=10000, help="measured generations")
    parser.add_argument("--warmup", type=int, default=2000, help="generations before measuring")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--target", type=float, default=5.0, help="MiB per 1,000 generations")
    args = parser.parse_args(argv)
    result = soak(args.generations, args.warmup, args.seed)
    result["target_mib_per_1000_generations"] = args.target
    print(json.dumps(result, indent=2))
    return 0 if result["growth_mib_per_1000_generations"] <= args.target else 1


if __name__ == "__main__":
    sys.exit(main())
