"""Steer a continual run while it trains, then replay the session from its journal.

    python examples/steer_and_replay.py            # a 3000/1000 subset of full MNIST
    python examples/steer_and_replay.py --quick    # a 600/200 sample of the bundled subset

Every steering call is recorded in the journal with the point of the run where
it took effect; replaying the journal on fresh objects gives the same archive,
bit for bit on a CPU.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import galapagos_nao as gn


def main() -> None:
    """Parses the command line and runs the example."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny data, few generations")
    args = parser.parse_args()
    if args.quick:
        task = gn.example.example_task(quick=True)
    else:
        task = gn.datasets.subset(gn.datasets.mnist(), 3000, 1000)
    steps = 2 if args.quick else 20  # generations between two steering actions
    gn.log_level("quiet")

    # Constraints are settings: no child may grow past 6 layers or use sigmoid or dropout.
    gn.Parameters.put(gn.evolution, {"max_layers": 6, "forbid": ["sigmoid", "dropout"]})
    run = gn.evolve_continual([("dense", [32, "relu"])], task, seed=0)
    gn.example.run_for(run, steps)

    cells = sorted(gn.Selection.elites())
    gn.Selection.pin(cells[0])  # the first cell keeps its elite; fitter newcomers are held back
    gn.Selection.favor(cells[-1], 3)  # the last cell's elite gets three times the children
    gn.example.run_for(run, steps)

    # A child of two elites by crossover, queued to be trained with the next generation.
    elites = gn.Selection.elites()
    child = gn.breed(elites[cells[0]], elites[cells[-1]])
    gn.Selection.put_unevaluated(child)
    gn.example.run_for(run, steps)

    # Veto the weakest elite: it leaves the archive and its genome stays out.
    gn.Selection.veto(min(gn.Selection.elites().values(), key=lambda n: n.val_acc))
    gn.example.run_for(run, steps)
    run.stop()
    run.join()
    print(gn.Selection.stats())

    # The journal: every action with where it took effect (in IPython: `gn.journal()`).
    mine = gn.journal.entries(this_process=True)
    for entry in mine:
        print(f"{entry.seq:3d}  {entry.generation:3d} {entry.phase or '-':9}  {entry.action}")
    # Replay this process's actions on fresh objects (gn.Selection is left alone).
    replay = gn.journal.replay(task, entries=mine)
    print(replay)
    print("differences from the live archive:", replay.differences(gn.Selection))

    # The same session as a script that anyone can run again.
    script = Path(tempfile.mkdtemp()) / "session.py"
    expression = (
        "gn.example.example_task(quick=True)"
        if args.quick
        else "gn.datasets.subset(gn.datasets.mnist(), 3000, 1000)"
    )
    gn.journal.to_script(script, task=expression, entries=mine)
    print(f"wrote {script}: python {script} replays it")


if __name__ == "__main__":
    main()
