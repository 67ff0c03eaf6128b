"""The ``processes`` backend: candidates train in worker processes of this machine.

Chosen with ``gn.Parameters.put(gn.orchestration, {"backend": "processes"})``.
Planning, grouping, worker counts and memory budgets are the local backend's
(:class:`~galapagos_nao.run.local.LocalEvaluator`); only where a unit trains
differs. Each worker thread hands its unit to a worker process of its own
(:mod:`galapagos_nao.run.process_worker`), started on first use and kept for
the run, and waits for the result. A worker holds one copy of the run's splits
(the ones a worker thread would train on: 219 MB for MNIST), sent when it
starts and again only when the task or ``validation_fraction`` changes.
Processes share no interpreter lock, so on a CPU they train more candidates a
minute than threads (``docs/guide/performance.md`` has the figures); and a
candidate that never returns is killed with its process rather than left
running on a thread.

Messages are bytes (:mod:`galapagos_nao.run.process_wire`), never pickle:
the splits travel as their tensors' bytes, parents and results as sealed
network files, and a result is checked like any input before it is used.

What cannot travel as bytes trains on the worker thread, as with the local
backend, saying so once: a genome using a layer type registered in this
process only (its builder is Python code), and a continual stream's replay
task.
"""

from __future__ import annotations

import logging
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

import torch

from galapagos_nao.core import genome
from galapagos_nao.core.datasets import ReplayTask, Task
from galapagos_nao.core.training import TrainSettings
from galapagos_nao.run.local import LocalEvaluator, unit_timeout
from galapagos_nao.run.log_relay import replay
from galapagos_nao.run.process_wire import (
    MAX_RESULT_BYTES,
    PREFIX_BYTES,
    Unit,
    WireError,
    data_message,
    frame_lengths,
    frame_prefix,
    outcomes_from_message,
    parse_header,
    unit_message,
)
from galapagos_nao.run.records import Candidate, EvaluationJob, Outcome
from galapagos_nao.run.train import failed_outcome
from galapagos_nao.run.workers import stuck_after

__all__ = ["ProcessEvaluator", "START_SECONDS", "WorkerProcess"]

logger = logging.getLogger("galapagos_nao")

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


class WorkerGone(Exception):
    """The worker process ended, or the wait for it was given up; says why."""


class WorkerTimedOut(WorkerGone):
    """A wait on a worker process passed its deadline."""


class WorkerStopped(Exception):
    """The run was stopped while waiting on a worker process."""


class WorkerProcess:
    """One worker process and its channel; every wait has a deadline and sees the stop."""

    def __init__(self, number: int) -> None:
        self.name = f"worker process {number}"
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


class ProcessEvaluator(LocalEvaluator):
    """Trains each unit in a worker process of this machine (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._idle: list[WorkerProcess] = []
        self._every: list[WorkerProcess] = []
        self._closed = False

    def allowance(self, group: Sequence[Candidate], device: torch.device, timeout: float) -> float:
        """The unit's allowance, plus the time to start a worker process and send it the data."""
        return super().allowance(group, device, timeout) + START_SECONDS

    def _train_unit(
        self,
        group: list[Candidate],
        device: torch.device,
        padded_share: float,
        settings: TrainSettings,
        job: EvaluationJob,
        timeout: float,
        budget: int | None,
    ) -> list[Outcome]:
        why = _stays_here(group, job.task)
        if why is not None:
            self._say_once(f"Trained on a worker thread, not in a worker process: {why}")
            return super()._train_unit(group, device, padded_share, settings, job, timeout, budget)
        started = time.monotonic()
        unit = Unit(
            candidates=tuple(group),
            settings=settings,
            device=str(device),
            timeout=unit_timeout(timeout, group, device),
            threads=torch.get_num_threads(),  # the worker thread's own count
            budget=budget,
            padded_share=padded_share,
            log_level=logging.getLogger("galapagos_nao").getEffectiveLevel(),
        )
        try:
            header, blob = unit_message(unit)
            return self._in_a_process(unit, frame_prefix(header, len(blob)), blob, job)
        except WorkerStopped:
            return [Outcome(c, stopped=True, seconds=time.monotonic() - started) for c in group]
        except (WorkerGone, WireError, ValueError, OSError) as error:
            return [failed_outcome(c, error, time.monotonic() - started) for c in group]

    def _in_a_process(
        self, unit: Unit, prefix: bytes, blob: bytes, job: EvaluationJob
    ) -> list[Outcome]:
        stopped = job.stop_event.is_set
        worker = self._take()
        try:
            start_by = time.monotonic() + START_SECONDS
            try:
                self._send_data(worker, job, unit.settings.validation_fraction, start_by)
                worker.send(prefix, [blob], start_by, stopped)
            except WorkerTimedOut:
                raise WorkerGone(
                    f"its worker process did not start and take the data within {START_SECONDS:g} s"
                ) from None
            allowance = stuck_after(unit.timeout)
            try:
                reply = worker.receive(time.monotonic() + allowance, stopped)
            except WorkerTimedOut:
                raise WorkerGone(
                    f"did not return within {allowance:g} s; its worker process was killed"
                ) from None
            outcomes, logs = outcomes_from_message(*reply, unit.candidates, worker.name)
        except BaseException:
            worker.kill()  # whatever it was doing is given up; the next unit gets a fresh one
            raise
        self._give_back(worker)
        replay(logs, __file__)
        return outcomes

    @staticmethod
    def _send_data(worker: WorkerProcess, job: EvaluationJob, share: float, by: float) -> None:
        """Sends the run's splits unless the worker holds them: once per task and share."""
        held = worker.holds
        if held is not None and held[0] is job.task and held[1] == share:
            return
        worker.holds = None
        # The CPU splits a worker thread would train on, made once for the run.
        data = job.data_cache.get(job.task, torch.device("cpu"), share)
        header, parts = data_message(data)
        length = sum(memoryview(p).nbytes for p in parts)
        worker.send(frame_prefix(header, length), parts, by, job.stop_event.is_set)
        worker.holds = (job.task, share)

    def _take(self) -> WorkerProcess:
        with self._lock:
            if self._closed:
                raise WorkerGone("the run's worker processes were closed")
            while self._idle:
                worker = self._idle.pop()
                if worker.alive():
                    return worker
            worker = WorkerProcess(len(self._every))
            self._every.append(worker)
            return worker

    def _give_back(self, worker: WorkerProcess) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(worker)
                return
        worker.close()

    def _say_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            logger.info(message)

    def close(self) -> None:
        """Ends the worker threads and the worker processes."""
        super().close()
        with self._lock:
            self._closed = True
            workers, self._every, self._idle = self._every, [], []
        for worker in workers:
            worker.close()


def _stays_here(group: Sequence[Candidate], task: Task) -> str | None:
    """Why the unit must train in this process, or None if it can travel."""
    if isinstance(task, ReplayTask):
        return "a continual stream's replay task"
    for candidate in group:
        layers = list(candidate.layers)
        if candidate.parent is not None:
            layers += list(candidate.parent.layers)
        for name, _ in layers:
            if not genome.is_builtin(genome.layer_type(name)):
                return f"layer type {name!r} is registered in this process only"
    return None
