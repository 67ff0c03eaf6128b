"""Galápagos Nǎo: a playground for continual, interactive neuroevolution on PyTorch.

How to start::

    import galapagos_nao as gn                 # `import gn` works too
    run = gn.example.short_example()           # returns at once; trains on a background thread
    run                                        # generation, evaluated, best test_acc
    gn.Selection.get_all()                     # the elites by cell, while it trains
    run = gn.evolve_continual(None)            # go on until run.stop()
    gn.Parameters.get_all()                    # every setting, its default and meaning
    gn.experiment("mine")                      # a named experiment: its own archive and journal
    gn.experiments()                           # all of them: cells, best val_acc, runs, task
    gn.journal()                               # every steering action of this experiment

In a second terminal, ``python -m galapagos_nao watch --experiment mine`` follows it.

The map of the package. Six layers, each a sub-package whose modules import
only from the layers before it (``tests/test_layers.py`` enforces it):

1. :mod:`~galapagos_nao.core`: genomes and their layer registry, the
   :class:`Network` record, breeding operators, archive measures, datasets and
   training. Pure: its only shared state is the bindings table the upper
   layers fill once and the default MNIST task, loaded once.
2. :mod:`~galapagos_nao.config`: the Parameters sections, defaults and checks.
3. :mod:`~galapagos_nao.archive`: the MAP-Elites Selection, its history and
   the lineage registry.
4. :mod:`~galapagos_nao.store`: network files, the SQLite workspace, the Library.
5. :mod:`~galapagos_nao.run`: evaluators (threads, Ray), the generation loop
   (:class:`Run`), its hooks, and the :class:`~galapagos_nao.run.api.Session`
   that starts runs.
6. :mod:`~galapagos_nao.ui`: IPython views, plots, progress bars.

This file, :mod:`~galapagos_nao.example` and ``__main__`` sit on top: here the
shared instances are made (``gn.Parameters``, ``gn.Selection``, ``gn.Library``
and the ``session`` whose methods are ``gn.evolve``, ``gn.evolve_continual``,
``gn.breed`` and ``gn.lineage``, and whose journal is ``gn.journal``), the upper
layers lend their views and file code to the lower classes (``store.bind()``,
``ui.bind()``), and the old flat module names (``galapagos_nao.orchestration``,
``.selection``, …) are kept as aliases.
"""

from __future__ import annotations

import sys

from galapagos_nao import archive, config, core, run, store, ui
from galapagos_nao.archive import history, selection
from galapagos_nao.config import parameters
from galapagos_nao.core import datasets, evolution, genome, measures, network, training
from galapagos_nao.core.genome import register_layer, validate
from galapagos_nao.core.network import Network, build
from galapagos_nao.run import api, checkpoint, loop, session_journal
from galapagos_nao.run.loop import Run
from galapagos_nao.run.ray import driver as ray_backend
from galapagos_nao.run.ray import worker as ray_tasks
from galapagos_nao.store import library, persistence, workspace
from galapagos_nao.store.old_files import upgrade
from galapagos_nao.store.persistence import load
from galapagos_nao.ui import display, progress
from galapagos_nao.ui.logs import install_warnings_handler, log_level

# Library code only logs; the examples (and users) add handlers. Warnings and
# errors reach stderr without any (and without doubling when one is added).
install_warnings_handler()

# The upper layers lend their code to the lower classes, once, here.
store.bind()
ui.bind()

#: The shared runtime settings.
Parameters = parameters.Parameters()
#: The shared archive of elites.
Selection = selection.Selection(parameters=Parameters)
#: The shared model snapshots, kept durably in the current workspace.
Library = library.Library(workspace=workspace.get)
#: The session the REPL talks to: starts runs of ``Selection`` (checkpointed
#: in the current workspace) and remembers their lineage.
session: api.Session = api.Session(
    parameters=Parameters,
    selection=Selection,
    library=Library,
    workspace=workspace.get,
    open_workspace=workspace.current,
    use_experiment=workspace.use_experiment,
    experiment_name=workspace.experiment_name,
)
evolve = session.evolve
evolve_continual = session.evolve_continual
#: ``gn.experiment(name)``: work on a named experiment of the workspace (made if new).
experiment = session.experiment
#: ``gn.experiments()``: every experiment of the workspace, as a table.
experiments = session.experiments
#: ``gn.breed(a, b)``: a child of two networks by one-point crossover.
breed = session.breed
#: ``gn.journal()``: every steering action of this session, as a table;
#: ``gn.journal.replay(task)`` re-runs them, ``gn.journal.to_script(path)`` writes them out.
journal = session_journal.SessionJournal(session)

# Old flat module names, kept importable for users' scripts (the package's own
# code imports from the layers). These four bind the shared instances and so are
# files of their own: orchestration, continual, plot, lineage.
for _old_name, _module in {
    "datasets": datasets,
    "display": display,
    "evolution": evolution,
    "genome": genome,
    "history": history,
    "library": library,
    "measures": measures,
    "network": network,
    "parameters": parameters,
    "persistence": persistence,
    "progress": progress,
    "ray_backend": ray_backend,
    "ray_tasks": ray_tasks,
    "selection": selection,
    "training": training,
    "typing": core.typing,
    "workspace": workspace,
}.items():
    sys.modules.setdefault(f"{__name__}.{_old_name}", _module)

from galapagos_nao import continual, example, orchestration, plot  # noqa: E402
from galapagos_nao import lineage as _lineage_module  # noqa: E402, F401 - binds the old module

#: ``gn.lineage(net)``: the chain from ``net`` back to its seed.
lineage = session.lineage

__version__ = "0.1.0"

#: What ``gn.<Tab>`` offers: the user's API. The layers and the old module names
#: stay importable (``gn.core``, ``gn.selection``), they are just not offered.
_USER_API = (
    "Library",
    "Network",
    "Parameters",
    "Run",
    "Selection",
    "breed",
    "build",
    "datasets",
    "evolution",
    "evolve",
    "evolve_continual",
    "example",
    "experiment",
    "experiments",
    "journal",
    "lineage",
    "load",
    "log_level",
    "orchestration",
    "plot",
    "register_layer",
    "training",
    "upgrade",
    "validate",
    "workspace",
)


def __dir__() -> list[str]:
    """The user's API (``gn.<Tab>``); see ``__all__`` for everything importable."""
    return sorted(_USER_API)


__all__ = [
    # shared instances
    "Library",
    "Parameters",
    "Selection",
    "session",
    # running
    "Run",
    "experiment",
    "experiments",
    "evolve",
    "evolve_continual",
    "log_level",
    # steering
    "breed",
    "journal",
    # networks and genomes
    "Network",
    "build",
    "register_layer",
    "validate",
    # keeping what was learned
    "load",
    "upgrade",
    "workspace",
    "continual",
    "persistence",
    # illumination
    "lineage",
    "plot",
    # layers
    "archive",
    "config",
    "core",
    "run",
    "store",
    "ui",
    # modules (old flat names)
    "checkpoint",
    "datasets",
    "display",
    "evolution",
    "example",
    "genome",
    "history",
    "library",
    "loop",
    "measures",
    "network",
    "orchestration",
    "parameters",
    "progress",
    "ray_backend",
    "selection",
    "training",
]
