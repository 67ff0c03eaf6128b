"""A process that forks continual runs on request, for the kill tests in test_resume.py.

Importing torch and galapagos_nao takes seconds; killing ten runs in a row would
spend most of the test in imports. This "zygote" imports once, then forks one
child per request: each child is a real, separate process that the test kills
with SIGKILL.

Protocol (one JSON object per line). On stdin, a request::

    {"home": dir, "task": npz, "log": file, "seed": int,
     "stop_at": generation or -1, "kill_in_commit": n or -1}

On stdout, ``{"pid": child}`` once the child is forked, then
``{"exited": child, "status": wait status}`` when it has ended.

The child opens ``home/workspace.db``, resumes its last run (or starts a seeded
one), and appends to ``log`` after every generation: the checkpointed archive,
then the id of a network it put into the Library, then a network file it saved
into ``home/saves``. With ``stop_at`` it stops after that generation and logs the
final archive; with ``kill_in_commit`` it SIGKILLs itself inside the n-th
checkpoint transaction, after the writes and before COMMIT.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch._dynamo  # noqa: F401 - the optimizer's first step imports it (seconds): once, here

import galapagos_nao as gn
from galapagos_nao.core import datasets
from galapagos_nao.run.loop import GenerationReport
from galapagos_nao.store import persistence

START = [("dense", [8, "relu"]), ("dropout", [0.2])]


def archive(nets: dict[Any, gn.Network]) -> dict[str, Any]:
    """Cells as JSON keys → what identifies the elite across processes."""
    return {
        json.dumps(cell): {
            "id": net.id,
            "layers": json.dumps(net.genome),
            "val_acc": net.val_acc,
            "weights": persistence.weights_digest(net.weights or {}),
        }
        for cell, net in nets.items()
    }


def run_child(request: dict[str, Any]) -> None:
    log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def emit(record: dict[str, Any]) -> None:
        os.write(log, (json.dumps(record) + "\n").encode())  # one write: whole lines only

    home = Path(request["home"])
    saves = home / "saves"
    saves.mkdir(exist_ok=True)
    with np.load(request["task"], allow_pickle=False) as arrays:
        task = datasets.from_tensors(
            *(arrays[k] for k in ("x_train", "y_train", "x_test", "y_test"))
        )
    store = gn.workspace.open(home / "workspace.db", read_only=False)
    commits = [0]
    kill_at = request["kill_in_commit"]

    def before_commit(what: str) -> None:
        if what == "checkpoint":
            commits[0] += 1
            if commits[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    store._before_commit = before_commit

    def after_generation(report: GenerationReport) -> None:
        # Runs after the checkpoint hook (added earlier), so this generation is committed.
        emit({"generation": report.generation, "archive": archive(dict(report.elites))})
        best = max(report.elites.values(), key=lambda n: n.val_acc or 0.0)
        emit({"library": gn.Library.put(best.replace(id=str(uuid.uuid4())))})
        emit({"saved": str(best.save(saves / f"{report.generation}.safetensors"))})
        if report.generation == request["stop_at"]:
            report.run.stop()

    gn.Parameters.put(
        gn.orchestration, {"generation_size": 2, "workers": 2, "threads_per_worker": 1}
    )
    gn.Parameters.put(gn.training, {"batch_size": 50, "device": "cpu"})
    if store.last_run() is None:
        run = gn.evolve_continual(START, task, seed=request["seed"], hooks=[after_generation])
    else:
        run = gn.evolve_continual(task=task, resume=True, hooks=[after_generation])
    emit({"started": run.generation})
    run.join()
    if run.status().error is not None:
        emit({"error": repr(run.status().error)})
    emit({"final": run.generation - 1, "archive": archive(gn.Selection.elites())})
    store.close()


def main() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:  # the child: run, then leave without the parent's atexit handlers
            code = 0
            try:
                sys.stdin.close()
                run_child(request)
            except BaseException as error:  # noqa: BLE001 - reported through the log
                with open(request["log"], "a") as file:
                    file.write(json.dumps({"error": repr(error)}) + "\n")
                code = 1
            os._exit(code)
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"exited": pid, "status": status}), flush=True)


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)  # nothing to clean up; interpreter shutdown with torch loaded takes seconds
