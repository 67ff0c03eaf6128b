"""Learning across tasks: Split and Permuted MNIST, a fixed network against gn evolution.

``python -m benchmarks.continual`` measures, per stream and seed, five rows with
the same budget of candidate-epochs per task (``--generations`` per task ×
``generation_size`` candidates × 1 epoch):

1. *fixed, naive*: the seed genome (``example.seed_layers()``), one network
   trained with ``core.training.fit`` for that many epochs on each task in
   turn, keeping its weights from task to task;
2. *fixed + replay*: the same network trained on ``core.continual.training_task``
   with the same replay memory and mixing as row 4;
3. *gn, naive*: ``gn.evolve_continual`` across the stream with ``training.replay`` 0;
4. *gn + replay*: the same with ``--replay`` samples kept per past task;
4c. *gn + replay, conv*: row 4 from the seed CNN (``example.conv_layers()``) with
   the conv settings of :data:`benchmarks.conv_bench.CONV_SETTINGS` but their
   generation size (the rows' own stays, so is the budget), Split MNIST only;
5. *joint*: gn evolution on one task holding all the stream's data, for as
   many generations as the stream has in all (the usual upper bound).

It prints a markdown table of ACC and BWT (mean ± sd over the seeds), measured
on each task's test split after the last task. Split MNIST is class-incremental
(one 10-way head, no task label at test time); Permuted MNIST has five pixel
permutations of a class-balanced MNIST subset (``--permuted-train``/``--permuted-test``)
so that a task is about as large as a Split MNIST one. Runs use their own
Selection and Parameters, so they touch no workspace.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

import galapagos_nao as gn
from benchmarks import default_data_root
from benchmarks.conv_bench import CONV_SETTINGS
from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core import datasets
from galapagos_nao.core.continual import ReplayMemory, TaskMetrics, training_task
from galapagos_nao.core.datasets import Task
from galapagos_nao.core.device_data import DeviceDataCache
from galapagos_nao.core.network import build
from galapagos_nao.core.training import accuracy, fit
from galapagos_nao.example import conv_layers, seed_layers

GENERATION_SIZE = 4
CPU = torch.device("cpu")
ROWS = ("fixed naive", "fixed replay", "gn naive", "gn replay", "gn replay conv", "joint")
#: The conv settings but the generation size: every row gets the same budget.
_CONV_SECTIONS = {name: values for name, values in CONV_SETTINGS.items() if name != "orchestration"}
#: Rows a stream skips: a permuted image has no spatial structure left for convolutions.
SKIPPED = {"permuted": ("gn replay conv",)}


@dataclasses.dataclass(frozen=True)
class Budget:
    """What every row of one stream gets."""

    generations: int  # generations per task; × GENERATION_SIZE = candidate-epochs per task
    replay: int  # samples kept per past task by the replay rows
    mixing: str  # training.replay_mixing of the replay rows
    workers: int


def _selection(
    budget: Budget, replay: int, sections: Mapping[str, Mapping[str, Any]] | None = None
) -> Selection:
    selection = Selection(parameters=Parameters())
    selection.parameters.put(
        gn.orchestration,
        {"generation_size": GENERATION_SIZE, "workers": budget.workers, "threads_per_worker": 1},
    )
    selection.parameters.put(
        gn.training,
        {"device": "cpu", "replay": replay, "replay_mixing": budget.mixing, "epochs": 1},
    )
    for name, values in (sections or {}).items():
        selection.parameters.put(name, dict(values))
    return selection


def _stop_after(last: int) -> Any:
    def hook(report: Any) -> None:
        if report.generation >= last:
            report.run.stop()

    return hook


def evolution_run(
    stream: Sequence[Task], budget: Budget, replay: int, seed: int, conv: bool = False
) -> TaskMetrics:
    """R, ACC and BWT of one gn evolution across the stream (rows 3, 4 and 4c)."""
    run = gn.evolve_continual(
        conv_layers() if conv else seed_layers(),
        selection=_selection(budget, replay, _CONV_SECTIONS if conv else None),
        tasks=stream,
        generations_per_task=budget.generations,
        seed=seed,
        hooks=[_stop_after(len(stream) * budget.generations - 1)],
    )
    run.join()
    if run.status().error is not None:
        raise run.status().error  # type: ignore[misc]
    metrics = run.task_metrics()
    assert metrics is not None and len(metrics.matrix) == len(stream)
    return metrics


def fixed_run(stream: Sequence[Task], budget: Budget, replay: int, seed: int) -> TaskMetrics:
    """R, ACC and BWT of the seed genome fine-tuned task after task (rows 1 and 2).

    One network gets each task's whole budget of candidate-epochs as epochs of
    its own; its weights carry over from task to task (every layer inherits
    from itself), as a run's stream keeps its replay memory.
    """
    settings = _selection(budget, replay).parameters.settings().training
    fraction = settings.validation_fraction
    train = dataclasses.replace(
        settings.train_settings(), epochs=budget.generations * GENERATION_SIZE
    )
    layers = seed_layers()
    identity = list(range(len(layers)))
    cache = DeviceDataCache()
    memory = ReplayMemory()
    weights: dict[str, torch.Tensor] | None = None
    rows = []
    for position, task in enumerate(stream):
        current = training_task(
            stream,
            position,
            list(range(position)),
            memory,
            fraction,
            balanced=settings.replay_mixing == "balanced",
        )
        result = fit(
            layers,
            cache.get(current, CPU, fraction),
            train,
            seed=seed * 1000 + position,
            parent_weights=weights,
            origins=identity if weights is not None else None,
        )
        weights = result.weights
        rows.append(_test_accuracies(layers, weights, stream, cache, fraction))
        if replay:
            memory.add(position, task, replay, fraction)
    names = tuple(task.name for task in stream)
    return TaskMetrics(names, tuple(range(len(stream))), tuple(rows))


def joint_run(joint: Task, stream: Sequence[Task], budget: Budget, seed: int) -> float:
    """ACC (mean test accuracy over the stream's tasks) of the best elite evolved on all data."""
    selection = _selection(budget, 0)
    generations = len(stream) * budget.generations
    run = gn.evolve(seed_layers(), generations, joint, selection=selection, seed=seed)
    run.join()
    best = max(selection.elites().values(), key=lambda net: net.fitness or 0.0)
    row = _test_accuracies(best.layers, dict(best.weights or {}), stream, DeviceDataCache(), 0.1)
    return sum(row) / len(row)


def _test_accuracies(
    layers: Any,
    weights: dict[str, torch.Tensor],
    stream: Sequence[Task],
    cache: DeviceDataCache,
    fraction: float,
) -> tuple[float, ...]:
    model = build(layers, stream[0].input_shape, stream[0].n_classes)
    model.load_state_dict(weights)
    return tuple(
        accuracy(model, data.x_test, data.y_test)
        for data in (cache.get(task, CPU, fraction) for task in stream)
    )


def joined(stream: Sequence[Task], name: str) -> Task:
    """One task holding every task's training and test data (joint training's task)."""
    return Task(
        name=name,
        x_train=torch.cat([t.x_train for t in stream]),
        y_train=torch.cat([t.y_train for t in stream]),
        x_test=torch.cat([t.x_test for t in stream]),
        y_test=torch.cat([t.y_test for t in stream]),
        n_classes=stream[0].n_classes,
        source=f"the {len(stream)} tasks of {name}",
        input_transform=stream[0].input_transform,
    )


def measure(
    stream: Sequence[Task],
    joint: Task,
    budget: Budget,
    seeds: Sequence[int],
    figure: str | None,
    rows: Sequence[str] = ROWS,
    skip: Sequence[str] = (),
) -> dict[str, tuple[list[float], list[float], float]]:
    """The ``rows`` of one stream but ``skip``: ACCs, BWTs (one per seed) and wall seconds."""
    results: dict[str, tuple[list[float], list[float], float]] = {}
    for row in rows:
        if row in skip:
            continue
        started = time.monotonic()
        if row == "joint":
            acc = [joint_run(joint, stream, budget, seed) for seed in seeds]
            results[row] = (acc, [], time.monotonic() - started)
        else:
            replay = budget.replay if "replay" in row else 0
            metrics = _run_seeds(row, stream, budget, replay, seeds)
            if figure and row == "gn replay":
                gn.plot.tasks(metrics[0]).savefig(figure, dpi=80)
            acc = [m.acc or 0.0 for m in metrics]
            results[row] = (acc, [m.bwt or 0.0 for m in metrics], time.monotonic() - started)
        print(f"# {stream[0].name.split()[0]}, {row}: {results[row][2]:.0f} s", flush=True)
    return results


def _run_seeds(
    row: str, stream: Sequence[Task], budget: Budget, replay: int, seeds: Sequence[int]
) -> list[TaskMetrics]:
    if row.startswith("gn"):
        conv = row.endswith("conv")
        return [evolution_run(stream, budget, replay, seed, conv) for seed in seeds]
    # One network trains on one core: the seeds share the workers' cores instead.
    one: Callable[[int], TaskMetrics] = lambda seed: fixed_run(stream, budget, replay, seed)  # noqa: E731
    with ThreadPoolExecutor(max_workers=budget.workers) as pool:
        return list(pool.map(one, seeds))


def _cell(values: Sequence[float]) -> str:
    if not values:
        return "—"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def main(argv: Sequence[str] | None = None) -> None:
    """Runs the five rows on both streams and prints the table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.continual")
    parser.add_argument("--train", type=int, default=60000, help="Split MNIST: training samples")
    parser.add_argument("--test", type=int, default=10000, help="Split MNIST: test samples")
    parser.add_argument("--permuted-train", type=int, default=12000, help="per permuted task")
    parser.add_argument("--permuted-test", type=int, default=2000, help="per permuted task")
    parser.add_argument("--generations", type=int, default=4, help="generations per task")
    parser.add_argument("--replay", type=int, default=500, help="samples kept per past task")
    parser.add_argument("--mixing", default="balanced", choices=["balanced", "appended"])
    parser.add_argument("--streams", nargs="+", default=["split", "permuted"])
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=ROWS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--figure", help="save gn.plot.tasks() of the first Split gn+replay run")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    started = time.monotonic()
    mnist = datasets.mnist(default_data_root(), download=False)
    budget = Budget(args.generations, args.replay, args.mixing, args.workers)
    table: dict[str, dict[str, tuple[list[float], list[float], float]]] = {}
    sizes = {}
    if "split" in args.streams:
        base = datasets.subset(mnist, args.train, args.test, seed=0)
        stream = datasets.split_mnist(base)
        sizes["split"] = f"Split MNIST {base.n_train}/{base.n_test}"
        table["split"] = measure(stream, base, budget, args.seeds, args.figure, args.rows)
    if "permuted" in args.streams:
        base = datasets.subset(mnist, args.permuted_train, args.permuted_test, seed=0)
        stream = datasets.permuted_mnist(5, seed=0, base=base)
        sizes["permuted"] = f"Permuted MNIST 5 × {base.n_train}/{base.n_test}"
        table["permuted"] = measure(
            stream,
            joined(stream, "permuted-mnist joint"),
            budget,
            args.seeds,
            None,
            args.rows,
            SKIPPED["permuted"],
        )
    labels = {
        "fixed naive": "1. seed genome, fine-tuned (naive)",
        "fixed replay": "2. seed genome + replay",
        "gn naive": "3. gn evolution, naive (replay 0)",
        "gn replay": "4. gn evolution + replay",
        "gn replay conv": "4c. gn evolution + replay, seed CNN (conv_layers)",
        "joint": "5. joint training on all tasks (gn evolution)",
    }
    print(
        f"\n{', '.join(sizes.values())} train/test samples; "
        f"{args.generations * GENERATION_SIZE} candidate-epochs per task; replay {args.replay} "
        f"per past task (≤ {4 * args.replay} in all), {args.mixing}; seeds {args.seeds}; "
        f"{time.monotonic() - started:.0f} s in all\n"
    )
    header = " | ".join(f"{name} ACC | {name} BWT" for name in table)
    print(f"| configuration | {header} |\n|---|" + "---|---|" * len(table))
    for row in args.rows:
        cells = " | ".join(
            f"{_cell(t[row][0])} | {_cell(t[row][1])}" if row in t else "— | —"
            for t in table.values()
        )
        print(f"| {labels[row]} | {cells} |")
    print(
        "\nseconds per row (all seeds): "
        + "; ".join(
            f"{name}: " + ", ".join(f"{t[row][2]:.0f}" for row in args.rows if row in t)
            for name, t in table.items()
        )
    )


if __name__ == "__main__":
    main()
