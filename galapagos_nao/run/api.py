"""The public way to run evolution: a :class:`Session` of shared objects and its ``evolve``.

``galapagos_nao/__init__.py`` makes one Session from the shared ``gn.Parameters``,
``gn.Selection`` and ``gn.Library``; ``gn.evolve``, ``gn.evolve_continual`` and
``gn.lineage`` are its methods. Every run, new or resumed, is prepared by one
path (:meth:`~galapagos_nao.run.launch.Launching._launch`, a mixin of its own):
check the arguments, assemble the hooks, claim the archive, and only then change
the archive and settings.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from galapagos_nao.archive.lineage import LineageRegistry
from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core.checks import check_int, describe
from galapagos_nao.core.datasets import Task
from galapagos_nao.run.ancestry import Ancestry
from galapagos_nao.run.checkpoint import ResumePoint
from galapagos_nao.run.experiment_task import check_resume_task
from galapagos_nao.run.experiments import Experiments
from galapagos_nao.run.launch import Launching
from galapagos_nao.run.loop import CandidateHook, GenerationHook, Run
from galapagos_nao.run.records import Evaluator
from galapagos_nao.run.stream import TaskStream
from galapagos_nao.run.tracking import Tracking
from galapagos_nao.store.journal import Journal
from galapagos_nao.store.library import Library
from galapagos_nao.store.workspace import Workspace

__all__ = ["Session"]

logger = logging.getLogger("galapagos_nao.run.api")


class Session(Ancestry, Tracking, Experiments, Launching):
    """The objects a REPL session shares, and the one way runs of them start.

    Args:
        parameters: The shared settings (``gn.Parameters``).
        selection: The shared archive (``gn.Selection``); it defaults every call.
        library: The shared snapshots (``gn.Library``), searched by :meth:`lineage`.
        workspace: Returns the workspace that checkpoints runs of ``selection``
            (``gn.workspace.get``), or None to checkpoint nothing by default.
        open_workspace: Returns that workspace only if it is open already
            (``gn.workspace.current``): where the journal is kept, without
            opening a file for it; None keeps it in memory unless tracked.
        use_experiment: Switches the current workspace to a named experiment and
            returns it (``gn.workspace.use_experiment``); None: no experiments.
        experiment_name: Returns the current experiment's name
            (``gn.workspace.experiment_name``).

    Attributes:
        lineage_registry: Every parent and elite the session's runs saw, without weights.
        journal: Every steering action on these objects and runs (``gn.journal``):
            the session appends its recorder to the listeners of ``parameters``,
            ``selection``, ``library`` and each run it starts.
    """

    def __init__(
        self,
        *,
        parameters: Parameters,
        selection: Selection,
        library: Library,
        workspace: Callable[[], Workspace] | None = None,
        open_workspace: Callable[[], Workspace | None] | None = None,
        use_experiment: Callable[[str], Workspace] | None = None,
        experiment_name: Callable[[], str] | None = None,
    ) -> None:
        self.parameters = parameters
        self.selection = selection
        self.library = library
        self.lineage_registry = LineageRegistry()
        Tracking.__init__(self, workspace=workspace, open_workspace=open_workspace)
        self._init_experiments(use_experiment=use_experiment, experiment_name=experiment_name)
        self.journal = Journal(
            workspace=self._journal_workspace,
            read_workspace=self._journal_reading_workspace,
            position=parameters.clock.now,
            experiment=experiment_name,
        )
        parameters.listeners.append(self.journal.listener("Parameters"))
        selection.listeners.append(self.journal.listener("Selection"))
        library.listeners.append(self.journal.listener("Library"))

    # -- starting runs -------------------------------------------------------------

    def evolve(
        self,
        net_or_nets: Any,
        generations: int,
        task: Task | None = None,
        *,
        selection: Selection | None = None,
        parameters: Parameters | None = None,
        seed: int | None = None,
        evaluator: Evaluator | None = None,
        hooks: Iterable[GenerationHook] = (),
        candidate_hooks: Iterable[CandidateHook] = (),
    ) -> Run:
        """Evolves for ``generations`` generations on a background thread.

        Args:
            net_or_nets: A Network, a genome, or a list of them, queued as the
                starting population; None continues from what the Selection holds.
            generations: How many generations to run (≥ 1).
            task: The data; full MNIST (see ``datasets.mnist``) when None.
            selection: The archive to evolve; the shared ``gn.Selection`` when None.
            parameters: Settings; the Selection's (``gn.Parameters``) when None.
            seed: Seeds the run's generator; ``training.seed`` when None.
            evaluator: Trains candidates; chosen from Parameters when None.
            hooks: Called with each generation's report after the default hooks
                (history, lineage, checkpoint), from generation 0 on.
            candidate_hooks: Called with each candidate's outcome as it completes.

        Returns:
            The :class:`Run`, already started.

        Raises:
            ValueError: for bad arguments (nothing is queued then).
            RuntimeError: if the Selection already has a run in progress.
        """
        check_int("generations", generations, minimum=1)
        return self._start_new(
            "evolve",
            net_or_nets,
            generations,
            task,
            selection,
            parameters,
            seed,
            evaluator,
            (hooks, candidate_hooks),
        )

    def evolve_continual(
        self,
        net: Any = None,
        task: Task | None = None,
        *,
        selection: Selection | None = None,
        parameters: Parameters | None = None,
        seed: int | None = None,
        evaluator: Evaluator | None = None,
        hooks: Iterable[GenerationHook] = (),
        candidate_hooks: Iterable[CandidateHook] = (),
        resume: bool = False,
        tasks: Any = None,
        generations_per_task: int | None = None,
        cycle: bool = False,
    ) -> Run:
        """Evolves until stopped (``run.stop()``); arguments as for :meth:`evolve`.

        With ``resume=True`` it continues the workspace's last run from its last
        completed generation, with that generation's archive, Parameters and
        generator state (see :meth:`resume`); ``net`` and ``seed`` must then be None.

        With ``tasks`` (a list of Tasks, e.g. ``datasets.split_mnist()``) the run
        moves to the next task every ``generations_per_task`` generations (None:
        only on ``run.switch_task``) and, after the last, stays on it, or starts
        over when ``cycle`` is True; see :mod:`galapagos_nao.run.stream`.

        Raises:
            ValueError: for bad arguments, ``resume=True`` with ``net`` or ``seed``,
                or both ``task`` and ``tasks``.
        """
        if tasks is not None and task is not None:
            raise ValueError("task and tasks conflict: give one task or a stream of them")
        if resume is not False:
            if resume is not True:
                raise ValueError(f"resume must be True or False, got {describe(resume)}")
            if net is not None or seed is not None:
                raise ValueError(
                    "resume=True conflicts with net and seed: "
                    "a resumed run continues its checkpoint"
                )
            return self.resume(
                task,
                tasks=tasks,
                selection=selection,
                parameters=parameters,
                evaluator=evaluator,
                hooks=hooks,
                candidate_hooks=candidate_hooks,
            )
        stream = None
        if tasks is not None:
            stream = TaskStream(tasks, generations_per_task=generations_per_task, cycle=cycle)
        return self._start_new(
            "evolve_continual",
            net,
            None,
            task,
            selection,
            parameters,
            seed,
            evaluator,
            (hooks, candidate_hooks),
            stream,
        )

    def resume(
        self,
        task: Task | None = None,
        *,
        selection: Selection | None = None,
        parameters: Parameters | None = None,
        evaluator: Evaluator | None = None,
        hooks: Iterable[GenerationHook] = (),
        candidate_hooks: Iterable[CandidateHook] = (),
        tasks: Any = None,
    ) -> Run:
        """Continues the workspace's last run from its last completed generation.

        The Selection gets that generation's elites and queue, the Parameters its
        settings, and the run its generator, then evolves until stopped; later
        checkpoints go to the same run. Nothing changes if anything is missing.

        Args:
            task: The data (the workspace does not store it); full MNIST when None.
            tasks: The task stream of a run that had one (the same tasks, in
                order): it continues at its position, with its replay memory and R.
            selection: The archive to restore into; ``gn.Selection`` when None.
            parameters: The settings to restore; the Selection's when None.
            evaluator: Trains candidates; chosen from Parameters when None.
            hooks: As for :meth:`evolve`.
            candidate_hooks: As for :meth:`evolve`.

        Raises:
            ValueError: if the Selection has no workspace or it holds no run to resume.
            WorkspaceCorrupt: naming the file and the damaged entries of the checkpoint.
            RuntimeError: if the Selection already has a run in progress.
        """
        selection = self.selection if selection is None else selection
        into = self.tracking_workspace(selection)
        if into is None:
            raise ValueError(
                "resume: this Selection has no workspace; "
                "call gn.continual.track(selection, workspace)"
            )
        point = ResumePoint.read(into, tasks)
        check_resume_task(into, task, point.stream)
        checkpoint = point.checkpoint
        overridden = self.settings_put_since(point.settings)

        def restore(run: Run) -> None:
            point.restore(run.parameters, selection)
            for key, (mine, theirs) in overridden.items():
                logger.warning(
                    "resume: %s is back to the checkpoint's %r over the %r you put since; "
                    "put it again to change it",
                    key,
                    theirs,
                    mine,
                )
            logger.info(
                "Resuming run %d of %s after generation %d",
                checkpoint.run_id,
                into.path,
                checkpoint.generation,
            )

        return self._launch(
            generations=None,
            task=task,
            selection=selection,
            parameters=parameters,
            seed=point.seed,
            evaluator=evaluator,
            hooks=(hooks, candidate_hooks),
            resume_from=checkpoint,
            rng=point.rng,
            change_state=restore,
            action=(
                "resume",
                {
                    "run_id": checkpoint.run_id,
                    "after": checkpoint.generation,
                    "tasks": None if point.stream is None else list(point.stream.tasks),
                },
            ),
            stream=point.stream,
        )
