"""The current workspace: where the default one lives, and the one the shared objects use.

Where it lives: ``$GN_HOME/workspace.db`` when ``GN_HOME`` is set, else a
per-user data folder (``$XDG_DATA_HOME/galapagos_nao`` or
``~/.local/share/galapagos_nao``; ``%LOCALAPPDATA%`` on Windows,
``~/Library/Application Support`` on macOS). :func:`open` picks another file.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from pathlib import Path

from galapagos_nao.core.checks import describe
from galapagos_nao.store.workspace.errors import WorkspaceError
from galapagos_nao.store.workspace.names import check_experiment_name
from galapagos_nao.store.workspace.schema import DEFAULT_EXPERIMENT
from galapagos_nao.store.workspace.store import Workspace

__all__ = [
    "FILE_NAME",
    "HOME_ENV",
    "close",
    "current",
    "default_folder",
    "default_path",
    "experiment_name",
    "get",
    "open",
    "use_experiment",
]

#: Environment variable naming the folder that holds the default workspace.
HOME_ENV = "GN_HOME"
#: File name of the workspace inside its folder.
FILE_NAME = "workspace.db"


# -- where the default workspace lives ---------------------------------------------


def default_folder() -> Path:
    """The folder of the default workspace: ``$GN_HOME``, else the per-user data folder.

    Raises:
        WorkspaceError: under pytest without ``GN_HOME``, so that no test can
            touch the user's own workspace.
    """
    home = os.environ.get(HOME_ENV)
    if home:
        return Path(home).expanduser()
    if "PYTEST_CURRENT_TEST" in os.environ:
        raise WorkspaceError(
            f"tests must set {HOME_ENV} to a temporary folder; refusing the user's workspace"
        )
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "galapagos_nao"


def default_path() -> Path:
    """The default workspace file (see :func:`default_folder`)."""
    return default_folder() / FILE_NAME


# -- the current workspace ------------------------------------------------------------

_current_lock = threading.Lock()
_current: Workspace | None = None
_current_is_default = False
# The experiment this process works on: the current workspace's, and the one a
# workspace opened later starts with.
_experiment = DEFAULT_EXPERIMENT


def open(  # noqa: A001 - gn.workspace.open(path) reads naturally
    path: str | os.PathLike[str] | None = None,
    *,
    read_only: bool | None = None,
    experiment: str | None = None,
) -> Workspace:
    """Opens a workspace and makes it the current one (the shared Library and Selection use it).

    Opening the file that is already current returns it; another current one is closed.
    The session's archive follows the workspace only through ``gn.experiment``:
    open a workspace, then ``gn.experiment(name)`` loads that experiment.

    Args:
        path: The workspace file; the default (see :func:`default_path`) when None.
        read_only: As for :class:`Workspace`.
        experiment: The experiment to work on; the process's current one
            (:func:`experiment_name`) when None.

    Returns:
        The open workspace.
    """
    global _current, _current_is_default, _experiment
    target = default_path() if path is None else path
    if not isinstance(target, (str, os.PathLike)) or not os.fspath(target):
        raise ValueError(f"path must be a non-empty str or os.PathLike, got {describe(path)}")
    resolved = Path(target).expanduser().absolute()
    with _current_lock:
        name = _experiment
        if experiment is not None:
            name = check_experiment_name("experiment", experiment)
        if (
            _current is not None
            and not _current.closed
            and _current.path == resolved
            and read_only is None
        ):
            _current.use_experiment(name)
            _current_is_default, _experiment = path is None, name
            return _current
        opened = Workspace(resolved, read_only=read_only, experiment=name)
        _experiment = name
        if _current is not None:
            _current.close()
        _current, _current_is_default = opened, path is None
        return opened


def current() -> Workspace | None:
    """The current workspace, or None if none is open (opens nothing)."""
    with _current_lock:
        return None if _current is None or _current.closed else _current


def get() -> Workspace:
    """The current workspace, opening the default one first if needed.

    A default workspace opened implicitly follows ``GN_HOME``: if it changed,
    the old one is closed and the new default opened.
    """
    global _current, _current_is_default
    with _current_lock:
        found = _current
        # An implicitly opened default follows GN_HOME; an explicit open() stays.
        if (
            found is not None
            and not found.closed
            and (not _current_is_default or found.path == default_path().absolute())
        ):
            return found
    return open()


def experiment_name() -> str:
    """The experiment this process works on (``default`` until :func:`use_experiment`)."""
    with _current_lock:
        return _experiment


def use_experiment(name: str) -> Workspace:
    """Switches the current workspace (opening the default one if needed) to experiment ``name``.

    Raises:
        ValueError: if ``name`` is not a valid experiment name (nothing changes).
    """
    global _experiment
    check_experiment_name("name", name)
    found = get()
    with _current_lock:
        found.use_experiment(name)
        _experiment = name
    return found


def close() -> None:
    """Closes the current workspace (if any); the next :func:`get` opens the default again.

    The process's experiment goes back to ``default`` with it.
    """
    global _current, _experiment
    with _current_lock:
        if _current is not None:
            _current.close()
            _current = None
        _experiment = DEFAULT_EXPERIMENT


atexit.register(close)
