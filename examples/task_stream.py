"""Learn a stream of tasks (Split MNIST) without forgetting the earlier ones, through replay.

    python examples/task_stream.py                  # full MNIST, 4 generations a task
    python examples/task_stream.py --quick          # on a 600/200 sample of the bundled subset
    python examples/task_stream.py --figure r.png   # also draw R and ACC (the `plot` extra)

Split MNIST is five tasks of two digits each. With ``training.replay`` every
candidate also trains on samples kept from the tasks before, and fitness is the
mean accuracy over every task seen so far.
"""

from __future__ import annotations

import argparse

import galapagos_nao as gn


def main() -> None:
    """Parses the command line and runs the example."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny data, one generation a task")
    parser.add_argument("--figure", help="save the accuracy matrix R and ACC to this image")
    args = parser.parse_args()
    stream = gn.datasets.split_mnist(gn.example.example_task(quick=args.quick))
    per_task = 1 if args.quick else 4

    # Samples kept per past task (class-balanced), mixed into every candidate's training.
    gn.Parameters.put(gn.training, {"replay": 50 if args.quick else 500})
    run = gn.evolve_continual(
        gn.example.seed_layers(), tasks=stream, generations_per_task=per_task, seed=0
    )
    # The run moves to the next task every `per_task` generations; wait for all five.
    gn.example.run_for(run, per_task * len(stream))
    run.stop()
    run.join()

    # R[i][j]: the best elite's test accuracy on task j after learning the i-th task.
    metrics = run.task_metrics()
    assert metrics is not None  # a run with a stream always has them
    for trained, row in zip(metrics.trained, metrics.matrix, strict=True):
        cells = "  ".join(f"{acc:.2f}" for acc in row)
        print(f"after {stream[trained].name:16}  {cells}")
    # ACC: mean accuracy over the tasks learned; BWT: how much was forgotten (negative).
    print(f"ACC {metrics.acc:.3f}  BWT {metrics.bwt:.3f}")

    if args.figure:
        gn.plot.tasks(run).savefig(args.figure)
        print(f"wrote {args.figure}")


if __name__ == "__main__":
    main()
