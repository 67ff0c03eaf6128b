"""What weight inheritance buys: the same seeded runs with and without it, on MNIST.

``python -m benchmarks.inheritance`` evolves the seed genome for ``--generations``
generations once per seed with ``evolution.inherit_weights`` on and once with it
off. Everything else is equal: the seed, the Parameters, and the number of
candidates trained for one epoch each (the candidate-epochs, reported so that
the equality is visible). It prints two markdown tables: the archive after the
last generation (best and per-level accuracy) and the best test accuracy along
the way.

Runs use their own Selection and Parameters, so they touch no workspace.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

import galapagos_nao as gn
from benchmarks import default_data_root
from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core import datasets
from galapagos_nao.core.datasets import Task
from galapagos_nao.example import seed_layers


@dataclass(frozen=True)
class Outcome:
    """One run's archive after its last generation."""

    inherit: bool  # weight inheritance on
    seed: int  # the run's seed
    best_val_acc: float  # fitness of the fittest elite
    best_test_acc: float  # its test accuracy (reported, never selected on)
    level_test_acc: dict[int, float]  # test accuracy of each level's elite
    candidate_epochs: int  # candidates trained (successfully or not) × epochs
    failed: int  # candidates dropped
    best_by_generation: list[float]  # test accuracy of the fittest elite after each generation
    seconds: float  # wall time of the run


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parses the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.inheritance", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--data", default=default_data_root(), help="dataset root holding MNIST/raw"
    )
    parser.add_argument(
        "--generations", type=int, default=20, help="generations per run (default 20)"
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2], help="run seeds (default 0 1 2)"
    )
    parser.add_argument(
        "--generation-size", type=int, default=4, help="children per generation (default 4)"
    )
    parser.add_argument("--epochs", type=int, default=1, help="epochs per candidate (default 1)")
    parser.add_argument(
        "--train", type=int, default=0, help="training samples to keep (default 0: all 60000)"
    )
    parser.add_argument("--device", default="cpu", help="'cpu' (default), 'cuda' or 'auto'")
    parser.add_argument("--json", default=None, help="also write every figure to this JSON file")
    return parser.parse_args(argv)


def run_once(task: Task, seed: int, inherit: bool, args: argparse.Namespace) -> Outcome:
    """One seeded run of ``args.generations`` generations from the seed genome."""
    parameters = Parameters()
    parameters.put(gn.evolution, {"inherit_weights": inherit})
    parameters.put(gn.orchestration, {"generation_size": args.generation_size})
    parameters.put(gn.training, {"epochs": args.epochs, "device": args.device})
    selection = Selection(parameters=parameters)
    started = time.monotonic()
    run = gn.evolve(seed_layers(), args.generations, task, selection=selection, seed=seed)
    elites = run.result()  # waits; re-raises what killed the run
    seconds = time.monotonic() - started
    status = run.status()
    best = max(elites.values(), key=lambda net: net.val_acc or 0.0)
    return Outcome(
        inherit=inherit,
        seed=seed,
        best_val_acc=float(best.val_acc or 0.0),
        best_test_acc=float(best.test_acc or 0.0),
        level_test_acc={int(level): float(net.test_acc or 0.0) for level, net in elites.items()},
        candidate_epochs=(status.evaluated + status.failed) * args.epochs,
        failed=status.failed,
        best_by_generation=[
            float(entry.stats.best_test_acc or 0.0) for entry in selection.history()
        ],
        seconds=seconds,
    )


def _mean(values: Sequence[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def archive_table(outcomes: Sequence[Outcome]) -> str:
    """Markdown: the archive after the last generation, one row per run, then the means."""
    levels = sorted({level for o in outcomes for level in o.level_test_acc})
    head = ["inheritance", "seed", "best val_acc", "best test_acc"]
    head += [f"level {level} test_acc" for level in levels] + [
        "candidate-epochs",
        "failed",
        "seconds",
    ]
    rows = [head, ["---"] * len(head)]
    for o in outcomes:
        cells = [
            "on" if o.inherit else "off",
            str(o.seed),
            f"{o.best_val_acc:.4f}",
            f"{o.best_test_acc:.4f}",
        ]
        cells += [
            f"{o.level_test_acc[level]:.4f}" if level in o.level_test_acc else "-"
            for level in levels
        ]
        rows.append(cells + [str(o.candidate_epochs), str(o.failed), f"{o.seconds:.0f}"])
    for inherit in (True, False):
        group = [o for o in outcomes if o.inherit is inherit]
        cells = [
            f"**{'on' if inherit else 'off'} (mean)**",
            "",
            _mean([o.best_val_acc for o in group]),
        ]
        cells.append(_mean([o.best_test_acc for o in group]))
        for level in levels:
            found = [o.level_test_acc[level] for o in group if level in o.level_test_acc]
            cells.append(_mean(found) if found else "-")
        cells += [
            str(sum(o.candidate_epochs for o in group)),
            str(sum(o.failed for o in group)),
            "",
        ]
        rows.append(cells)
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def curve_table(outcomes: Sequence[Outcome], generations: int) -> str:
    """Markdown: mean best test accuracy after some generations, with and without inheritance."""
    marks = sorted({1, max(1, generations // 4), max(1, generations // 2), generations})
    rows = [["inheritance", *(f"after gen {g}" for g in marks)], ["---"] * (len(marks) + 1)]
    for inherit in (True, False):
        group = [o for o in outcomes if o.inherit is inherit]
        means = [statistics.mean(o.best_by_generation[g - 1] for o in group) for g in marks]
        rows.append(["on" if inherit else "off", *(f"{m:.4f}" for m in means)])
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs every seed with and without inheritance and prints the tables."""
    args = parse_args(argv)
    task = datasets.mnist(args.data, download=False)
    if args.train:
        task = datasets.subset(task, args.train, seed=0)
    device = (
        torch.cuda.get_device_name()
        if args.device != "cpu" and torch.cuda.is_available()
        else "CPU"
    )
    print(
        f"MNIST {task.n_train}/{task.n_test}, {args.generations} generations × "
        f"{args.generation_size} candidates × {args.epochs} epoch(s), seeds {args.seeds}, "
        f"on {device} ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)",
        file=sys.stderr,
    )
    outcomes = []
    for seed in args.seeds:
        for inherit in (True, False):
            outcome = run_once(task, seed, inherit, args)
            print(
                f"seed {seed}, inheritance {'on' if inherit else 'off'}: best test_acc "
                f"{outcome.best_test_acc:.4f} in {outcome.seconds:.0f} s",
                file=sys.stderr,
            )
            outcomes.append(outcome)
            if args.json:  # after every run, so an interrupted benchmark keeps what it measured
                Path(args.json).write_text(json.dumps([asdict(o) for o in outcomes], indent=1))
    print(archive_table(outcomes))
    print()
    print(curve_table(outcomes, args.generations))
    return 0


if __name__ == "__main__":
    sys.exit(main())
