"""What this machine can give a generation: memory for each candidate, threads for all of them.

Settings are checked against fixed ranges when they are put, so they say
nothing about the machine that runs them: ``workers=1024`` with
``threads_per_worker=256`` asks for 262,144 threads, which a pid limit answers
with a crash, and a candidate's activations can exceed the memory there is.
These functions read the machine's limits when a generation is planned.
"""

from __future__ import annotations

import logging
import os
import resource
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "AUTO_MEMORY_SHARE",
    "THREADS_PER_CORE",
    "available_memory",
    "bound_threads",
    "memory_budget",
    "startable_threads",
]

logger = logging.getLogger("galapagos_nao.run")

#: Share of the memory available on a device when a generation starts that
#: ``training.max_memory="auto"`` lets the candidates training at once take together.
AUTO_MEMORY_SHARE = 0.5
#: Threads per core a generation may run at most, whatever the OS would allow:
#: beyond the cores more threads only switch contexts, and far beyond they exhaust the machine.
THREADS_PER_CORE = 16

_CGROUP_MEMORY = (
    ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),  # cgroup v2
    (
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        "/sys/fs/cgroup/memory/memory.usage_in_bytes",
    ),  # cgroup v1
)
_CGROUP_PIDS = (
    ("/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/pids.current"),
    ("/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids/pids.current"),
)


def _read_int(path: str) -> int | None:
    """The integer in a one-line file; None when missing or not a number ("max")."""
    try:
        return int(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _cgroup_headroom(pairs: tuple[tuple[str, str], ...]) -> int | None:
    """``limit - in use`` of the first cgroup controller that has a limit; None if none."""
    for limit_path, current_path in pairs:
        limit, current = _read_int(limit_path), _read_int(current_path)
        if limit is not None and current is not None and limit < 2**62:
            return max(0, limit - current)
    return None


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def available_memory(device: torch.device) -> int | None:
    """Bytes free on ``device`` now: a GPU's free memory, or the RAM this process may still use.

    On the CPU the smaller of the system's available memory and the cgroup's
    headroom (a container's limit). None when the machine does not say.
    """
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    found = [m for m in (_meminfo_available(), _cgroup_headroom(_CGROUP_MEMORY)) if m is not None]
    return min(found) if found else None


def memory_budget(setting: Any, device: torch.device, at_once: int) -> int | None:
    """Bytes one candidate (or one group) may need to train: ``training.max_memory`` resolved.

    Args:
        setting: The setting: a byte count, or ``"auto"``.
        device: Where the candidates train.
        at_once: Candidates (or groups) training at once on that device.

    Returns:
        The setting itself when it is a count; for ``"auto"``,
        :data:`AUTO_MEMORY_SHARE` of the memory available now, shared by
        ``at_once``; None (no budget) when the machine does not say.
    """
    if setting != "auto":
        return int(setting)
    available = available_memory(device)
    if available is None:
        return None
    return int(available * AUTO_MEMORY_SHARE / max(1, at_once))


def startable_threads() -> int | None:
    """Threads this process could still start, by the tightest of the OS limits; None if unknown.

    The limits: the cgroup's pids, the kernel's ``threads-max`` and the user's
    ``RLIMIT_NPROC``. What is in use is the cgroup's count, else every thread on
    the system (``/proc/loadavg``): more than the user's own, so the answer errs low.
    """
    headrooms = []
    cgroup = _cgroup_headroom(_CGROUP_PIDS)
    if cgroup is not None:
        headrooms.append(cgroup)
    in_use = _threads_on_system()
    if in_use is not None:
        threads_max = _read_int("/proc/sys/kernel/threads-max")
        if threads_max is not None:
            headrooms.append(threads_max - in_use)
        soft, _ = resource.getrlimit(resource.RLIMIT_NPROC)
        if soft != resource.RLIM_INFINITY and os.geteuid() != 0:  # root is not held to it
            headrooms.append(soft - in_use)
    return max(0, min(headrooms)) if headrooms else None


def _threads_on_system() -> int | None:
    try:  # "0.50 0.40 0.30 2/1234 5678": 1234 threads exist
        return int(Path("/proc/loadavg").read_text().split()[3].split("/")[1])
    except (OSError, ValueError, IndexError):
        return None


def bound_threads(workers: int, threads: int, cores: int) -> tuple[int, int, str | None]:
    """``workers`` and ``threads`` per worker cut to what this machine can run.

    At most :data:`THREADS_PER_CORE` per core, and half of what the OS would
    still let this process start (the rest is left to torch, the data and the
    prompt). Threads per worker go first, then workers.

    Returns:
        The workers, the threads per worker, and a message naming the settings
        when they were cut (None when they fit).
    """
    allowed = THREADS_PER_CORE * max(1, cores)
    startable = startable_threads()
    if startable is not None:
        allowed = min(allowed, startable // 2)
    allowed = max(1, allowed)
    if workers * threads <= allowed:
        return workers, threads, None
    new_workers = min(workers, allowed)
    new_threads = max(1, min(threads, allowed // new_workers))
    message = (
        f"orchestration.workers={workers} × orchestration.threads_per_worker={threads} "
        f"= {workers * threads:,} threads, more than this machine can run "
        f"({allowed:,}: {THREADS_PER_CORE} per core, and half of what the OS lets this "
        f"process start); using workers={new_workers}, threads_per_worker={new_threads}"
    )
    return new_workers, new_threads, message
