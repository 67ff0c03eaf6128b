"""The hooks every run gets, assembled in one place.

A hook is a plain callable that receives each generation's
:class:`~galapagos_nao.run.loop.GenerationReport` on the run's thread. A run is
made with :func:`default_hooks` (its archive's history, the session's lineage
registry and, when a workspace tracks the archive, a checkpoint) followed by
the caller's own (``evolve(..., hooks=[...])``); nothing registers itself by
being imported.
"""

from __future__ import annotations

from galapagos_nao.archive.lineage import LineageRegistry
from galapagos_nao.run.checkpoint import Checkpointer
from galapagos_nao.run.loop import GenerationHook, GenerationReport
from galapagos_nao.store.workspace import Workspace, WorkspaceLocked

__all__ = ["default_hooks", "lineage_recorder", "record_history"]


def record_history(report: GenerationReport) -> None:
    """Appends the generation's metrics and cell changes to its Selection's history."""
    report.run.selection.record_generation(
        report.generation,
        report.changes,
        evaluated=report.evaluated,
        failed=report.failed,
        seconds=report.seconds,
    )


def lineage_recorder(registry: LineageRegistry) -> GenerationHook:
    """A hook that keeps every parent and every new elite in ``registry`` (without weights)."""

    def record(report: GenerationReport) -> None:
        for outcome in report.outcomes:
            if outcome.candidate.parent is not None:
                registry.add(outcome.candidate.parent)
        for change in report.changes:
            registry.add(change.new)

    return record


def default_hooks(
    *, lineage: LineageRegistry, checkpoint_into: Workspace | None, seed: int | None
) -> list[GenerationHook]:
    """History, lineage and (for a tracked archive) checkpoint hooks, in the order they run.

    The history hook runs before the checkpoint, which stores its latest entry.

    Args:
        lineage: The registry ``gn.lineage`` searches.
        checkpoint_into: The workspace that tracks the run's archive, or None.
        seed: Recorded with the run's first checkpoint.

    Raises:
        WorkspaceLocked: if ``checkpoint_into`` is a read-only view, so that a
            run never starts without the checkpoints it is promised.
    """
    hooks: list[GenerationHook] = [record_history, lineage_recorder(lineage)]
    if checkpoint_into is not None:
        if checkpoint_into.read_only:
            raise WorkspaceLocked(
                f"{checkpoint_into.path}: this process has a read-only view, so a run here "
                "could not be checkpointed; open another workspace with gn.workspace.open(path)"
            )
        hooks.append(Checkpointer(checkpoint_into, seed))
    return hooks
