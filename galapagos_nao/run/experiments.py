"""Named experiments for a session: ``gn.experiment(name)`` and ``gn.experiments()``.

:class:`Experiments` is a mixin of :class:`~galapagos_nao.run.api.Session`.
The workspace keeps each experiment's runs, checkpoints, history, journal and
task; the session works on one of them at a time with its shared Selection
and Parameters. Switching parks the experiment it leaves (archive, queue,
curation, history, settings) in memory and loads the one it enters: from
where it was parked in this process, else from its last checkpoint, else
empty (a new experiment keeps the current settings and nothing else).

The session also writes its archive's marks to the workspace whenever the
person changes them (``pin``, ``favor``, ``clear()``, …), so that ``watch``
and every other reader show the experiment's state, not a log replayed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from galapagos_nao.archive.curation import CurationState
from galapagos_nao.archive.history import HistoryEntry
from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core.bindings import Viewable
from galapagos_nao.core.clock import BREEDING, Stamp
from galapagos_nao.core.network import Network
from galapagos_nao.run.checkpoint import loadable_parameters
from galapagos_nao.store.workspace import (
    ExperimentInfo,
    Workspace,
    WorkspaceCorrupt,
    WorkspaceError,
    check_experiment_name,
)

__all__ = ["ExperimentList", "Experiments", "ParkedExperiment"]

logger = logging.getLogger("galapagos_nao.run.experiments")

#: Selection actions after which the session writes the archive's marks to the workspace.
_STATE_ACTIONS = frozenset({"pin", "unpin", "favor", "veto", "clear_vetoes", "clear", "put"})


@dataclass(frozen=True)
class ParkedExperiment:
    """An experiment's archive and settings as the session left it (or its checkpoint had them)."""

    elites: dict[Any, Network] = field(default_factory=dict)
    queue: dict[int, Network] = field(default_factory=dict)
    curation: CurationState = field(default_factory=CurationState)
    history: tuple[HistoryEntry | dict[str, Any], ...] = ()
    #: The settings to restore; None keeps the current ones (a new experiment).
    settings: dict[str, dict[str, Any]] | None = None


@dataclass(frozen=True)
class ExperimentList(Viewable):
    """What ``gn.experiments()`` returns: every experiment of the workspace (a table in IPython)."""

    experiments: tuple[ExperimentInfo, ...]
    #: The session's current experiment.
    current: str

    def __len__(self) -> int:
        return len(self.experiments)

    def __iter__(self) -> Iterator[ExperimentInfo]:
        return iter(self.experiments)

    def __getitem__(self, name: str) -> ExperimentInfo:
        for info in self.experiments:
            if info.name == name:
                return info
        raise KeyError(f"no experiment {name!r}; known: {[e.name for e in self.experiments]}")

    def names(self) -> list[str]:
        """The experiments' names, oldest first."""
        return [info.name for info in self.experiments]

    def __repr__(self) -> str:
        return f"<Experiments: {', '.join(self.names())}; current {self.current!r}>"


class Experiments:
    """Switching the session's experiment; the attributes come from the Session."""

    parameters: Parameters
    selection: Selection
    _workspace: Callable[[], Workspace] | None
    _journal_workspace: Callable[[], Workspace | None]

    def _init_experiments(
        self,
        *,
        use_experiment: Callable[[str], Workspace] | None,
        experiment_name: Callable[[], str] | None,
    ) -> None:
        self._use_experiment = use_experiment
        self._experiment_name = experiment_name
        self._parked: dict[str, ParkedExperiment] = {}
        # Experiments whose stored state this session has loaded (or started empty).
        self._entered: set[str] = set()
        # Settings the person put since the last run started or experiment was entered.
        self._put_since: dict[tuple[str, str], Any] = {}
        self.selection.listeners.append(self._write_state)
        self.parameters.listeners.append(self._note_put)

    # -- the user's calls --------------------------------------------------------

    def current_experiment(self) -> str:
        """The name of the experiment the session works on."""
        return "default" if self._experiment_name is None else self._experiment_name()

    def experiment(self, name: str) -> ExperimentInfo:
        """Works on experiment ``name`` from now on, creating it if it is new.

        Its archive, queue, curation, history and settings replace the shared
        Selection's and Parameters'; the experiment left is kept as it was
        (in this process, and in the workspace as of its last checkpoint), and
        switching back restores it. A new experiment starts with an empty
        archive and the current settings. Runs, the journal, ``watch`` and
        checkpoints then all belong to ``name``.

        Returns:
            The experiment, as ``gn.experiments()`` lists it.

        Raises:
            ValueError: if ``name`` is not a valid name (letters, digits, ``_-.``).
            RuntimeError: if a run of the shared Selection is in progress
                (``run.stop()`` it first); nothing changes then.
        """
        name = check_experiment_name("name", name)
        if self._use_experiment is None:
            raise ValueError("this session has no workspace: it has no experiments")
        current = self.current_experiment()
        run = self.selection.run
        if run is not None and not run.done() and name != current:
            raise RuntimeError(
                f"experiment({name!r}): a run of experiment {current!r} is in progress "
                f"({run!r}); stop it with run.stop() first"
            )
        if name == current and (
            name in self._entered or len(self.selection) or self.selection.run is not None
        ):
            # Already worked on here: the live archive is the experiment's.
            self._entered.add(name)
            return self._info(name)
        self._flush_journal()
        if name != current:
            self._parked[current] = self._park()
            self._entered.add(current)
        store = self._use_experiment(name)
        parked = self._parked.pop(name, None)
        source = "as this session left it"
        if parked is None:
            parked, source = self._stored(store)
        self._enter(parked)
        self.forget_settings_put()
        self._entered.add(name)
        info = self._info(name)
        logger.info("Experiment %r: %s (%s)", name, describe_experiment(info), source)
        return info

    def experiments(self) -> ExperimentList:
        """Every experiment of the workspace: name, cells, best val_acc, runs, last activity, task.

        Raises:
            ValueError: if the session has no workspace.
        """
        if self._workspace is None:
            raise ValueError("this session has no workspace: it has no experiments")
        store = self._workspace()
        return ExperimentList(tuple(store.experiments()), self.current_experiment())

    # -- switching ----------------------------------------------------------------

    def _park(self) -> ParkedExperiment:
        return ParkedExperiment(
            elites=self.selection.elites(),
            queue=self.selection.queued(),
            curation=self.selection.curation(),
            history=tuple(self.selection.history()),
            settings=self.parameters.snapshot(),
        )

    def _stored(self, store: Workspace) -> tuple[ParkedExperiment, str]:
        """The experiment as its last checkpoint (and any newer marks) left it."""
        checkpoint = store.checkpoint()
        if checkpoint is None:
            return ParkedExperiment(), "new: empty archive, current settings"
        if checkpoint.problems:
            raise WorkspaceCorrupt("; ".join(checkpoint.problems))
        try:
            curation = CurationState.from_dict(checkpoint.curation or {})
        except ValueError as error:
            raise WorkspaceCorrupt(f"{store.path}: checkpoint: {error}") from None
        elites, queue = dict(checkpoint.elites), dict(checkpoint.queue)
        state = store.experiment_state()
        if state is not None and state.get("time", 0) > checkpoint.written:
            if state.get("cleared") is True:
                elites, queue, curation = {}, {}, CurationState()
            else:
                try:
                    curation = CurationState.from_dict(state.get("curation") or {})
                except ValueError as error:
                    raise WorkspaceCorrupt(f"{store.path}: experiment state: {error}") from None
        rows = store.history(checkpoint.run_id)
        return (
            ParkedExperiment(
                elites=elites,
                queue=queue,
                curation=curation,
                history=tuple(row["archive"] for row in rows if row["archive"]),
                settings=loadable_parameters(checkpoint.parameters),
            ),
            f"from run {checkpoint.run_id}'s checkpoint after generation {checkpoint.generation}",
        )

    def _enter(self, parked: ParkedExperiment) -> None:
        if parked.settings is not None:
            self.parameters.load(parked.settings)
        self.selection.restore(parked.elites, parked.queue, parked.curation)
        self.selection.restore_history(list(parked.history))
        # Actions made now take effect at the experiment's next generation.
        self.parameters.clock.start_at(Stamp(self.selection.next_generation(), BREEDING))

    def _info(self, name: str) -> ExperimentInfo:
        if self._workspace is None:
            return ExperimentInfo(name, 0.0)
        for info in self._workspace().experiments():
            if info.name == name:
                return info
        return ExperimentInfo(name, 0.0)

    def _flush_journal(self) -> None:
        journal = getattr(self, "journal", None)
        if journal is not None:
            journal.entries()  # stores what waits in memory, under the experiment it was made in

    # -- settings the person put ---------------------------------------------------------

    def _note_put(self, action: str, arguments: Mapping[str, Any]) -> None:
        if action == "put":
            for key, value in dict(arguments.get("values") or {}).items():
                self._put_since[(str(arguments["section"]), str(key))] = value
        elif action == "reset":
            self._put_since.clear()

    def settings_put_since(
        self, settings: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, tuple[Any, Any]]:
        """``section.key`` → (put, restored) for each setting put since that ``settings`` undo."""
        found = {}
        for (section, key), mine in self._put_since.items():
            theirs = settings.get(section, {}).get(key, mine)
            if theirs != mine:
                found[f"{section}.{key}"] = (mine, theirs)
        return found

    def forget_settings_put(self) -> None:
        """Starts counting puts afresh (a run started: what it runs with is its own)."""
        self._put_since.clear()

    # -- the archive's state, for readers ----------------------------------------------

    def _write_state(self, action: str, arguments: Mapping[str, Any]) -> None:
        """Writes the archive's marks after a person changed them (a Selection listener)."""
        if action not in _STATE_ACTIONS:
            return
        store = self._journal_workspace()
        if store is None or store.closed or store.read_only:
            return
        try:
            store.put_experiment_state(
                self.selection.curation().as_dict(), cleared=not self.selection.elites()
            )
        except WorkspaceError as error:
            logger.warning("the archive's marks are not in the workspace: %s", error)


def describe_experiment(info: ExperimentInfo) -> str:
    """One line about an experiment: cells, best (named), runs, generation, task."""
    if info.runs == 0:
        return "new, no runs yet" if info.task is None else f"no runs yet, task {_task(info)}"
    best = "-" if info.best_val_acc is None else f"{info.best_val_acc:.4f}"
    return (
        f"{info.cells} cells, best val_acc {best}, {info.runs} run(s), "
        f"archive generation {info.generation}, task {_task(info)}"
    )


def _task(info: ExperimentInfo) -> str:
    task = info.task or {}
    return str(task.get("name", "?"))
