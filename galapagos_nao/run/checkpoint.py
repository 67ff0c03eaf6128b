"""Runs that survive restarts: the checkpoint hook and what resuming needs to restore.

A :class:`Checkpointer` writes one checkpoint per completed generation into its
workspace, in one transaction: the elites and the queue, the Parameters in
force, the run generator's state, the task stream's state (position, replay
memory, R), the pins, favor and vetoes, and the generation's history row. Resuming
(:meth:`galapagos_nao.run.api.Session.resume`) reads the last one back with
:func:`generator_from_state` and :func:`loadable_parameters`, so a seeded run
that was interrupted reaches the same archive as one that was not.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from galapagos_nao.archive.curation import CurationState
from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.config.setting_checks import optional_seed
from galapagos_nao.config.settings import SECTIONS
from galapagos_nao.core.datasets import Task
from galapagos_nao.core.network import Network
from galapagos_nao.run.loop import GenerationReport
from galapagos_nao.run.stream import TaskStream
from galapagos_nao.store import persistence
from galapagos_nao.store.workspace import Checkpoint, Workspace, WorkspaceCorrupt

__all__ = ["Checkpointer", "ResumePoint", "generator_from_state", "loadable_parameters"]

logger = logging.getLogger("galapagos_nao.run.checkpoint")

#: Bit generators a checkpoint may name; anything else is refused rather than looked up.
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


class Checkpointer:
    """The generation hook that writes a run's checkpoint (see ``hooks.default_hooks``).

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
            stream=None if run.stream is None else run.stream.state(),
            curation=run.selection.curation().as_dict(),
        )
        # The commit dropped every network this run no longer refers to.
        self._stored = {net.id: weakref.ref(net) for net in nets}

    def _is_stored(self, net: Network) -> bool:
        ref = self._stored.get(net.id)
        return ref is not None and ref() is net


@dataclass(frozen=True)
class ResumePoint:
    """What a resumed run starts from: a workspace's last checkpoint, read and checked."""

    workspace: Workspace
    checkpoint: Checkpoint
    rng: np.random.Generator  #: the run's generator as the checkpoint left it
    settings: dict[str, dict[str, Any]]  #: the Parameters this version accepts
    seed: int | None  #: the run's recorded seed
    stream: TaskStream | None  #: its task stream at its position, if it had one
    curation: CurationState | None  #: pins, favor, vetoes (None: an older checkpoint)

    @classmethod
    def read(cls, into: Workspace, tasks: Sequence[Task] | None) -> ResumePoint:
        """The last checkpoint of ``into``, everything checked before anything changes.

        Raises:
            ValueError: if there is none, or ``tasks`` does not fit the run's stream.
            WorkspaceCorrupt: naming the file and the damaged entries.
        """
        checkpoint = into.checkpoint()
        if checkpoint is None and into.damaged_checkpoints():
            raise WorkspaceCorrupt("; ".join(into.damaged_checkpoints()))
        if checkpoint is None:
            raise ValueError(
                f"resume: {into.path} holds no run with a completed generation to resume"
            )
        if checkpoint.problems:
            raise WorkspaceCorrupt("; ".join(checkpoint.problems))
        stream = None
        if checkpoint.stream is not None:
            if tasks is None:
                raise ValueError("resume: the checkpointed run was on a task stream; pass tasks=")
            stream = TaskStream.from_state(checkpoint.stream, tasks)
        elif tasks is not None:
            raise ValueError("resume: tasks given but the checkpointed run had no task stream")
        damaged = f"{into.path}: checkpoint of run {checkpoint.run_id} is damaged on disk"
        try:  # the checkpoint's digest matched: what still does not fit was written damaged
            curation = None
            if checkpoint.curation is not None:
                curation = CurationState.from_dict(checkpoint.curation)
            rng = generator_from_state(checkpoint.rng_state)
            seed = next(info.seed for info in into.runs() if info.id == checkpoint.run_id)
            optional_seed("seed", seed)
        except (ValueError, StopIteration) as error:
            raise WorkspaceCorrupt(f"{damaged}: {error}") from None
        return cls(
            workspace=into,
            checkpoint=checkpoint,
            rng=rng,
            settings=loadable_parameters(checkpoint.parameters),
            seed=seed,
            stream=stream,
            curation=curation,
        )

    def restore(self, parameters: Parameters, selection: Selection) -> None:
        """Puts the checkpoint's settings, archive, queue, curation and history back."""
        parameters.load(self.settings)
        selection.restore(dict(self.checkpoint.elites), dict(self.checkpoint.queue), self.curation)
        rows = self.workspace.history(self.checkpoint.run_id)
        selection.restore_history([row["archive"] for row in rows if row["archive"]])


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
    try:
        restored = dict(state)
        if name == "MT19937":
            inner = dict(restored["state"])
            inner["key"] = np.asarray(inner["key"], dtype=np.uint32)
            restored["state"] = inner
        bit_generator.state = restored
    except (TypeError, ValueError, KeyError, OverflowError) as error:
        raise ValueError(f"rng_state: cannot restore {name} state: {error!r}") from None
    return np.random.Generator(bit_generator)


def loadable_parameters(values: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The checkpointed settings this version knows and accepts; others are logged and skipped."""
    kept: dict[str, dict[str, Any]] = {}
    for section, section_values in values.items():
        known = SECTIONS.get(section)
        if known is None or not isinstance(section_values, Mapping):
            logger.warning("Resume: skipping unknown parameter section %r", section)
            continue
        for key, value in section_values.items():
            if key not in known.names():
                logger.warning("Resume: skipping unknown setting %s.%s", section, key)
                continue
            try:
                kept.setdefault(section, {})[key] = known.check(key, value)
            except ValueError as error:
                logger.warning("Resume: keeping the default of %s.%s: %s", section, key, error)
    return kept
