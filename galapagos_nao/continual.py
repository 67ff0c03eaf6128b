"""Runs that survive restarts: a checkpoint after every generation, and resume.

Every run of a tracked Selection writes one checkpoint per completed generation
into its workspace, in one transaction: the elites and the queue, the
Parameters in force, the run generator's state and the generation's history
row. The shared ``gn.Selection`` is tracked by the current workspace
(:func:`galapagos_nao.workspace.get`); other Selections by :func:`track`.

:func:`resume` (``gn.evolve_continual(resume=True)``) restores the last run's
checkpoint — archive, Parameters, generator — and continues it from the next
generation, so a seeded run that was interrupted reaches the same archive as
one that was not.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Mapping
from typing import Any

import numpy as np

from galapagos_nao import orchestration, persistence, workspace
from galapagos_nao.datasets import Task
from galapagos_nao.network import Network
from galapagos_nao.orchestration import Evaluator, GenerationReport, Run
from galapagos_nao.parameters import SETTINGS, Parameters
from galapagos_nao.selection import Selection
from galapagos_nao.workspace import Checkpoint, Workspace, WorkspaceCorrupt, WorkspaceLocked

__all__ = ["Checkpointer", "generator_from_state", "resume", "track", "tracking_workspace"]

logger = logging.getLogger("galapagos_nao.continual")

_tracked: weakref.WeakKeyDictionary[Selection, Workspace] = weakref.WeakKeyDictionary()

#: Bit generators a checkpoint may name; anything else is refused rather than looked up.
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


def track(selection: Selection, into: Workspace | None) -> None:
    """Checkpoints every later run of ``selection`` into ``into`` (None stops tracking it).

    Raises:
        ValueError: if ``selection`` is not a Selection or ``into`` not a Workspace.
    """
    if not isinstance(selection, Selection):
        raise ValueError(f"selection must be a Selection, got {selection!r}")
    if into is None:
        _tracked.pop(selection, None)
        return
    if not isinstance(into, Workspace):
        raise ValueError(f"into must be a Workspace or None, got {into!r}")
    _tracked[selection] = into


def tracking_workspace(selection: Selection) -> Workspace | None:
    """The workspace ``selection``'s runs checkpoint into, or None for an untracked Selection.

    The shared ``gn.Selection`` uses the current workspace, opening the default one.
    """
    found = _tracked.get(selection)
    if found is not None:
        return found
    from galapagos_nao import Selection as shared_selection

    return workspace.get() if selection is shared_selection else None


class Checkpointer:
    """The generation hook that writes a run's checkpoint (added to every tracked run).

    A failed write is logged and retried in full at the next generation: the
    run goes on, and the workspace keeps the last checkpoint that committed.

    Attributes:
        workspace: Where it writes.
        run_id: The run's id in the workspace (None until the first checkpoint).
        seed: Recorded with a new run.
        error: The last write failure, or None.
    """

    def __init__(self, into: Workspace, seed: int | None = None) -> None:
        self.workspace = into
        self.run_id: int | None = None
        self.seed = seed
        self.error: BaseException | None = None
        # Networks already stored, by id, held weakly: an elite is encoded once, not per generation.
        self._stored: dict[str, weakref.ref[Network]] = {}

    def continue_run(self, checkpoint: Checkpoint) -> None:
        """Writes later generations into the run ``checkpoint`` belongs to."""
        self.run_id = checkpoint.run_id
        nets = [*checkpoint.elites.values(), *checkpoint.queue.values()]
        self._stored = {net.id: weakref.ref(net) for net in nets}

    def __call__(self, report: GenerationReport) -> None:
        """Checkpoints the generation ``report`` closes."""
        try:
            self._write(report)
            self.error = None
        except Exception as error:  # a failed checkpoint must not end the run
            self.error = error
            self._stored = {}
            logger.error("Checkpoint of generation %d not written: %s", report.generation, error)

    def _write(self, report: GenerationReport) -> None:
        run = report.run
        elites = dict(report.elites)
        queue = run.selection.queued()
        nets = [*elites.values(), *queue.values()]
        blobs = {net.id: persistence.to_bytes(net) for net in nets if not self._is_stored(net)}
        rng = run.rng
        best = {cell: [net.val_acc, net.test_acc] for cell, net in elites.items()}
        # The history hook runs before this one: its latest entry is this generation's.
        archive_history = run.selection.history()
        self.run_id = self.workspace.write_checkpoint(
            self.run_id,
            report.generation,
            elites={cell: net.id for cell, net in elites.items()},
            queue={key: net.id for key, net in queue.items()},
            blobs=blobs,
            parameters=run.parameters.snapshot(),
            rng_state={} if rng is None else rng.bit_generator.state,
            history={
                "started": report.started,
                "seconds": report.seconds,
                "evaluated": report.evaluated,
                "failed": report.failed,
                "best": best,
                "archive": archive_history[-1].as_dict() if archive_history else None,
            },
            seed=self.seed,
        )
        # The commit dropped every network this run no longer refers to.
        self._stored = {net.id: weakref.ref(net) for net in nets}

    def _is_stored(self, net: Network) -> bool:
        ref = self._stored.get(net.id)
        return ref is not None and ref() is net


def checkpoint_hook(run: Run) -> Checkpointer | None:
    """Hook factory (in ``orchestration.default_hook_factories``): a Checkpointer for tracked runs.

    Raises:
        WorkspaceLocked: if the run's workspace is a read-only view, so that a
            run never starts without the checkpoints it is promised.
    """
    into = tracking_workspace(run.selection)
    if into is None:
        return None
    if into.read_only:
        raise WorkspaceLocked(
            f"{into.path}: this process has a read-only view, so a run here could not be "
            "checkpointed; open another workspace with gn.workspace.open(path)"
        )
    return Checkpointer(into, run._seed)


orchestration.default_hook_factories.append(checkpoint_hook)


def generator_from_state(state: Mapping[str, Any]) -> np.random.Generator:
    """A numpy Generator in exactly the state ``bit_generator.state`` recorded.

    Raises:
        ValueError: naming the bit generator or the state when it cannot be restored.
    """
    name = state.get("bit_generator") if isinstance(state, Mapping) else None
    if name not in _BIT_GENERATORS:
        raise ValueError(
            f"rng_state: unknown bit generator {name!r}; known: {list(_BIT_GENERATORS)}"
        )
    bit_generator = getattr(np.random, name)()
    restored = dict(state)
    if name == "MT19937":
        inner = dict(restored["state"])
        inner["key"] = np.asarray(inner["key"], dtype=np.uint32)
        restored["state"] = inner
    try:
        bit_generator.state = restored
    except (TypeError, ValueError, KeyError) as error:
        raise ValueError(f"rng_state: cannot restore {name} state: {error}") from None
    return np.random.Generator(bit_generator)


def loadable_parameters(values: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The checkpointed settings this version knows and accepts; others are logged and skipped."""
    kept: dict[str, dict[str, Any]] = {}
    for section, section_values in values.items():
        settings = SETTINGS.get(section)
        if settings is None or not isinstance(section_values, Mapping):
            logger.warning("Resume: skipping unknown parameter section %r", section)
            continue
        for key, value in section_values.items():
            if key not in settings:
                logger.warning("Resume: skipping unknown setting %s.%s", section, key)
                continue
            try:
                kept.setdefault(section, {})[key] = settings[key].check(f"{section}.{key}", value)
            except ValueError as error:
                logger.warning("Resume: keeping the default of %s.%s: %s", section, key, error)
    return kept


def resume(
    task: Task | None = None,
    *,
    selection: Selection | None = None,
    parameters: Parameters | None = None,
    evaluator: Evaluator | None = None,
) -> Run:
    """Continues the workspace's last run from its last completed generation.

    The Selection gets that generation's elites and queue, the Parameters its
    settings, and the run its generator, then evolves until stopped; later
    checkpoints go to the same run. Nothing changes if anything is missing.

    Args:
        task: The data (the workspace does not store it); full MNIST when None.
        selection: The archive to restore into; ``gn.Selection`` when None.
        parameters: The settings to restore; the Selection's when None.
        evaluator: Trains candidates; chosen from Parameters when None.

    Returns:
        The started :class:`Run`.

    Raises:
        ValueError: if the Selection has no workspace or it holds no run to resume.
        WorkspaceCorrupt: naming the file and the damaged entries of the checkpoint.
        RuntimeError: if the Selection already has a run in progress.
    """
    from galapagos_nao import Selection as shared_selection

    selection = shared_selection if selection is None else selection
    parameters = selection.parameters if parameters is None else parameters
    if task is not None and not isinstance(task, Task):
        raise ValueError(f"task must be a datasets.Task or None, got {task!r}")
    into = tracking_workspace(selection)
    if into is None:
        raise ValueError(
            "resume: this Selection has no workspace; call continual.track(selection, workspace)"
        )
    checkpoint = into.checkpoint()
    if checkpoint is None:
        raise ValueError(f"resume: {into.path} holds no run with a completed generation to resume")
    if checkpoint.problems:
        raise WorkspaceCorrupt("; ".join(checkpoint.problems))
    rng = generator_from_state(checkpoint.rng_state)
    settings = loadable_parameters(checkpoint.parameters)
    info = next(r for r in into.runs() if r.id == checkpoint.run_id)
    run = Run(
        generations=None,
        task=task,
        selection=selection,
        parameters=parameters,
        evaluator=evaluator,
        seed=info.seed,
        generation_offset=checkpoint.generation + 1,
        rng=rng,
    )
    for hook in run.hooks:
        if isinstance(hook, Checkpointer) and hook.workspace is into:
            hook.continue_run(checkpoint)
    selection._claim(run)  # fails here, before anything changes, if another run is live
    parameters.load(settings)
    selection.restore(dict(checkpoint.elites), dict(checkpoint.queue))
    entries = [row["archive"] for row in into.history(checkpoint.run_id) if row["archive"]]
    selection.restore_history(entries)
    logger.info(
        "Resuming run %d of %s after generation %d",
        checkpoint.run_id,
        into.path,
        checkpoint.generation,
    )
    return run.start()
