"""Soak: do memory and the generation rate stay flat over thousands of generations?

Run it with ``python -m benchmarks.soak`` (about half an hour on two shared
cores). A continual run with the default evolution settings evolves the seed
genome on a small synthetic task (240 samples of 16 features, 4 complexity
levels: the task on which genomes once grew to hundreds of layers), tracked by
a workspace in a temporary folder (``--no-workspace`` runs it untracked), so
every generation also writes its checkpoint and history row. After a warm-up
(allocator pools, torch's kernels, the history window filling up), the
resident set is sampled after every generation; the growth figure is the slope
of a least-squares line through those samples, in MiB per 1,000 generations.
The generation rate is read over the first and the last ``--window``
measured generations. It prints one JSON object (docs/guide/performance.md
quotes it); exit status 1 when the growth is over ``--target`` MiB or the rate
fell below half its start.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
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


def _rate(times: Sequence[tuple[int, float]]) -> float:
    """Generations per second between the first and last ``(generation, time)`` point."""
    (first, started), (last, ended) = times[0], times[-1]
    return (last - first) / (ended - started) if ended > started else 0.0


def soak(
    generations: int,
    warmup: int,
    seed: int,
    *,
    workspace: Path | None,
    window: int = 500,
    progress_every: int = 0,
) -> dict[str, Any]:
    """Runs ``warmup + generations`` generations and measures what grows after the warm-up.

    Args:
        generations: Generations measured.
        warmup: Generations before measuring.
        seed: The run's seed.
        workspace: The workspace file that tracks the run; None runs untracked.
        window: Generations over which the start and end rates are read.
        progress_every: Prints a line to stderr every this many generations (0: never),
            so that a run cut short still tells how far it got.
    """
    import torch

    import galapagos_nao as gn
    from galapagos_nao.archive.selection import Selection
    from galapagos_nao.config.parameters import Parameters
    from galapagos_nao.example import seed_layers
    from galapagos_nao.store.workspace import Workspace

    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(240, 16, generator=generator)
    y = (x[:, :4].sum(dim=1) > 0).long()
    task = gn.datasets.from_tensors(x[:200], y[:200], x[200:], y[200:], name="soak")
    parameters = Parameters()
    parameters.put("orchestration", {"workers": 1, "threads_per_worker": 1})
    parameters.put("training", {"device": "cpu"})
    parameters.put("selection", {"complexity_levels": 4})
    selection = Selection(parameters=parameters)
    store = None if workspace is None else Workspace(workspace)
    gn.session.track(selection, store)
    total = warmup + generations
    samples: list[tuple[int, int]] = []
    times: list[tuple[int, float]] = []
    layers: dict[str, list[int]] = {}

    def sample(report: Any) -> None:
        if report.generation == warmup:
            gc.collect()  # start from a collected heap, so cycles are not counted as growth
        if report.generation >= warmup:
            samples.append((report.generation, _rss_bytes()))
            times.append((report.generation, time.perf_counter()))
        if progress_every and report.generation % progress_every == 0:
            print(
                f"generation {report.generation}: {_rss_bytes() / MIB:.1f} MiB, "
                f"{time.perf_counter() - started:.0f} s, elites of "
                f"{sorted(net.complexity for net in report.elites.values())} layers",
                file=sys.stderr,
                flush=True,
            )
        if report.generation in (warmup, total - 1):
            key = "start" if report.generation == warmup else "end"
            layers[key] = sorted(net.complexity for net in report.elites.values())

    started = time.perf_counter()
    try:
        run = gn.evolve(
            seed_layers(),
            total,
            task,
            selection=selection,
            parameters=parameters,
            seed=seed,
            hooks=[sample],
        )
        run.result()
    finally:
        gn.session.track(selection, None)
    seconds = time.perf_counter() - started
    window = max(2, min(window, len(times) // 2))
    return {
        "generations": generations,
        "warmup": warmup,
        "workspace": workspace is not None,
        "seconds": round(seconds, 1),
        "rate_start_per_s": round(_rate(times[:window]), 2),
        "rate_end_per_s": round(_rate(times[-window:]), 2),
        "rss_start_mib": round(samples[0][1] / MIB, 1),
        "rss_end_mib": round(samples[-1][1] / MIB, 1),
        "growth_mib_per_1000_generations": round(rss_slope(samples), 2),
        "elite_layers_start": layers.get("start"),
        "elite_layers_end": layers.get("end"),
        "history_entries_in_ram": len(selection.history()),
        "lineage_records_in_ram": len(gn.session.lineage_registry),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Parses the command line, runs the soak and prints its JSON; 1 if over the targets."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--generations", type=int, default=10000, help="measured generations")
    parser.add_argument("--warmup", type=int, default=2000, help="generations before measuring")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--window", type=int, default=500, help="generations a rate is read over")
    parser.add_argument("--target", type=float, default=5.0, help="MiB per 1,000 generations")
    parser.add_argument(
        "--progress", type=int, default=0, help="a line to stderr every N generations (0: none)"
    )
    parser.add_argument(
        "--no-workspace",
        action="store_true",
        help="run untracked (no checkpoints, no history rows)",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gn-soak-") as folder:
        workspace = None if args.no_workspace else Path(folder) / "soak.db"
        result = soak(
            args.generations,
            args.warmup,
            args.seed,
            workspace=workspace,
            window=args.window,
            progress_every=args.progress,
        )
    result["target_mib_per_1000_generations"] = args.target
    print(json.dumps(result, indent=2))
    flat_rate = result["rate_end_per_s"] >= 0.5 * result["rate_start_per_s"]
    flat_memory = result["growth_mib_per_1000_generations"] <= args.target
    return 0 if flat_rate and flat_memory else 1


if __name__ == "__main__":
    sys.exit(main())
