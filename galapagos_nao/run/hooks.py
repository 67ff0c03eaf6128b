"""The hooks every run gets, assembled in one place.

A hook is a plain callable that receives each generation's
:class:`~galapagos_nao.run.loop.GenerationReport` on the run's thread. A run is
made with :func:`default_hooks` (its archive's history, the session's lineage
registry and, when a workspace tracks the archive, a checkpoint) followed by
the caller's own (``evolve(..., hooks=[...])``); nothing registers itself by
being imported.
"""

from __future__ import annotations

import logging

from galapagos_nao.archive.lineage import LineageRegistry
from galapagos_nao.core.network import fitness_or
from galapagos_nao.run.checkpoint import Checkpointer
from galapagos_nao.run.failures import failure_summary
from galapagos_nao.run.loop import GenerationHook, GenerationReport
from galapagos_nao.store.workspace import Workspace, WorkspaceLocked

__all__ = ["default_hooks", "lineage_recorder", "log_generation", "record_history"]

logger = logging.getLogger("galapagos_nao.run")


def record_history(report: GenerationReport) -> None:
    """Appends the generation's metrics and cell changes to its Selection's history."""
    run = report.run
    stream = run.stream
    report.run.selection.record_generation(
        report.generation,
        report.changes,
        evaluated=report.evaluated,
        failed=report.failed,
        seconds=report.seconds,
        first_of_run=report.generation == run.first_generation,
        task=None if stream is None else stream.current.name,  # switches come before breeding
    )


def log_generation(report: GenerationReport) -> None:
    """One line per generation at INFO; failures once per reason, with a count, at WARNING.

    ``Generation 5 (this run 1/2): 4 evaluated, 0 failed, best val_acc 0.9412
    (its test_acc 0.9387), coverage 2/2, 11.8 s``: the archive's generation (0-based,
    the number every view shows), then the run's own count. Runs after
    :func:`record_history`, whose entry gives the coverage.
    """
    run = report.run
    total = "∞" if run.generations is None else str(run.generations)
    stats = run.selection.stats()
    best = max(report.elites.values(), key=lambda net: fitness_or(net, -1.0), default=None)
    best_text = "-"
    if best is not None and best.val_acc is not None:
        test = "-" if best.test_acc is None else f"{best.test_acc:.4f}"
        best_text = f"{best.val_acc:.4f} (its test_acc {test})"
    counted = report.generation - run.first_generation + 1
    logger.info(
        "Generation %d (this run %d/%s): %d evaluated, %d failed, best val_acc %s, "
        "coverage %d/%d, %.1f s",
        report.generation,
        counted,
        total,
        report.evaluated,
        report.failed,
        best_text,
        stats.filled,
        stats.cells,
        report.seconds,
    )
    if report.failed:
        logger.warning(
            "Generation %d: %d of %d candidates dropped: %s",
            report.generation,
            report.failed,
            len(report.outcomes),
            failure_summary(report.outcomes),
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


def read_only_refusal(store: Workspace) -> WorkspaceLocked:
    """The refusal of a run that could not be checkpointed: who writes, and the way out."""
    name = store.experiment
    why = store.read_only_reason or "it was opened read-only"
    return WorkspaceLocked(
        f"{store.path}: {why}; this process has a read-only view of experiment {name!r}, "
        "so a run here could not be checkpointed. Work on another experiment: "
        "gn.experiment('other-name') (or wait for that process to finish)",
        experiment=name,
        holder=store.holder,
    )


def default_hooks(
    *, lineage: LineageRegistry, checkpoint_into: Workspace | None, seed: int | None
) -> list[GenerationHook]:
    """History, the generation's log line, lineage and (for a tracked archive) checkpoint hooks.

    In the order they run: the history entry comes first, since the log line
    and the checkpoint read it.

    Args:
        lineage: The registry ``gn.lineage`` searches.
        checkpoint_into: The workspace that tracks the run's archive, or None.
        seed: Recorded with the run's first checkpoint.

    Raises:
        WorkspaceLocked: if ``checkpoint_into`` is a read-only view, so that a
            run never starts without the checkpoints it is promised.
    """
    hooks: list[GenerationHook] = [record_history, log_generation, lineage_recorder(lineage)]
    if checkpoint_into is not None:
        if checkpoint_into.read_only:
            raise read_only_refusal(checkpoint_into)
        hooks.append(Checkpointer(checkpoint_into, seed))
    return hooks
