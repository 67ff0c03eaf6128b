"""The one path that prepares every run of a Session, new or resumed: a part of the Session.

:class:`Launching` is a mixin of :class:`~galapagos_nao.run.api.Session`. It owns
what happens between a call of ``evolve``, ``evolve_continual`` or ``resume`` and
the run's start: :meth:`Launching._start_new` checks a new run's starting
networks against its Selection and task, and :meth:`Launching._launch` checks
the rest, assembles the hooks, makes the :class:`~galapagos_nao.run.loop.Run`,
claims the archive, and only then records the action in the journal and changes
the archive and settings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from galapagos_nao.archive.lineage import LineageRegistry
from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.config.setting_checks import optional_seed
from galapagos_nao.core.checks import describe
from galapagos_nao.core.clock import BREEDING, Stamp, holding, in_order
from galapagos_nao.core.datasets import Task
from galapagos_nao.core.fingerprint import task_fingerprint
from galapagos_nao.core.record_checks import check_record
from galapagos_nao.run.arguments import (
    checked_hooks,
    fitted_to_task,
    initial_networks,
    run_seed,
)
from galapagos_nao.run.checkpoint import Checkpointer
from galapagos_nao.run.experiment_task import task_recorder
from galapagos_nao.run.hooks import default_hooks
from galapagos_nao.run.loop import CandidateHook, GenerationHook, Run
from galapagos_nao.run.records import Evaluator
from galapagos_nao.run.stream import TaskStream
from galapagos_nao.store.journal import Journal
from galapagos_nao.store.workspace import Checkpoint, Workspace

__all__ = ["Launching"]


class Launching:
    """Prepares and starts the session's runs: one path for new and resumed ones."""

    selection: Selection
    lineage_registry: LineageRegistry
    journal: Journal
    tracking_workspace: Callable[[Selection], Workspace | None]
    forget_settings_put: Callable[[], None]

    def _start_new(
        self,
        action: str,
        net_or_nets: Any,
        generations: int | None,
        task: Task | None,
        selection: Selection | None,
        parameters: Parameters | None,
        seed: int | None,
        evaluator: Evaluator | None,
        hooks: tuple[Iterable[GenerationHook], Iterable[CandidateHook]],
        stream: TaskStream | None = None,
    ) -> Run:
        selection = self.selection if selection is None else selection
        if not isinstance(selection, Selection):
            raise ValueError(f"selection must be a Selection or None, got {describe(selection)}")
        nets = [] if net_or_nets is None else initial_networks(net_or_nets)
        first_task = stream.tasks[0] if stream is not None else task
        if isinstance(first_task, Task):  # a bad task is named where the run checks it
            nets = fitted_to_task(nets, first_task.input_shape)
        for index, net in enumerate(nets):  # what the Selection would refuse, refused up front
            check_record(net, f"net_or_nets[{index}]")
        if not nets and not len(selection):
            raise ValueError(
                "net_or_nets is None and the Selection is empty: give a network to start from"
            )

        def queue(run: Run) -> None:
            for net in nets:
                selection.put_unevaluated(net)

        recorded: dict[str, Any] = {"nets": nets, "generations": generations}
        if stream is not None:
            recorded.update(
                tasks=list(stream.tasks),
                generations_per_task=stream.generations_per_task,
                cycle=stream.cycle,
            )

        return self._launch(
            generations=generations,
            task=task,
            selection=selection,
            parameters=parameters,
            seed=seed,
            evaluator=evaluator,
            hooks=hooks,
            change_state=queue,
            action=(action, recorded),
            stream=stream,
        )

    def _launch(
        self,
        *,
        generations: int | None,
        task: Task | None,
        selection: Selection,
        parameters: Parameters | None,
        seed: int | None,
        evaluator: Evaluator | None,
        hooks: tuple[Iterable[GenerationHook], Iterable[CandidateHook]],
        change_state: Callable[[Run], None],
        action: tuple[str, dict[str, Any]],
        resume_from: Checkpoint | None = None,
        rng: Any = None,
        stream: TaskStream | None = None,
    ) -> Run:
        """The one preparation path: check, make the run with its hooks, claim, change, start.

        The journal records ``action`` once the run is claimed (a refused start is
        no action), before the run's queued networks and settings change.
        """
        if task is not None and not isinstance(task, Task):
            raise ValueError(f"task must be a datasets.Task or None, got {describe(task)}")
        optional_seed("seed", seed)  # the training.seed setting's check: it must fit a checkpoint
        run_parameters = selection.parameters if parameters is None else parameters
        if resume_from is None:
            seed = run_seed(seed, run_parameters)
        caller_hooks = checked_hooks("hooks", hooks[0])
        caller_candidate_hooks = checked_hooks("candidate_hooks", hooks[1])
        run_hooks = default_hooks(
            lineage=self.lineage_registry,
            checkpoint_into=self.tracking_workspace(selection),
            seed=seed,
        )
        if resume_from is not None:
            for hook in run_hooks:
                if isinstance(hook, Checkpointer):
                    hook.continue_run(resume_from)
        clocks = [selection.parameters.clock, run_parameters.clock]
        # Held from the claim to the start: the journal's stamps of the start and of
        # the networks it queues are the run's first boundary, and nothing slips between.
        with holding(clocks):
            # A new run continues the archive's generation count; a resumed one its checkpoint's.
            first = (
                selection.next_generation() if resume_from is None else resume_from.generation + 1
            )
            run = Run(
                generations=generations,
                task=task,
                selection=selection,
                parameters=run_parameters,
                evaluator=evaluator,
                seed=seed,
                generation_offset=first,
                rng=rng,
                hooks=[*run_hooks, *caller_hooks],
                candidate_hooks=caller_candidate_hooks,
                stream=stream,
                on_task=task_recorder(self.tracking_workspace(selection), selection, stream),
            )
            selection.claim(run)  # fails here, before anything changes, if another run is live
            for clock in in_order(clocks):
                clock.start_at(Stamp(first, BREEDING))
            name, arguments = action
            self.journal.record(
                name,
                {
                    **arguments,
                    "seed": seed,
                    "task": task,
                    # The data itself, so a replay can tell the same task read elsewhere.
                    "task_data": None if task is None else task_fingerprint(task),
                    "shared_selection": selection is self.selection,
                },
            )
            run.listeners.append(self.journal.listener("Run"))
            change_state(run)
            self.forget_settings_put()
            return run.start()
