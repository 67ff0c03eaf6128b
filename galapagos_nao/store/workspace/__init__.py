"""The workspace: one SQLite file that keeps everything a session learned.

It holds named experiments (like Optuna's studies in one storage): each has its
own runs, checkpoints, history, journal and task, and one writer at a time;
several processes write different experiments of one file at once.

It holds the Library, each run's last archive checkpoint (elites, queue, the
Parameters in force and the run generator's state), and every generation's
history row. Networks are stored as the safetensors bytes of
:mod:`~galapagos_nao.store.codec`, never as pickles, so reading a workspace
never runs code.

The modules, each importing only those before it:

- :mod:`.errors`: :class:`WorkspaceError`, :class:`WorkspaceLocked`,
  :class:`WorkspaceCorrupt`;
- :mod:`.names`: what an experiment may be called;
- :mod:`.lock`: the writer lock of each experiment (not followed through links,
  not kept by children);
- :mod:`.files`: file health (not SQLite, truncated, salvage);
- :mod:`.schema`: the tables, :data:`SCHEMA_VERSION` and the upgrade of older files;
- :mod:`.connection`: opening a file, durability settings, read and write transactions;
- :mod:`.runs`: checkpoints, runs and history (:class:`Checkpoint`, :class:`RunInfo`);
- :mod:`.journal_table`: the session journal's rows;
- :mod:`.summary`: an experiment's last run at a glance for dashboards (:class:`RunSummary`);
- :mod:`.experiments`: the experiments listed, each one's task and state (:class:`ExperimentInfo`);
- :mod:`.store`: :class:`Workspace`, which adds the Library table;
- :mod:`.current_workspace`: the default location and the current workspace
  (:func:`open`, :func:`current`, :func:`get`, :func:`close`).

Everything public is re-exported here: ``gn.workspace.open(...)`` and
``from galapagos_nao.store.workspace import Workspace`` are the ways in.
"""

from __future__ import annotations

from galapagos_nao.store.workspace.current_workspace import (
    FILE_NAME,
    HOME_ENV,
    close,
    current,
    default_folder,
    default_path,
    experiment_name,
    get,
    open,
    use_experiment,
)
from galapagos_nao.store.workspace.errors import WorkspaceCorrupt, WorkspaceError, WorkspaceLocked
from galapagos_nao.store.workspace.experiments import ExperimentInfo
from galapagos_nao.store.workspace.names import check_experiment_name
from galapagos_nao.store.workspace.runs import Checkpoint, RunInfo
from galapagos_nao.store.workspace.schema import DEFAULT_EXPERIMENT, SCHEMA_VERSION
from galapagos_nao.store.workspace.store import Workspace
from galapagos_nao.store.workspace.summary import RunSummary

__all__ = [
    # the workspace and what it returns
    "Checkpoint",
    "ExperimentInfo",
    "RunInfo",
    "RunSummary",
    "Workspace",
    # what goes wrong
    "WorkspaceCorrupt",
    "WorkspaceError",
    "WorkspaceLocked",
    # the current workspace
    "FILE_NAME",
    "HOME_ENV",
    "close",
    "current",
    "default_folder",
    "default_path",
    "get",
    "open",
    # experiments
    "DEFAULT_EXPERIMENT",
    "check_experiment_name",
    "experiment_name",
    "use_experiment",
    # the file layout
    "SCHEMA_VERSION",
]
