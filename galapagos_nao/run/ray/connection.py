"""The Ray connection of this process: reuse, join or start one, and undo only that.

An existing ``ray.init`` of this process is reused as it is; otherwise the
``ray_address`` parameter or ``RAY_ADDRESS`` names a cluster to join; otherwise a
local Ray is started with this machine's cores and kept for the session. A
cluster this module did not start is never shut down.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from types import ModuleType

from galapagos_nao.core.extras import MISSING_RAY
from galapagos_nao.run.devices import usable_cores

__all__ = ["connect", "disconnect", "import_ray"]

logger = logging.getLogger("galapagos_nao.run.ray.connection")


def import_ray() -> ModuleType:
    """The ``ray`` module.

    Raises:
        ImportError: naming the ``galapagos-nao[ray]`` extra when Ray is missing.
    """
    try:
        return importlib.import_module("ray")
    except ImportError as error:
        raise ImportError(MISSING_RAY) from error


_connection_lock = threading.Lock()
#: What this module did to connect: None (nothing), "joined" or "started".
_connection_kind: str | None = None
#: Set to let the thread that started the local Ray end (see :func:`_start_local`).
_release_keeper = threading.Event()
#: Ray's start-up notices would print past the user's prompt: keep errors only,
#: and keep worker output in the worker logs.
_QUIET = {"log_to_driver": False, "logging_level": logging.ERROR}


def _start_local(ray: ModuleType, cores: int) -> None:
    """Starts a local Ray from a thread that lives until :func:`disconnect`.

    Ray ties its processes to the *thread* that starts them (they are killed when
    it ends, through Linux's parent-death signal), and runs train on threads that
    end with the run: the keeper thread keeps the local Ray alive across runs.
    """
    _release_keeper.clear()
    started = threading.Event()
    failure: list[BaseException] = []

    def keep() -> None:
        try:
            # "local" starts a fresh instance even when `ray start` left one on this
            # machine (join that one with ray_address="auto").
            ray.init(address="local", num_cpus=cores, include_dashboard=False, **_QUIET)
        except BaseException as error:  # handed to the caller below
            failure.append(error)
        started.set()
        if not failure:
            _release_keeper.wait()

    threading.Thread(target=keep, name="gn-ray-keeper", daemon=True).start()
    started.wait()
    if failure:
        raise failure[0]


def connect(address: str | None = None) -> str:
    """Connects this process to Ray, once.

    Args:
        address: A cluster to join (``"host:6379"``, or ``"auto"`` for one that
            ``ray start`` runs on this machine);
            None falls back to ``RAY_ADDRESS``, then to a local Ray started with
            this machine's cores.

    Returns:
        ``"existing"`` when Ray was already initialised (by the user or an
        earlier run), ``"joined"`` or ``"started"``.

    Raises:
        ImportError: naming the extra when Ray is missing.
        ConnectionError: naming the address when it cannot be reached.
    """
    global _connection_kind
    ray = import_ray()
    with _connection_lock:
        if ray.is_initialized():
            return "existing"
        address = address or os.environ.get("RAY_ADDRESS") or None
        if address is not None:
            try:
                ray.init(address=address, **_QUIET)
            except Exception as error:
                raise ConnectionError(
                    f"orchestration.ray_address or RAY_ADDRESS {address!r}: cannot connect: {error}"
                ) from error
            _connection_kind = "joined"
            logger.info("Joined the Ray cluster at %s", address)
        else:
            cores = usable_cores()
            _start_local(ray, cores)
            _connection_kind = "started"
            logger.info("Started a local Ray with %d CPUs", cores)
        return _connection_kind


def disconnect() -> None:
    """Undoes what :func:`connect` did, and nothing more.

    A local Ray it started is shut down; a cluster it joined is left running (only
    this process disconnects); a Ray the user initialised is left alone.
    """
    global _connection_kind
    with _connection_lock:
        if _connection_kind is None:
            return
        ray = import_ray()
        if ray.is_initialized():
            ray.shutdown()
        _release_keeper.set()
        _connection_kind = None
