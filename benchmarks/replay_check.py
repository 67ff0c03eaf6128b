"""Does a steered session replay to the same archive on this device? One command says.

Usage: ``python -m benchmarks.replay_check [--device cuda] [--generations 30] [--data ROOT]``

It records a continual run on a 3000/1000 subset of MNIST steered from the main
thread while it trains (a pin, a favor, a breed, a veto, a Parameters change),
stops it, replays the journal on fresh objects on the same device, and prints
whether every step was exact, which cells differ, and both wall times. On the
CPU the replay is exact by design; on a GPU it is as exact as the GPU's kernels
are deterministic, which is what this measures.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import galapagos_nao as gn
from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.run.api import Session
from galapagos_nao.run.session_journal import SessionJournal
from galapagos_nao.store.library import Library


def _wait_for(run: gn.Run, generation: int) -> None:
    while run.generation < generation and not run.done():
        time.sleep(0.01)


def record(task: gn.datasets.Task, device: str, generations: int) -> tuple[Session, float]:
    """A steered continual run of ``generations`` generations; the session and its seconds."""
    parameters = Parameters()
    selection = Selection(parameters=parameters)
    session = Session(parameters=parameters, selection=selection, library=Library())
    parameters.put("orchestration", {"generation_size": 4})
    parameters.put("training", {"device": device})
    started = time.monotonic()
    run = session.evolve_continual([("dense", [32, "relu"])], task, seed=0)
    step = max(generations // 6, 1)
    _wait_for(run, step)
    cells = list(selection.elites())
    selection.pin(cells[0])
    _wait_for(run, 2 * step)
    selection.favor(cells[-1], 3)
    _wait_for(run, 3 * step)
    elites = list(selection.elites().values())
    selection.put_unevaluated(session.breed(elites[0], elites[-1]))
    _wait_for(run, 4 * step)
    parameters.put("evolution", {"max_layers": 5})
    _wait_for(run, 5 * step)
    selection.veto(min(selection.elites().values(), key=lambda net: net.val_acc or 0))
    _wait_for(run, generations)
    run.stop()
    run.join()
    return session, time.monotonic() - started


def main() -> None:
    """Records, replays, prints one JSON line and a verdict."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--generations", type=int, default=30)
    parser.add_argument("--data", default=None, help="dataset root holding MNIST/raw")
    args = parser.parse_args()
    gn.log_level("quiet")
    task = gn.datasets.subset(gn.datasets.mnist(args.data, download=False), 3000, 1000)
    session, recorded_seconds = record(task, args.device, args.generations)
    started = time.monotonic()
    result = SessionJournal(session).replay(task)
    replay_seconds = time.monotonic() - started
    differences = result.differences(session.selection)
    device = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu"
    print(
        json.dumps(
            {
                "device": device,
                "steps": result.steps,
                "exact": result.exact,
                "divergences": [str(d) for d in result.divergences],
                "differing_cells": differences,
                "recorded_s": round(recorded_seconds, 1),
                "replayed_s": round(replay_seconds, 1),
            }
        )
    )
    same = "the same archive" if not differences else f"{len(differences)} cells differ"
    print(f"{device}: {result!r}; {same}")


if __name__ == "__main__":
    main()
