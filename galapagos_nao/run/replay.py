"""Replaying the session journal: the same actions at the same boundaries of seeded reruns.

Every run records the seed it ran with, and every steering action the boundary
of the run that first saw it (:mod:`~galapagos_nao.core.clock`). A
:class:`Replayer` makes fresh objects (Parameters, Selection, an in-memory
Library and a scratch workspace for checkpoints) and walks the journal: an
action recorded while no run was live is applied at once; the actions recorded
during a run are handed to that run's clock, which applies each at its
boundary, on the run's thread, before the run reads. On CPU the archive comes
out the same bit for bit: genomes, metrics and weights (ids are fresh uuids in
every process, so networks are matched by their fingerprint).

What cannot be exact is said, step by step, in :attr:`ReplayResult.divergences`:
a network that came from outside the session (its weights are not in the
journal), a task that is not the recorded one, a run on a Selection of its own;
and, at the end, every step whose replayed journal entry differs from the
recorded one.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core.checks import describe
from galapagos_nao.core.clock import Stamp
from galapagos_nao.core.datasets import Task, check_stream
from galapagos_nao.core.fingerprint import fingerprint
from galapagos_nao.core.network import Network
from galapagos_nao.run.api import Session
from galapagos_nao.run.loop import Run
from galapagos_nao.run.replay_steps import STARTS, Divergence, StepApplier, entries_match
from galapagos_nao.store.journal import JournalEntry
from galapagos_nao.store.library import Library
from galapagos_nao.store.workspace import Workspace

__all__ = ["Divergence", "ReplayResult", "Replayer"]

logger = logging.getLogger("galapagos_nao.run.replay")


@dataclass
class ReplayResult:
    """What a replay did: its archive, and every step that could not be exact.

    Attributes:
        selection: The replayed archive (the last session's, after its last run).
        parameters: The replayed settings.
        steps: How many journal steps were replayed.
        divergences: The steps that could not be reproduced exactly, in order.
        notes: What else the replay had to decide (a run still going when the
            journal ends stops at its last recorded step).
    """

    selection: Selection
    parameters: Parameters
    steps: int
    divergences: list[Divergence] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: False when Ctrl-C stopped the replay before its last step.
    complete: bool = True

    @property
    def exact(self) -> bool:
        """True when every step was reproduced exactly.

        Each replayed step made the same journal entry as the recorded one:
        the same boundary, the same arguments, every network it named with the
        same fingerprint. The final archives are compared with :meth:`differences`.
        """
        return self.complete and not self.divergences

    def archive(self) -> dict[Any, str]:
        """Cell → fingerprint of its elite (genome, metrics, weights), in cell order."""
        return {cell: fingerprint(net) for cell, net in self.selection.elites().items()}

    def differences(self, other: Selection) -> list[str]:
        """How ``other``'s archive differs from the replayed one, a line per cell; [] if none."""
        mine, theirs = self.archive(), {c: fingerprint(n) for c, n in other.elites().items()}
        return [
            f"cell {cell}: replayed {mine.get(cell, '-')}, given {theirs.get(cell, '-')}"
            for cell in sorted({*mine, *theirs}, key=str)
            if mine.get(cell) != theirs.get(cell)
        ]

    def archive_lines(self) -> list[str]:
        """One line per cell: the cell, its elite's fingerprint, fitness and genome."""
        return [
            f"cell {cell!s:>8}  {fingerprint(net)}  val_acc {net.val_acc!r}  {net.genome}"
            for cell, net in self.selection.elites().items()
        ]

    def __repr__(self) -> str:
        verdict = "exact" if self.complete else "no divergence so far"
        if self.divergences:
            verdict = f"{len(self.divergences)} divergences"
        verdict += "" if self.complete else ", stopped by Ctrl-C"
        first = f"; first: {self.divergences[0]}" if self.divergences else ""
        cells = len(self.selection.elites())
        return f"<Replay: {self.steps} steps, {verdict}, {cells} cells{first}>"


class _Objects:
    """The fresh objects of one recorded process, sharing the replay's workspace."""

    def __init__(self, workspace: Workspace) -> None:
        self.parameters = Parameters()
        self.selection = Selection(parameters=self.parameters)
        self.library = Library()
        self.session = Session(
            parameters=self.parameters,
            selection=self.selection,
            library=self.library,
            workspace=lambda: workspace,
        )
        self.session.track(self.selection, workspace)


class Replayer:
    """Replays journal entries on fresh objects; see :meth:`run`.

    Args:
        entries: The recorded steps, oldest first (``gn.journal.entries()``).
        task: The task the recorded runs used; full MNIST when None.
        tasks: The task stream of a recorded continual run, if it had one.

    Raises:
        ValueError: naming the argument (and index) that is not what it must be.
    """

    def __init__(
        self,
        entries: Iterable[JournalEntry],
        *,
        task: Task | None = None,
        tasks: Sequence[Task] | None = None,
    ) -> None:
        if task is not None and not isinstance(task, Task):
            raise ValueError(f"task must be a datasets.Task or None, got {describe(task)}")
        self.tasks = None if tasks is None else check_stream(tasks)
        self.entries = list(entries)
        for index, entry in enumerate(self.entries):
            if not isinstance(entry, JournalEntry):
                raise ValueError(f"entries[{index}] must be a JournalEntry, got {describe(entry)}")
        self.task = task
        self._divergences: list[Divergence] = []
        self._notes: list[str] = []
        self._known: dict[str, Network] = {}  # fingerprint -> replayed network
        self._ids: dict[str, str] = {}  # recorded id -> replayed id, for steps naming ids
        self._failed: set[int] = set()  # steps whose call raised: they left no replayed entry
        self._wanted = _referenced_genomes(self.entries)
        self._scheduled: deque[JournalEntry] = deque()
        self._stop_when_done = False
        self._live: tuple[Run, _Objects] | None = None  # the replayed run going on
        self._last_run: Run | None = None  # a stop recorded after its run ended still goes to it
        self._current: _Objects  # the objects of the recorded process being replayed

    def run(self) -> ReplayResult:
        """Replays every entry, waiting for each replayed run.

        Ctrl-C stops the replay (the live replayed run first) and returns what
        was replayed so far, with ``complete`` False.
        """
        complete = True
        with tempfile.TemporaryDirectory(prefix="gn-replay-") as scratch:
            workspace = Workspace(Path(scratch) / "replay.db")
            try:
                self._replay_all(workspace)
            except KeyboardInterrupt:
                complete = False
                # The user's own keypress, answered in the foreground: a print, not a log record.
                print(
                    "\nreplay stopped: the result holds the steps replayed so far", file=sys.stderr
                )
            finally:
                replayed = self._current.session.journal.entries()
                workspace.close()
        if complete:
            self._compare(replayed)
        else:
            self._notes.append(f"stopped by Ctrl-C after {len(replayed)} replayed steps")
        return ReplayResult(
            self._current.selection,
            self._current.parameters,
            len(self.entries),
            sorted(self._divergences, key=lambda d: d.seq),
            self._notes,
            complete,
        )

    # -- walking the journal -----------------------------------------------------------

    def _replay_all(self, workspace: Workspace) -> None:
        objects = self._current = self._fresh(workspace)
        recorded_session = self.entries[0].session if self.entries else None
        index = 0
        while index < len(self.entries):
            entry = self.entries[index]
            if (entry.session or recorded_session) != recorded_session:
                self._finish_run()
                objects = self._current = self._fresh(workspace)
                recorded_session = entry.session
            if entry.action in STARTS:
                self._finish_run()
                # A long replay says where it is (each run it starts, of how many steps).
                logger.info(
                    "Replay: step %d of %d (%s)", index + 1, len(self.entries), entry.action
                )
                index = self._start(objects, index)
            else:
                self._apply(objects, entry)
                index += 1
        self._finish_run()

    def _fresh(self, workspace: Workspace) -> _Objects:
        objects = _Objects(workspace)
        objects.parameters.clock.boundary_listeners.append(self._boundary(objects))
        return objects

    def _start(self, objects: _Objects, index: int) -> int:
        """Starts the run ``entries[index]`` recorded and schedules its steps; the next index."""
        entry = self.entries[index]
        queued = len(entry.arguments.get("nets") or [])
        following = index + 1 + queued  # the start's own queueing is replayed by the start
        end = following
        while end < len(self.entries) and self.entries[end].action not in STARTS:
            if self.entries[end].session not in (None, entry.session):
                break
            end += 1
        self._scheduled = deque(self.entries[following:end])
        continual = entry.action != "evolve"
        self._stop_when_done = continual and not any(
            e.action == "Run.stop" for e in self._scheduled
        )
        try:
            run = StepApplier(self, objects).start(entry)
        except Exception as error:  # noqa: BLE001 - said as the step's divergence
            self._failed.update(e.seq for e in self.entries[index:following])
            self.diverged(entry, f"the run did not start: {error}")
            return following
        self._live = (run, objects)
        self._last_run = run
        if self._stop_when_done and not self._scheduled:
            run.stop()
            self._note_open_run(entry)
        return end

    def _boundary(self, objects: _Objects) -> Callable[[Stamp], None]:
        """The clock listener: applies the scheduled steps due at ``stamp`` (run thread)."""

        def at(stamp: Stamp) -> None:
            while self._scheduled and _due(self._scheduled[0], stamp):
                entry = self._scheduled.popleft()
                if entry.stamp is not None and entry.stamp.order() < stamp.order():
                    self.diverged(entry, f"recorded at {entry.stamp}, replayed at {stamp}")
                self._apply(objects, entry)
                if not self._scheduled and self._stop_when_done and self._live is not None:
                    self._live[0].stop()
                    self._note_open_run(entry)

        return at

    def _finish_run(self) -> None:
        """Waits for the live run, then applies the steps whose boundary it never reached."""
        if self._live is None:
            return
        run, objects = self._live
        try:
            run.ended_within(None)  # Ctrl-C reaches the replay: it stops the run
            run.result()
        except KeyboardInterrupt:
            run.stop()  # and let it end before the scratch workspace goes away
            run.join()
            raise
        except Exception as error:  # noqa: BLE001 - the run's own failure, said in the notes
            self._notes.append(f"a replayed run failed: {error}")
        self._live = None
        while self._scheduled:
            self._apply(objects, self._scheduled.popleft())

    # -- steps ----------------------------------------------------------------------------

    def _apply(self, objects: _Objects, entry: JournalEntry) -> None:
        try:
            StepApplier(self, objects).apply(entry)
        except Exception as error:  # noqa: BLE001 - one step's failure is its divergence
            self._failed.add(entry.seq)
            self.diverged(entry, f"{type(error).__name__}: {error}")

    def replayed_id(self, recorded_id: str) -> str:
        """The id of the replayed network a recorded id named (itself if none was found)."""
        return self._ids.get(recorded_id, recorded_id)

    def current_run(self) -> Run | None:
        """The replayed run going on, else the last one (None before any)."""
        return self._last_run

    def remember(self, net: Network) -> Network:
        """Keeps ``net`` findable by fingerprint when a later step names it."""
        if net.layers in self._wanted:
            self._known.setdefault(fingerprint(net), net)
        return net

    def find(self, record: Mapping[str, Any], objects: _Objects) -> Network:
        """The replayed network a recorded ``{"id", "layers", "fingerprint", …}`` names.

        Raises:
            LookupError: when the replay has no network of that fingerprint and
                the recorded one was trained (its weights are not in the journal).
        """
        wanted = str(record.get("fingerprint"))
        if wanted not in self._known:
            for net in [*objects.selection.get_all().values(), *objects.library.get_all().values()]:
                self.remember(net)
        if wanted in self._known:
            self._ids[str(record["id"])] = self._known[wanted].id
            return self._known[wanted]
        bare = Network(
            tuple((kind, tuple(params)) for kind, params in record["layers"]),
            input_shape=tuple(record.get("input_shape", (1, 28, 28))),
            n_classes=int(record.get("n_classes", 10)),
            id=str(record["id"]),
        )
        if fingerprint(bare) == wanted:
            return self.remember(bare)
        if self._divergences:
            # A network the recorded session made later than a step that went otherwise
            # here does not exist in the replay: that step is the cause, not "outside".
            first = self._divergences[0]
            raise LookupError(
                f"network {str(record['id'])[:8]} is not in the replay: it depends on "
                f"step {first.seq} ({first.action}), the first that diverged"
            )
        raise LookupError(
            f"network {str(record['id'])[:8]} came from outside the recorded session "
            "(a file, another run): its weights are not in the journal"
        )

    def diverged(self, entry: JournalEntry, reason: str) -> None:
        """Records that ``entry`` could not be reproduced exactly (and logs it)."""
        logger.warning("Replay: step %d (%s) diverged: %s", entry.seq, entry.action, reason)
        self._divergences.append(Divergence(entry.seq, entry.action, reason))

    def _note_open_run(self, entry: JournalEntry) -> None:
        self._notes.append(
            f"the recorded run was still going after step {entry.seq}; the replay stopped there"
        )

    def _compare(self, replayed: list[JournalEntry]) -> None:
        """Adds a divergence for the first step whose replayed entry differs from the recorded.

        A step whose call failed left no entry, so it is passed over on the replayed side.
        """
        said = {d.seq for d in self._divergences}
        again = iter(replayed)
        for recorded in self.entries:
            if recorded.seq in self._failed:
                continue
            counterpart = next(again, None)
            if recorded.seq in said:
                continue
            problem = "the replay made no such step"
            if counterpart is not None:
                problem = entries_match(recorded, counterpart) or ""
            if problem:
                self.diverged(recorded, problem)
                return


def _due(entry: JournalEntry, stamp: Stamp) -> bool:
    recorded = entry.stamp or Stamp(entry.generation)
    return recorded.order() <= stamp.order()


def _referenced_genomes(entries: Sequence[JournalEntry]) -> set[Any]:
    """The genomes of every network a step names (only those are worth fingerprinting)."""
    genomes: set[Any] = set()

    def visit(value: Any) -> None:
        if isinstance(value, Mapping):
            if "fingerprint" in value and isinstance(value.get("layers"), list):
                genomes.add(tuple((kind, tuple(params)) for kind, params in value["layers"]))
            for item in value.values():
                visit(item)
        elif isinstance(value, list):
            for item in value:
                visit(item)

    for entry in entries:
        visit(dict(entry.arguments))
    return genomes
