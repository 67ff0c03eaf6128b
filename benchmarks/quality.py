"""How good a network a continual run finds on full MNIST within a time budget.

``python -m benchmarks.quality --minutes 10 --seed conv`` (or ``--seed mlp``) starts
``gn.evolve_continual`` from a seed genome (``gn.example.conv_layers()`` or
``gn.example.seed_layers()``) on full MNIST with ``complexity_levels`` 4, stops it
when the budget is spent, and prints each level's elite (validation accuracy, the
fitness, and test accuracy, never selected on) and the best elite by fitness.

The run stops at a generation boundary when the next generation would not fit in
what is left of the budget (judged by the longest generation so far): a
generation interrupted by ``run.stop()`` is not selected, so its training would
be lost. The budget is a hard limit all the same: if a generation runs past it,
the run is stopped there and that generation's candidates are dropped.

Each seed has its run settings in :data:`SEED_SETTINGS` (Parameters sections);
the command line can override the batch size, learning rate, epochs, generation
size and mutation rate. Runs use their own Selection
and Parameters, so they touch no workspace.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import REPO, default_data_root
from benchmarks.conv_bench import CONV_SETTINGS
from galapagos_nao.core.evolution import DEFAULT_LAYER_TYPES

#: The issue's targets on a 2-core machine: best test accuracy, and each level's.
BEST_TARGET = 0.990
LEVEL_TARGET = 0.980

#: The conv seed's search for this benchmark, over :data:`CONV_SETTINGS`.
QUALITY_CONV_SETTINGS: dict[str, dict[str, Any]] = {
    # Each child trains one more epoch from its parent's weights. At Adam 0.003 a
    # lineage of the seed CNN stalled near 0.988-0.989 test accuracy; at 0.001 it
    # went on to 0.990 (RESULTS.md, "Quality within 10 minutes").
    "training": {**CONV_SETTINGS["training"], "learning_rate": 0.001},
    # The seed's layer types plus a convolution and a pool, so that a replaced layer
    # can become one where the input is still an image (elsewhere they do not fit
    # and are not drawn).
    "evolution": {
        **CONV_SETTINGS["evolution"],
        "layer_types": {**DEFAULT_LAYER_TYPES, "conv2d": [16, 3, "relu"], "max_pool": [2]},
    },
}

#: Run settings per seed genome: Parameters sections, applied over the defaults.
SEED_SETTINGS: dict[str, dict[str, dict[str, Any]]] = {
    "mlp": {},
    "conv": {**CONV_SETTINGS, **QUALITY_CONV_SETTINGS},
}


def _seed_genome(name: str) -> list[Any]:
    from galapagos_nao.example import conv_layers, seed_layers

    return conv_layers() if name == "conv" else seed_layers()


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


@dataclass
class Budget:
    """Stops a run when its budget is spent, at a generation boundary when it can.

    Attributes:
        seconds: The budget, from ``started``.
        started: ``time.monotonic()`` when the run started.
        longest: The longest generation so far, in seconds.
        generations: ``(elapsed seconds, best val_acc, its test_acc, evaluated)`` per generation.
        candidates: Candidates trained (selected or not).
        failures: Reasons of candidates that failed.
    """

    seconds: float
    started: float = field(default_factory=time.monotonic)
    longest: float = 0.0
    generations: list[tuple[float, float, float, int]] = field(default_factory=list)
    candidates: int = 0
    failures: list[str] = field(default_factory=list)

    def left(self) -> float:
        """Seconds of the budget left."""
        return self.seconds - (time.monotonic() - self.started)

    def on_outcome(self, outcome: Any) -> None:
        """Candidate hook: counts what trained and what failed."""
        if outcome.network is not None:
            self.candidates += 1
        elif outcome.failure and not outcome.stopped:
            self.failures.append(outcome.failure)

    def on_generation(self, report: Any) -> None:
        """Generation hook: records the best elite and stops when the next would not fit."""
        self.longest = max(self.longest, report.seconds)
        best = max(report.elites.values(), key=lambda net: net.fitness or 0.0)
        self.generations.append(
            (
                time.monotonic() - self.started,
                float(best.val_acc or 0.0),
                float(best.test_acc or 0.0),
                report.evaluated,
            )
        )
        if self.left() < self.longest:
            report.run.stop()


def _parameters(seed: str, levels: int, overrides: Mapping[str, Mapping[str, Any]]) -> Any:
    from galapagos_nao.config.parameters import Parameters

    parameters = Parameters()
    parameters.put("selection", {"complexity_levels": levels})
    sections = {name: dict(values) for name, values in SEED_SETTINGS[seed].items()}
    for name, values in overrides.items():
        sections.setdefault(name, {}).update(values)
    for name, values in sections.items():
        parameters.put(name, values)
    return parameters


def _elite_row(level: Any, net: Any) -> dict[str, Any]:
    from galapagos_nao.core.genome import macs

    return {
        "level": level,
        "layers": len(net.layers),
        "mmacs": macs(net.layers, net.input_shape, net.n_classes) / 1e6,
        "val_acc": float(net.val_acc or 0.0),
        "test_acc": float(net.test_acc or 0.0),
        "genome": [[name, list(params)] for name, params in net.layers],
    }


def run_quality(
    task: Any,
    seed: str,
    minutes: float,
    *,
    levels: int = 4,
    run_seed: int = 1,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Runs one budgeted continual run and returns its elites and figures.

    Args:
        task: The data (full MNIST for the measured figures).
        seed: ``"conv"`` or ``"mlp"``: the seed genome and its :data:`SEED_SETTINGS`.
        minutes: The budget, wall clock, from the run's start.
        levels: ``selection.complexity_levels``.
        run_seed: The run's seed.
        overrides: Parameters sections over the seed's settings.

    Returns:
        JSON-ready figures: settings, elites per level, the best, progress per generation.
    """
    import galapagos_nao as gn
    from galapagos_nao.archive.selection import Selection

    parameters = _parameters(seed, levels, overrides or {})
    budget = Budget(seconds=60.0 * minutes)
    run = gn.evolve_continual(
        _seed_genome(seed),
        task,
        selection=Selection(parameters=parameters),
        parameters=parameters,
        seed=run_seed,
        hooks=[budget.on_generation],
        candidate_hooks=[budget.on_outcome],
    )
    run.join(max(0.0, budget.left()))
    run.stop()  # a no-op when the budget hook stopped it already
    run.join()
    elapsed = time.monotonic() - budget.started
    if run.status().error is not None:
        raise run.status().error  # type: ignore[misc]
    elites = run.selection.elites()
    rows = [_elite_row(level, net) for level, net in elites.items()]
    best = max(rows, key=lambda row: row["val_acc"]) if rows else None
    return {
        "seed": seed,
        "settings": {name: dict(values) for name, values in parameters.snapshot().items()},
        "minutes": minutes,
        "seconds": elapsed,
        "generations": len(budget.generations),
        "candidates": budget.candidates,
        "failures": budget.failures,
        "elites": rows,
        "best": best,
        "progress": budget.generations,
    }


def targets(figures: Mapping[str, Any], levels: int) -> list[tuple[str, bool, str]]:
    """The issue's two CPU targets: (what, met, reached)."""
    best = figures["best"]
    accs = [row["test_acc"] for row in figures["elites"]]
    reached = " / ".join(f"{acc:.4f}" for acc in accs) or "no elite"
    return [
        (
            f"best elite's test accuracy ≥ {BEST_TARGET}",
            best is not None and best["test_acc"] >= BEST_TARGET,
            f"{best['test_acc']:.4f}" if best else "no elite",
        ),
        (
            f"all {levels} levels' elites ≥ {LEVEL_TARGET} test accuracy",
            len(accs) == levels and min(accs) >= LEVEL_TARGET,
            f"{len(accs)} levels: {reached}",
        ),
    ]


def format_report(figures: Mapping[str, Any], levels: int) -> str:
    """The printed result: one line per level's elite, the best, the targets."""
    lines = [
        f"Quality, seed {figures['seed']!r}: continual run on {figures['task']}, "
        f"complexity_levels {levels}, {figures['minutes']:g} min budget",
        f"  {figures['machine']}; load average at start / end: {figures['load_start']} / "
        f"{figures['load_end']}",
        f"  {figures['generations']} generations, {figures['candidates']} candidates trained "
        f"({len(figures['failures'])} failed) in {figures['seconds']:.0f} s; "
        f"training: {figures['training']}",
        "",
        f"{'level':>5}  {'layers':>6}  {'M MACs':>7}  {'val_acc':>7}  {'test_acc':>8}  genome",
    ]
    for row in figures["elites"]:
        genome = ", ".join(f"{name} {params}" for name, params in row["genome"])
        lines.append(
            f"{row['level']!s:>5}  {row['layers']:>6}  {row['mmacs']:>7.3f}  "
            f"{row['val_acc']:>7.4f}  {row['test_acc']:>8.4f}  {genome}"
        )
    best = figures["best"]
    if best is not None:
        lines.append(
            f"best (highest val_acc): level {best['level']}, val_acc {best['val_acc']:.4f}, "
            f"test_acc {best['test_acc']:.4f}"
        )
    lines += ["", "Targets (2-core machine):"]
    lines += [
        f"  {'met ' if met else 'MISS'}  {what}: {reached}"
        for what, met, reached in targets(figures, levels)
    ]
    return "\n".join(lines)


def _settings_line(settings: Mapping[str, Mapping[str, Any]]) -> str:
    training, orchestration = settings["training"], settings["orchestration"]
    evolution = settings["evolution"]
    return (
        f"{training['epochs']} epoch(s), batch {training['batch_size']}, "
        f"{training['optimizer']} {training['learning_rate']:g}, generation_size "
        f"{orchestration['generation_size']}, workers {orchestration['workers']}, "
        f"inherit_weights {evolution['inherit_weights']}, mutation_rate "
        f"{evolution['mutation_rate']}"
    )


def _overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    training = {
        key: value
        for key, value in (
            ("batch_size", args.batch_size),
            ("learning_rate", args.learning_rate),
            ("epochs", args.epochs),
        )
        if value is not None
    }
    orchestration = {"generation_size": args.generation_size} if args.generation_size else {}
    evolution = {"mutation_rate": args.mutation_rate} if args.mutation_rate is not None else {}
    return {"training": training, "orchestration": orchestration, "evolution": evolution}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parses the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.quality", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="the budget (default 10)")
    parser.add_argument("--seed", choices=sorted(SEED_SETTINGS), default="conv")
    parser.add_argument("--levels", type=int, default=4, help="complexity_levels (default 4)")
    parser.add_argument("--run-seed", type=int, default=1, help="the run's seed (default 1)")
    parser.add_argument("--data", default=default_data_root(), help="root holding MNIST/raw")
    parser.add_argument("--train", type=int, help="a class-balanced subset (smoke runs)")
    parser.add_argument("--test", type=int, default=1000, help="test samples with --train")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--learning-rate", type=float)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--generation-size", type=int)
    parser.add_argument("--mutation-rate", type=float)
    parser.add_argument(
        "--out", default=str(REPO / "benchmarks" / "results"), help="folder of the JSON"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the budgeted run, prints the report and writes the JSON."""
    args = parse_args(argv)
    os.environ.setdefault("GN_HOME", tempfile.mkdtemp(prefix="gn-quality-"))
    from benchmarks.__main__ import machine_info
    from benchmarks.report import result_path, write_json
    from galapagos_nao.core import datasets

    task = datasets.mnist(args.data, download=False)
    if args.train:
        task = datasets.subset(task, args.train, args.test, seed=0)
    load_start = _load()
    figures = run_quality(
        task,
        args.seed,
        args.minutes,
        levels=args.levels,
        run_seed=args.run_seed,
        overrides=_overrides(args),
    )
    figures.update(
        {
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "command": " ".join(["python -m benchmarks.quality", *(argv or sys.argv[1:])]),
            "task": f"{task.name} ({task.n_train} train / {task.n_test} test)",
            "machine": machine_info("cpu")["summary"],
            "load_start": load_start,
            "load_end": _load(),
            "training": _settings_line(figures["settings"]),
        }
    )
    print(format_report(figures, args.levels))
    path = result_path(Path(args.out))
    path = path.with_name(f"quality-{args.seed}-{path.name}")
    print(f"\nfigures in {write_json(path, figures)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
