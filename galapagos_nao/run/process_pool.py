"""Worker processes of the ``processes`` backend, and the pool that keeps them for the session.

A :class:`WorkerProcess` is one ``python -m galapagos_nao.run.process_worker``
and its channel (stdin and stdout, frames of
:mod:`galapagos_nao.run.process_wire`); every wait on it has a deadline and
sees the run's stop. A :class:`WorkerPool` keeps the processes between runs,
as the Ray backend keeps its connection: the first run of a session pays their
start (about 3 s to import torch), later runs start at once. A process idle
for :data:`IDLE_SECONDS` ends, so a session that stopped training gets its
memory back; the pool ends what is left when Python exits.
"""

from __future__ import annotations

import atexit
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from galapagos_nao.core.datasets import Task
from galapagos_nao.core.training import CandidateFailure
from galapagos_nao.run.process_wire import (
    MAX_RESULT_BYTES,
    PREFIX_BYTES,
    frame_lengths,
    parse_header,
)

__all__ = [
    "IDLE_SECONDS",
    "START_SECONDS",
    "WorkerGone",
    "WorkerPool",
    "WorkerProcess",
    "WorkerStopped",
    "WorkerTimedOut",
    "shared_pool",
]

#: Seconds an idle worker process is kept for the next unit or run.
IDLE_SECONDS = 120.0
#: Seconds a worker process may take to start (import torch) and take the data in.
START_SECONDS = 120.0
#: How often a wait looks at the run's stop event.
POLL_SECONDS = 0.2
#: Bytes moved per system call.
CHUNK = 1 << 20
#: The directory holding the ``galapagos_nao`` package, put first on the workers'
#: path so that they import this very copy (a checkout, a worktree).
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])

#: Polled while waiting: whether the run was stopped.
Stopped = Callable[[], bool]


class WorkerGone(CandidateFailure):
    """The worker process ended, or the wait for it was given up; says why.

    A :class:`~galapagos_nao.core.training.CandidateFailure`: the candidates it
    was training are dropped with this reason, as for any other failure.
    """


class WorkerTimedOut(WorkerGone):
    """A wait on a worker process passed its deadline."""


class WorkerStopped(Exception):
    """The run was stopped while waiting on a worker process."""


class WorkerProcess:
    """One worker process and its channel; every wait has a deadline and sees the stop."""

    def __init__(self, number: int) -> None:
        self.name = f"worker process {number}"
        self.idle_since = time.monotonic()
        self.ready = False  # it said it started (imported torch)
        self.holds: tuple[Task, float] | None = None  # whose splits it holds, by validation share
        # Kept for the life of the process: the crash report if it dies.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_ROOT, env.get("PYTHONPATH")]))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "galapagos_nao.run.process_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            # Its own session: Ctrl-C at the user's terminal is for this process only.
            start_new_session=True,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self._in = self.process.stdin.fileno()
        self._out = self.process.stdout.fileno()
        os.set_blocking(self._in, False)
        os.set_blocking(self._out, False)

    def send(
        self,
        prefix: bytes,
        parts: Sequence[bytes | bytearray | memoryview],
        deadline: float,
        stopped: Stopped,
    ) -> None:
        """Writes one frame: its prefix, then the parts of its blob, in order."""
        for part in (prefix, *parts):
            view = memoryview(part).cast("B")
            while view:
                self._wait(self._in, deadline, stopped, writing=True)
                try:
                    written = os.write(self._in, view[:CHUNK])
                except (BrokenPipeError, ConnectionResetError):
                    raise WorkerGone(self.ended()) from None
                view = view[written:]

    def wait_until_ready(self, deadline: float, stopped: Stopped) -> None:
        """Waits for a new process's first frame, which it sends once torch is imported."""
        if self.ready:
            return
        header, _ = self.receive(deadline, stopped)
        if header.get("kind") != "ready":
            raise WorkerGone(f"{self.name} began with {header.get('kind')!r}, not 'ready'")
        self.ready = True

    def receive(self, deadline: float, stopped: Stopped) -> tuple[dict[str, Any], bytes]:
        """Reads one frame: its header and blob.

        Raises:
            WorkerGone: past the deadline, or when the process ended.
            WorkerStopped: when the run was stopped.
            WireError: when the frame announces more than may be read.
        """
        prefix = self._read(PREFIX_BYTES, deadline, stopped)
        header_length, blob_length = frame_lengths(prefix, MAX_RESULT_BYTES)
        header = parse_header(self._read(header_length, deadline, stopped))
        return header, self._read(blob_length, deadline, stopped)

    def _read(self, size: int, deadline: float, stopped: Stopped) -> bytes:
        data = bytearray()
        while len(data) < size:
            self._wait(self._out, deadline, stopped, writing=False)
            chunk = os.read(self._out, min(CHUNK, size - len(data)))
            if not chunk:
                raise WorkerGone(self.ended())
            data += chunk
        return bytes(data)

    def _wait(self, fd: int, deadline: float, stopped: Stopped, *, writing: bool) -> None:
        while True:
            if stopped():
                raise WorkerStopped
            left = deadline - time.monotonic()
            if left <= 0:
                raise WorkerTimedOut(self.name)
            reads, writes = ([], [fd]) if writing else ([fd], [])
            if any(select.select(reads, writes, [], min(left, POLL_SECONDS))):
                return

    def ended(self) -> str:
        """Why the process is gone: its exit status and the last line it wrote to stderr."""
        try:
            code = self.process.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            return f"{self.name} closed its channel"
        self._stderr.seek(0, os.SEEK_END)
        self._stderr.seek(max(0, self._stderr.tell() - 4096))
        lines = self._stderr.read().decode(errors="replace").strip().splitlines()
        how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
        return f"{self.name} {how}" + (f": {lines[-1]}" if lines else "")

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.process.poll() is None

    def close(self) -> None:
        """Ends the process: EOF on its stdin, then a kill if it has not exited within a second."""
        try:
            assert self.process.stdin is not None
            self.process.stdin.close()
            self.process.wait(timeout=1.0)
        except (OSError, subprocess.TimeoutExpired):
            self.kill()
        self._stderr.close()

    def kill(self) -> None:
        """Kills the process at once."""
        self.process.kill()
        self.process.wait()


class WorkerPool:
    """Worker processes kept between units and runs; idle ones end after ``idle_seconds``.

    Args:
        idle_seconds: How long a process waits unused before it is closed.
    """

    def __init__(self, idle_seconds: float = IDLE_SECONDS) -> None:
        self.idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._idle: list[WorkerProcess] = []
        self._busy: set[WorkerProcess] = set()
        self._started = 0
        self._reaper: threading.Timer | None = None

    def take(self) -> WorkerProcess:
        """An idle process (the most recently used: it likely holds the data), or a new one."""
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.alive():
                    self._busy.add(worker)
                    return worker
            worker = WorkerProcess(self._started)
            self._started += 1
            self._busy.add(worker)
            return worker

    def give_back(self, worker: WorkerProcess) -> None:
        """Keeps a process that answered for the next unit."""
        worker.idle_since = time.monotonic()
        with self._lock:
            self._busy.discard(worker)
            self._idle.append(worker)
            if self._reaper is None:
                self._schedule(self.idle_seconds)

    def discard(self, worker: WorkerProcess) -> None:
        """Kills a process whose unit was given up."""
        with self._lock:
            self._busy.discard(worker)
        worker.kill()

    def workers(self) -> int:
        """Processes alive in the pool, busy or idle."""
        with self._lock:
            return sum(w.alive() for w in (*self._idle, *self._busy))

    def close(self) -> None:
        """Ends every process, busy ones too (their units fail as their process died)."""
        with self._lock:
            workers = [*self._idle, *self._busy]
            self._idle, self._busy = [], set()
            if self._reaper is not None:
                self._reaper.cancel()
                self._reaper = None
        for worker in workers:
            worker.close()

    def _schedule(self, delay: float) -> None:
        self._reaper = threading.Timer(delay, self._reap)
        self._reaper.daemon = True
        self._reaper.name = "gn-worker-reaper"
        self._reaper.start()

    def _reap(self) -> None:
        now = time.monotonic()
        with self._lock:
            expired = [w for w in self._idle if now - w.idle_since >= self.idle_seconds]
            self._idle = [w for w in self._idle if w not in expired]
            self._reaper = None
            if self._idle:
                oldest = min(w.idle_since for w in self._idle)
                self._schedule(max(0.0, oldest + self.idle_seconds - now))
        for worker in expired:
            worker.close()


_shared_lock = threading.Lock()
_shared: list[WorkerPool] = []  # at most one: this session's pool, made on first use


def shared_pool() -> WorkerPool:
    """This session's pool, made on first use and closed when Python exits."""
    with _shared_lock:
        if not _shared:
            pool = WorkerPool()
            atexit.register(pool.close)
            _shared.append(pool)
        return _shared[0]
