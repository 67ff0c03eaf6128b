"""Learning across tasks: Split MNIST with naive fine-tuning, with replay, and joint training.

``python -m benchmarks.continual`` runs, per seed, three gn evolutions from the
seed genome with the same budget of candidate-epochs per task
(``--generations`` per task × ``generation_size`` candidates × 1 epoch):

1. *naive*: the Split MNIST stream with ``training.replay`` 0;
2. *replay*: the same stream with ``--replay`` samples kept per past task;
3. *joint*: one task holding all five tasks' data, for as many generations as
   the stream has in all (the usual upper bound).

It prints a markdown table of ACC and BWT (mean ± sd over the seeds) of the best
elite after the last task, measured on each task's test split. Class-incremental:
one 10-way head, no task label at test time. A class-balanced subset of MNIST
(``--train``/``--test``, full MNIST by default) can make it quicker.
Runs use their own Selection and Parameters, so they touch no workspace.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from typing import Any

import torch

import galapagos_nao as gn
from benchmarks import default_data_root
from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core import datasets
from galapagos_nao.core.continual import TaskMetrics
from galapagos_nao.core.datasets import Task
from galapagos_nao.core.device_data import DeviceDataCache
from galapagos_nao.core.network import build
from galapagos_nao.core.training import accuracy
from galapagos_nao.example import seed_layers

GENERATION_SIZE = 4


def _selection(replay: int, workers: int) -> Selection:
    selection = Selection(parameters=Parameters())
    selection.parameters.put(
        gn.orchestration,
        {"generation_size": GENERATION_SIZE, "workers": workers, "threads_per_worker": 1},
    )
    selection.parameters.put(gn.training, {"device": "cpu", "replay": replay, "epochs": 1})
    return selection


def _stop_after(last: int) -> Any:
    def hook(report: Any) -> None:
        if report.generation >= last:
            report.run.stop()

    return hook


def stream_run(
    stream: Sequence[Task], replay: int, generations: int, seed: int, workers: int
) -> TaskMetrics:
    """R, ACC and BWT of one evolution across the stream."""
    run = gn.evolve_continual(
        seed_layers(),
        selection=_selection(replay, workers),
        tasks=stream,
        generations_per_task=generations,
        seed=seed,
        hooks=[_stop_after(len(stream) * generations - 1)],
    )
    run.join()
    if run.status().error is not None:
        raise run.status().error  # type: ignore[misc]
    metrics = run.task_metrics()
    assert metrics is not None and len(metrics.matrix) == len(stream)
    return metrics


def joint_run(
    base: Task, stream: Sequence[Task], generations: int, seed: int, workers: int
) -> float:
    """ACC of the best elite of an evolution on all tasks' data at once."""
    selection = _selection(0, workers)
    run = gn.evolve(seed_layers(), len(stream) * generations, base, selection=selection, seed=seed)
    run.join()
    best = max(selection.elites().values(), key=lambda net: net.fitness or 0.0)
    model = build(best.layers, best.input_shape, best.n_classes)
    model.load_state_dict(dict(best.weights or {}))
    cache = DeviceDataCache()
    scores = [
        accuracy(model, data.x_test, data.y_test)
        for data in (cache.get(task, torch.device("cpu"), 0.1) for task in stream)
    ]
    return sum(scores) / len(scores)


def _cell(values: Sequence[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def main(argv: Sequence[str] | None = None) -> None:
    """Runs the three configurations and prints the table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.continual")
    parser.add_argument("--train", type=int, default=60000, help="MNIST training samples kept")
    parser.add_argument("--test", type=int, default=10000, help="MNIST test samples kept")
    parser.add_argument("--generations", type=int, default=4, help="generations per task")
    parser.add_argument("--replay", type=int, default=400, help="samples kept per past task")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--figure", help="save gn.plot.tasks() of the first replay run here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    mnist = datasets.mnist(default_data_root(), download=False)
    base = datasets.subset(mnist, args.train, args.test, seed=0)
    stream = datasets.split_mnist(base)
    rows: dict[str, dict[str, list[float]]] = {}
    for name in ("naive", "replay", "joint"):
        started = time.monotonic()
        acc: list[float] = []
        bwt: list[float] = []
        for seed in args.seeds:
            if name == "joint":
                acc.append(joint_run(base, stream, args.generations, seed, args.workers))
            else:
                replay = 0 if name == "naive" else args.replay
                metrics = stream_run(stream, replay, args.generations, seed, args.workers)
                acc.append(metrics.acc or 0.0)
                bwt.append(metrics.bwt or 0.0)
                if args.figure and name == "replay" and seed == args.seeds[0]:
                    gn.plot.tasks(metrics).savefig(args.figure, dpi=80)
        rows[name] = {"acc": acc, "bwt": bwt}
        print(f"# {name}: {time.monotonic() - started:.0f} s for {len(args.seeds)} seeds")
    budget = args.generations * GENERATION_SIZE
    labels = {
        "naive": "gn evolution, naive (replay 0)",
        "replay": f"gn evolution + replay ({args.replay}/past task, ≤ {4 * args.replay} in all)",
        "joint": "joint training on all tasks (reference)",
    }
    print(
        f"\nSplit MNIST, class-incremental, {base.n_train} train / {base.n_test} test samples, "
        f"{budget} candidate-epochs per task, seeds {args.seeds}\n"
    )
    print("| configuration | ACC | BWT |\n|---|---|---|")
    for name, values in rows.items():
        bwt_text = _cell(values["bwt"]) if values["bwt"] else "—"
        print(f"| {labels[name]} | {_cell(values['acc'])} | {bwt_text} |")


if __name__ == "__main__":
    main()
