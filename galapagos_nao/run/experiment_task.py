"""An experiment knows its task: the carry-over line at a run's start, and resume's refusal.

The workspace keeps, per experiment, the task its last run used (name, size and
a digest of the data: :func:`~galapagos_nao.core.fingerprint.task_fingerprint`).
A run whose data differs while the archive still holds what other data built
says so in one line as it starts: what carries over (elites, pins, favor), the
two tasks, and the ways out. A resume without ``task=`` refuses other data than
the run it continues had.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from galapagos_nao.archive.selection import Selection
from galapagos_nao.core.datasets import Task, default_task
from galapagos_nao.core.fingerprint import task_fingerprint
from galapagos_nao.run.stream import TaskStream
from galapagos_nao.store.workspace import Workspace, WorkspaceError

__all__ = ["carried_over", "check_resume_task", "task_record", "task_recorder"]

logger = logging.getLogger("galapagos_nao.run.experiments")


def task_record(task: Task, stream: TaskStream | None = None) -> dict[str, Any]:
    """What the workspace keeps of a run's task: name, sizes and a digest of the data.

    A stream is recorded as a whole: its tasks' names and one digest over theirs.
    """
    if stream is not None:
        digests = [task_fingerprint(member) for member in stream.tasks]
        names = [member.name for member in stream.tasks]
        return {"name": f"stream of {len(names)}: {', '.join(names)}", "digest": "+".join(digests)}
    return {
        "name": task.name,
        "digest": task_fingerprint(task),
        "n_train": task.n_train,
        "n_test": task.n_test,
    }


def describe_task(record: Mapping[str, Any] | None) -> str:
    """A recorded task in a few words: ``'mnist-subset' (3000 train, data 1f2e3d4c)``."""
    if not record:
        return "an unknown task"
    digest = str(record.get("digest", "?"))[:8]
    if "n_train" in record:
        return f"{record.get('name')!r} ({record['n_train']} train, data {digest})"
    return f"{record.get('name')!r} (data {digest})"


def carried_over(selection: Selection) -> str:
    """What a run keeps of the archive's past, in words (empty when it keeps nothing)."""
    elites = len(selection.elites())
    curation = selection.curation()
    parts = [f"{elites} elite(s)"] if elites else []
    if curation.pinned:
        parts.append(f"{len(curation.pinned)} pin(s)")
    if curation.favored:
        parts.append(f"favor on {len(curation.favored)} cell(s)")
    return ", ".join(parts)


def task_recorder(
    store: Workspace | None, selection: Selection, stream: TaskStream | None
) -> Callable[[Task], None]:
    """The run's ``on_task``: the carry-over line when the data changed, then the record.

    Args:
        store: The workspace the run checkpoints into (None: nothing recorded or compared).
        selection: The run's archive (what carries over is read as the run starts).
        stream: The run's task stream, if any.
    """
    experiment = "?" if store is None else store.experiment
    recorded = None
    if store is not None:
        try:
            recorded = store.experiment_task()
        except WorkspaceError as error:
            logger.warning("the experiment's task could not be read: %s", error)

    def on_task(task: Task) -> None:
        if store is None:
            return
        record = task_record(task, stream)
        carried = carried_over(selection)
        if carried and recorded is not None and recorded.get("digest") != record["digest"]:
            logger.warning(
                "Experiment %r: this run is on %s but its archive was built on %s; "
                "%s carry over. To start clean: gn.experiment('new-name') or gn.Selection.clear()",
                experiment,
                describe_task(record),
                describe_task(recorded),
                carried,
            )
        if not store.read_only:
            try:
                store.put_experiment_task(record)
            except Exception as error:  # noqa: BLE001 - a record never stops the run
                logger.warning("the experiment's task was not recorded: %s", error)

    return on_task


def check_resume_task(store: Workspace, task: Task | None, stream: TaskStream | None) -> None:
    """Refuses a resume without ``task=`` whose default data is not the run's.

    Raises:
        ValueError: naming both tasks and the argument that would continue anyway.
    """
    if task is not None or stream is not None:
        return  # the caller named the data: the carry-over line says if it differs
    recorded = store.experiment_task()
    if recorded is None or "n_train" not in recorded:
        return  # a run from before tasks were recorded, or one on a stream
    default = default_task()
    if task_fingerprint(default) == recorded.get("digest"):
        return
    raise ValueError(
        f"resume: experiment {store.experiment!r} was trained on {describe_task(recorded)}, "
        f"not on the default {describe_task(task_record(default))}; pass task= with its data "
        "(or another task, to continue on that one)"
    )
