"""The seed's session as a script: a short run, then a continual one steered while it trains.

    python examples/seed_session.py            # full MNIST (GN_DATA_DIR, else downloaded once)
    python examples/seed_session.py --quick    # a 600/200 sample of the bundled subset, seconds

Runs train on a background thread: every call below returns at once, and the
archive can be read and changed while candidates train.
"""

from __future__ import annotations

import argparse

import galapagos_nao as gn


def main() -> None:
    """Parses the command line and runs the example."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny data, few generations")
    args = parser.parse_args()
    task = gn.example.example_task(quick=args.quick)

    # Two generations of children of the seed's eight-layer genome.
    run = gn.example.short_example(task)
    run.wait()  # or run.wait(progress=True) for tqdm bars (the `plot` extra)
    print(run)
    for level, net in gn.Selection.get_all().items():
        print(f"level {level}: {net!r}")

    # A continual run goes on from the archive the short run left, until stopped.
    run = gn.example.infinite_example(task)
    gn.example.run_for(run, 2 if args.quick else 10)

    # Snapshot the most complex elite: the Library keeps it whatever the archive does.
    elites = gn.Selection.get_all()
    net = elites[max(elites)]
    gn.Library.put(net)

    # A parameter change is picked up at the next generation.
    gn.Parameters.put(gn.Selection, {"complexity_levels": 4})
    # The snapshot re-enters the population and breeds again.
    gn.Selection.put_unevaluated(gn.Library.get(net.id))
    gn.example.run_for(run, 2 if args.quick else 10)

    run.stop()
    run.join()
    print(run)
    print(f"{len(gn.Selection.get_all())} levels filled after complexity_levels=4")
    # A trained network is a plain torch module that takes MNIST as you hold it.
    print(net.model())


if __name__ == "__main__":
    main()
