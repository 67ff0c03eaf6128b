"""Galápagos Nǎo: a playground for continual, interactive neuroevolution on PyTorch.

The map of the package, one module per responsibility:

- :mod:`~galapagos_nao.genome` describes networks as lists of layer tuples
  (registry, validation, complexity);
- :mod:`~galapagos_nao.evolution` breeds children from them (pure operators on a
  seeded generator);
- :mod:`~galapagos_nao.network` compiles genomes to ``nn.Sequential`` and keeps
  each trained result as an immutable :class:`Network` record;
- :mod:`~galapagos_nao.training` and :mod:`~galapagos_nao.datasets` train and
  measure candidates on device-resident tasks;
- :mod:`~galapagos_nao.selection` is the archive of elites per complexity level,
  :mod:`~galapagos_nao.library` the user's snapshots, and
  :mod:`~galapagos_nao.parameters` the runtime settings;
- :mod:`~galapagos_nao.orchestration` connects them: :func:`evolve` and
  :func:`evolve_continual` run generations on a background thread and return a
  :class:`Run` handle;
- :mod:`~galapagos_nao.example` holds the seed's session;
- keeping what was learned: :mod:`~galapagos_nao.workspace` is the SQLite file
  behind the Library and the run checkpoints, :mod:`~galapagos_nao.continual`
  checkpoints runs and resumes them, :mod:`~galapagos_nao.persistence` saves,
  loads (:func:`load`) and exports networks;
- illumination: :mod:`~galapagos_nao.measures` are the archive's axes,
  :mod:`~galapagos_nao.history` its metrics per generation,
  :func:`lineage` walks a network's ancestry, :mod:`~galapagos_nao.plot` draws,
  :mod:`~galapagos_nao.display` renders IPython views and
  :mod:`~galapagos_nao.progress` shows ``run.wait(progress=True)`` bars.

``gn.Selection``, ``gn.Library`` and ``gn.Parameters`` are the shared instances
the REPL talks to, as in the seed.
"""

from __future__ import annotations

import logging

from galapagos_nao import (
    datasets,
    evolution,
    example,
    genome,
    network,
    orchestration,
    training,
    workspace,
)
from galapagos_nao.genome import register_layer, validate
from galapagos_nao.library import Library as _LibraryClass
from galapagos_nao.network import Network, build
from galapagos_nao.parameters import Parameters as _ParametersClass
from galapagos_nao.persistence import load
from galapagos_nao.selection import Selection as _SelectionClass

# Library code only logs; the examples (and users) add handlers.
logging.getLogger("galapagos_nao").addHandler(logging.NullHandler())

#: The shared runtime settings.
Parameters = _ParametersClass()
#: The shared archive of elites.
Selection = _SelectionClass(parameters=Parameters)
#: The shared model snapshots, kept durably in the current workspace.
Library = _LibraryClass(workspace=workspace.get)

from galapagos_nao import (  # noqa: E402  # noqa: E402  # noqa: E402 - registers the checkpoint hook
    continual,
    display,
    history,
    library,
    measures,
    parameters,
    persistence,
    plot,
    progress,
    ray_backend,  # noqa: E402 - imports Ray only when the backend is used
    selection,
)
from galapagos_nao.lineage import lineage  # noqa: E402
from galapagos_nao.orchestration import Run, evolve, evolve_continual  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    # shared instances
    "Library",
    "Parameters",
    "Selection",
    # running
    "Run",
    "evolve",
    "evolve_continual",
    # networks and genomes
    "Network",
    "build",
    "register_layer",
    "validate",
    # keeping what was learned
    "load",
    "workspace",
    "continual",
    "persistence",
    # illumination
    "lineage",
    "plot",
    # modules
    "datasets",
    "evolution",
    "example",
    "genome",
    "library",
    "network",
    "orchestration",
    "parameters",
    "selection",
    "training",
    "display",
    "history",
    "measures",
    "progress",
    "ray_backend",
]
