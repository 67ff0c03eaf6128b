"""The steps of a replay: each recorded action applied again, and how two entries compare.

:class:`StepApplier` turns one :class:`~galapagos_nao.store.journal.JournalEntry`
back into the call that made it, on a replay's fresh objects; networks the
entry names are found by fingerprint (:meth:`ReplayContext.find`).
:func:`entries_match` says how a replayed entry differs from the recorded one,
ids aside (they are fresh uuids in every process).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core.checks import describe
from galapagos_nao.core.datasets import Task
from galapagos_nao.core.fingerprint import task_fingerprint
from galapagos_nao.core.network import Network
from galapagos_nao.run.api import Session
from galapagos_nao.run.loop import Run
from galapagos_nao.run.records import Outcome
from galapagos_nao.store.journal import JournalEntry, plain
from galapagos_nao.store.library import Library

__all__ = ["STARTS", "Divergence", "ReplayContext", "StepApplier", "entries_match"]

#: Actions that start a run: the steps after one, until the next, happen during it.
STARTS = ("evolve", "evolve_continual", "resume")


@dataclass(frozen=True)
class Divergence:
    """A journal step the replay could not reproduce exactly, and why."""

    seq: int  #: the step's number in the journal
    action: str  #: what it was
    reason: str  #: why it differs

    def __str__(self) -> str:
        return f"step {self.seq} ({self.action}): {self.reason}"


class Objects(Protocol):
    """The replay's objects for one recorded process."""

    parameters: Parameters
    selection: Selection
    library: Library
    session: Session


class ReplayContext(Protocol):
    """What a step needs of the replay."""

    task: Task | None
    tasks: list[Task] | None

    def find(self, record: Mapping[str, Any], objects: Any) -> Network:
        """The replayed network a recorded one names (LookupError if none)."""
        ...

    def remember(self, net: Network) -> Network:
        """Keeps ``net`` findable by fingerprint."""
        ...

    def replayed_id(self, recorded_id: str) -> str:
        """The id of the replayed network a recorded id named (itself if none was found)."""
        ...

    def current_run(self) -> Run | None:
        """The replayed run going on, else the last one (None before any)."""
        ...

    def diverged(self, entry: JournalEntry, reason: str) -> None:
        """Records that ``entry`` could not be reproduced exactly."""
        ...


def _cell(value: Any) -> Any:
    # The journal keeps cells as JSON: a tuple of levels comes back as a list.
    return tuple(value) if isinstance(value, list) else value


class StepApplier:
    """Applies recorded steps to one process's replayed objects."""

    def __init__(self, replay: ReplayContext, objects: Objects) -> None:
        self.replay = replay
        self.objects = objects

    def apply(self, entry: JournalEntry) -> None:
        """Makes the call ``entry`` recorded.

        Raises:
            LookupError: for an action this version cannot replay, or a network
                the replay does not have.
            Exception: whatever the call raises (the recorded one had succeeded).
        """
        handler = self._handlers().get(entry.action)
        if handler is None:
            raise LookupError(f"no replay for the action {entry.action!r}")
        handler(entry.arguments)

    def _handlers(self) -> dict[str, Callable[[Mapping[str, Any]], object]]:
        o, find = self.objects, self._find
        return {
            "Parameters.put": lambda a: o.parameters.put(a["section"], a["values"]),
            "Parameters.reset": lambda a: o.parameters.reset(),
            "Selection.put": lambda a: o.selection.put(_cell(a["level"]), find(a["net"])),
            "Selection.put_unevaluated": lambda a: o.selection.put_unevaluated(find(a["net"])),
            "Selection.clear": lambda a: o.selection.clear(),
            "Selection.pin": lambda a: o.selection.pin(_cell(a["cell"])),
            "Selection.unpin": lambda a: o.selection.unpin(_cell(a["cell"])),
            "Selection.favor": lambda a: o.selection.favor(_cell(a["cell"]), a["weight"]),
            "Selection.veto": lambda a: o.selection.veto(find(a["net"])),
            "Selection.clear_vetoes": lambda a: o.selection.clear_vetoes(),
            "Library.put": lambda a: o.library.put(find(a["net"])),
            "Library.remove": self._library_remove,
            "Library.import_": lambda a: o.library.import_(
                a["directory"], replace=a.get("replace") is True
            ),
            "breed": self._breed,
            "Run.stop": self._stop,
            "Run.switch_task": self._switch_task,
        }

    def _find(self, record: Mapping[str, Any]) -> Network:
        return self.replay.find(record, self.objects)

    def _library_remove(self, arguments: Mapping[str, Any]) -> None:
        # The replayed snapshot has a fresh id: the put that stored it named its fingerprint.
        self.objects.library.remove(self.replay.replayed_id(arguments["id"]))

    def _breed(self, arguments: Mapping[str, Any]) -> None:
        seed = arguments.get("seed")
        if seed is None:
            raise ValueError("the recorded breed drew its cut points from fresh entropy")
        first, second = self._find(arguments["first"]), self._find(arguments["second"])
        self.replay.remember(self.objects.session.breed(first, second, seed=seed))

    def _stop(self, arguments: Mapping[str, Any]) -> None:
        run = self.replay.current_run()
        if run is None:
            raise LookupError("no replayed run to stop")
        run.stop()  # also on an ended run: the recorded stop was one too

    def _switch_task(self, arguments: Mapping[str, Any]) -> None:
        run = self.replay.current_run()
        wanted = arguments["task"]
        named = [t for t in self.replay.tasks or [] if plain(t) == wanted]
        if run is None or not named:
            raise LookupError(f"no replayed run with a task {wanted!r} to switch to")
        run.switch_task(named[0])

    # -- starting runs ----------------------------------------------------------------

    def start(self, entry: JournalEntry) -> Run:
        """Starts the run ``entry`` (an evolve, evolve_continual or resume) recorded.

        Raises:
            ValueError: for a run the journal cannot follow (on a Selection of its own).
        """
        arguments = entry.arguments
        if arguments.get("shared_selection", True) is not True:
            raise ValueError("it evolved a Selection of its own, whose steps are not journaled")
        given = self.replay.task
        if not _same_task(arguments, given):
            self.replay.diverged(
                entry,
                f"recorded on task {arguments.get('task')!r}, replayed on {describe(given)}",
            )
        session = self.objects.session
        hooks = [self._remember_outcome]
        if entry.action == "resume":
            tasks = self.replay.tasks if arguments.get("tasks") else None
            return session.resume(given, tasks=tasks, candidate_hooks=hooks)
        nets = [self._find(record) for record in arguments.get("nets") or []]
        seed = arguments.get("seed")
        if entry.action == "evolve":
            return session.evolve(
                nets or None, arguments["generations"], given, seed=seed, candidate_hooks=hooks
            )
        if arguments.get("tasks"):
            return session.evolve_continual(
                nets or None,
                tasks=self._stream_tasks(arguments["tasks"]),
                generations_per_task=arguments.get("generations_per_task"),
                cycle=bool(arguments.get("cycle")),
                seed=seed,
                candidate_hooks=hooks,
            )
        return session.evolve_continual(nets or None, given, seed=seed, candidate_hooks=hooks)

    def _stream_tasks(self, recorded: Sequence[Any]) -> list[Task]:
        tasks = self.replay.tasks
        if tasks is None:
            raise ValueError(f"the recorded run moved through tasks {list(recorded)}; pass tasks=")
        if [plain(t) for t in tasks] != list(recorded):
            raise ValueError(f"the recorded tasks were {list(recorded)}, not the ones given")
        return tasks

    def _remember_outcome(self, outcome: Outcome) -> None:
        if outcome.network is not None:
            self.replay.remember(outcome.network)


def _same_task(arguments: Mapping[str, Any], given: Task | None) -> bool:
    """Whether ``given`` is the recorded task: by its data when recorded, else by its name line."""
    if "task_data" not in arguments:  # a resume, or a journal from before task digests
        return "task" not in arguments or arguments["task"] == plain(given)
    recorded = arguments["task_data"]
    return recorded == (None if given is None else task_fingerprint(given))


def _comparable(value: Any) -> Any:
    """``value`` with every network as its fingerprint (ids differ between processes)."""
    if isinstance(value, Mapping):
        if "fingerprint" in value and "layers" in value:
            return {"network": value["fingerprint"]}
        return {key: _comparable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_comparable(item) for item in value]
    return value


def entries_match(recorded: JournalEntry, replayed: JournalEntry) -> str | None:
    """None if ``replayed`` repeats ``recorded`` (ids aside), else how it differs."""
    if recorded.action != replayed.action:
        return f"recorded {recorded.action}, replayed {replayed.action}"
    if recorded.stamp is not None and recorded.stamp != replayed.stamp:
        return f"recorded at {recorded.stamp}, replayed at {replayed.stamp}"
    mine, theirs = _comparable(dict(recorded.arguments)), _comparable(dict(replayed.arguments))
    if recorded.action == "Library.remove":
        mine.pop("id", None), theirs.pop("id", None)  # a fresh id each process
    if mine.get("task_data") is not None and mine.get("task_data") == theirs.get("task_data"):
        mine.pop("task", None), theirs.pop("task", None)  # the same data, read elsewhere
    for key in sorted({*mine, *theirs}):
        if mine.get(key) != theirs.get(key):
            return (
                f"{key}: recorded {describe(mine.get(key))}, replayed {describe(theirs.get(key))}"
            )
    return None
