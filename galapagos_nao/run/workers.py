"""Worker threads with deadlines: what the local evaluator waits on, and how it gives up.

A thread cannot be killed. A candidate whose forward pass (or builder) never
returns would hold its worker, the generation, and, in a
``ThreadPoolExecutor``, the interpreter's exit too, since that pool joins its
threads at shutdown. So:

- :class:`DaemonPool` runs tasks on daemon threads: a stuck one never holds
  up ``exit()``;
- :class:`Supervisor` waits for a batch of tasks, each with its own allowance
  of seconds from the moment a worker picked it up. A task past its allowance,
  or still running :data:`STUCK_GRACE_SECONDS` after the stop event was set, is
  reported as stuck and left behind; its pool is abandoned and the tasks still
  queued move to a fresh one, so later tasks and generations have workers.

At interpreter exit the batches still running are asked to stop, and exit waits
up to :data:`EXIT_GRACE_SECONDS` for workers still inside a task: a daemon
thread that wakes inside torch's C++ code after Python has finalised aborts the
process ("terminate called without an active exception"), so those that can
end are let end first, and those truly stuck are left behind.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import queue
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = [
    "EXIT_GRACE_SECONDS",
    "STUCK_GRACE_SECONDS",
    "DaemonPool",
    "Finished",
    "Supervisor",
    "Task",
    "call_with_deadline",
    "stuck_after",
]

#: Seconds past its allowance (or past a stop) before a task counts as stuck:
#: time for a long batch to reach the training loop's next deadline check.
STUCK_GRACE_SECONDS = 2.0
#: How often the waiting loop looks for stuck tasks.
POLL_SECONDS = 0.2
#: Seconds interpreter exit waits, at most, for workers still inside a task.
EXIT_GRACE_SECONDS = 3.0


def stuck_after(timeout: float) -> float:
    """Seconds after its start at which a task is given up: its timeout plus a grace."""
    return timeout + max(STUCK_GRACE_SECONDS, 0.1 * timeout)


class DaemonPool:
    """At most ``workers`` daemon threads, started as tasks arrive, ``threads`` intra-op each.

    Like ``concurrent.futures.ThreadPoolExecutor`` but its threads are daemons,
    so a task that never returns cannot keep the interpreter from exiting.
    """

    def __init__(self, workers: int, threads: int, name: str = "gn-worker") -> None:
        self.shape = (workers, threads)
        self._name = name
        self._tasks: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False
        self._busy: set[threading.Thread] = set()
        self._idle = 0  # threads waiting for a task

    def submit(self, call: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        """Queues ``call``; its future holds its result or what it raised."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("submit: this pool was shut down")
            self._tasks.put((future, call))
            # A new thread only when every thread is taken: idle ones take the task.
            if self._tasks.qsize() > self._idle and len(self._threads) < self.shape[0]:
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        return future

    def _work(self) -> None:
        torch.set_num_threads(self.shape[1])  # torch's intra-op pool size is per thread
        while True:
            with self._lock:
                self._idle += 1
            item = self._tasks.get()
            with self._lock:
                self._idle -= 1
            if item is None:
                return
            future, call = item
            if not future.set_running_or_notify_cancel():
                continue  # cancelled while queued
            with self._lock:
                self._busy.add(threading.current_thread())
            try:
                result = call()
            # BaseException: user code's SystemExit or KeyboardInterrupt (signals reach
            # only the main thread, so these are raised by the code itself) ends its task only.
            except BaseException as error:  # noqa: BLE001
                future.set_exception(error)
            else:
                future.set_result(result)
            finally:
                with self._lock:
                    self._busy.discard(threading.current_thread())

    def busy(self) -> list[threading.Thread]:
        """The threads inside a task now."""
        with self._lock:
            return list(self._busy)

    def shutdown(self, *, cancel: bool) -> None:
        """Lets the threads end after their current task, without waiting for them.

        Args:
            cancel: Cancel the tasks still queued as well.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            threads = len(self._threads)
        if cancel:
            pending: list[Any] = []
            while True:
                try:
                    pending.append(self._tasks.get_nowait())
                except queue.Empty:
                    break
            for item in pending:
                if item is not None:
                    item[0].cancel()
        for _ in range(threads):
            self._tasks.put(None)


@dataclass
class Task:
    """One unit of work for the :class:`Supervisor`.

    Attributes:
        call: What the worker runs.
        allowance: Seconds from its start before it counts as stuck.
        tag: The caller's handle on it (the candidates it trains, say).
        started: ``time.monotonic()`` when a worker picked it up; set by the supervisor.
    """

    call: Callable[[], Any]
    allowance: float
    tag: Any = None
    started: float | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Finished:
    """How a task ended.

    Attributes:
        task: The task.
        value: What it returned (None when it raised or got stuck).
        error: What it raised, if it did.
        stuck: True when it was left behind, still running.
        stopped: True when it was left behind because of a stop, not its allowance.
        seconds: Seconds since it started (0 if it never did).
    """

    task: Task
    value: Any = None
    error: BaseException | None = None
    stuck: bool = False
    stopped: bool = False
    seconds: float = 0.0


class Supervisor:
    """Runs batches of tasks on a :class:`DaemonPool`, giving up on those that overrun."""

    def __init__(self, name: str = "gn-worker") -> None:
        self._name = name
        self._pool: DaemonPool | None = None
        self._pools: weakref.WeakSet[DaemonPool] = weakref.WeakSet()  # abandoned ones too
        self._stop_event: threading.Event | None = None
        self._waiter: threading.Thread | None = None
        _SUPERVISORS.add(self)

    def _pool_for(self, workers: int, threads: int) -> DaemonPool:
        if self._pool is None or self._pool.shape != (workers, threads):
            self.close()
            self._pool = DaemonPool(workers, threads, self._name)
            self._pools.add(self._pool)
        return self._pool

    def interrupt(self) -> None:
        """Sets the stop event of the batch running now, if any."""
        if self._stop_event is not None:
            self._stop_event.set()

    def busy_threads(self) -> list[threading.Thread]:
        """Worker threads inside a task, and the thread waiting on a batch."""
        threads = [thread for pool in list(self._pools) for thread in pool.busy()]
        waiter = self._waiter
        return threads if waiter is None else [*threads, waiter]

    def run(
        self,
        tasks: Sequence[Task],
        stop_event: threading.Event,
        workers: int,
        threads: int,
    ) -> Iterator[Finished]:
        """Runs ``tasks`` on ``workers`` threads; yields each as it ends or is given up.

        Args:
            tasks: The tasks, started in this order.
            stop_event: Once set, a task still running :data:`STUCK_GRACE_SECONDS`
                later is given up (``stopped=True``).
            workers: Tasks at once.
            threads: Intra-op threads of each worker.
        """
        self._stop_event, self._waiter = stop_event, threading.current_thread()
        try:
            pool = self._pool_for(workers, threads)
            waiting = {pool.submit(self._timed(task)): task for task in tasks}
            stopped_at: float | None = None
            while waiting:
                done, _ = concurrent.futures.wait(
                    waiting, timeout=POLL_SECONDS, return_when=concurrent.futures.FIRST_COMPLETED
                )
                for future in done:
                    task = waiting.pop(future)
                    yield self._ended(task, future)
                now = time.monotonic()
                if stop_event.is_set() and stopped_at is None:
                    stopped_at = now
                stuck = [
                    future for future, task in waiting.items() if _overdue(task, now, stopped_at)
                ]
                for future in stuck:
                    task = waiting.pop(future)
                    seconds = now - (task.started or now)
                    yield Finished(
                        task, stuck=True, stopped=stopped_at is not None, seconds=seconds
                    )
                if stuck:
                    waiting = self._requeue(waiting, workers, threads)
        finally:
            self._stop_event = self._waiter = None

    @staticmethod
    def _timed(task: Task) -> Callable[[], Any]:
        def call() -> Any:
            task.started = time.monotonic()  # the waiting loop's clock for this task
            return task.call()

        return call

    @staticmethod
    def _ended(task: Task, future: concurrent.futures.Future[Any]) -> Finished:
        seconds = 0.0 if task.started is None else time.monotonic() - task.started
        error = future.exception()
        if error is not None:
            return Finished(task, error=error, seconds=seconds)
        return Finished(task, value=future.result(), seconds=seconds)

    def _requeue(
        self,
        waiting: dict[concurrent.futures.Future[Any], Task],
        workers: int,
        threads: int,
    ) -> dict[concurrent.futures.Future[Any], Task]:
        """Leaves the pool of a stuck worker behind; queued tasks move to a fresh one."""
        if self._pool is not None:
            self._pool.shutdown(cancel=False)
            self._pool = None
        pool = self._pool_for(workers, threads)
        kept = {}
        for future, task in waiting.items():
            if future.cancel():  # not started: it would wait behind the stuck worker
                future = pool.submit(self._timed(task))
            kept[future] = task
        return kept

    def close(self) -> None:
        """Lets the worker threads end; tasks still queued are cancelled."""
        if self._pool is not None:
            self._pool.shutdown(cancel=True)
            self._pool = None


def call_with_deadline(
    call: Callable[[], Any], allowance: float, stop_event: threading.Event, name: str
) -> Finished:
    """Runs ``call`` on a daemon thread of its own and waits for it, under a deadline.

    For user code that runs on the run's own thread (breeding calls registered
    builders and ``mutate``): past ``allowance`` seconds, or
    :data:`STUCK_GRACE_SECONDS` after ``stop_event`` is set, it is given up.
    """
    supervisor = Supervisor(name)
    try:
        return next(iter(supervisor.run([Task(call, allowance)], stop_event, 1, 1)))
    finally:
        supervisor.close()


def _overdue(task: Task, now: float, stopped_at: float | None) -> bool:
    """Whether a started task is past its allowance, or past the grace after a stop."""
    if task.started is None:
        return False
    if now > task.started + task.allowance:
        return True
    return stopped_at is not None and now > stopped_at + STUCK_GRACE_SECONDS


#: Every live supervisor, for the exit handler (weak: a closed evaluator is forgotten).
_SUPERVISORS: weakref.WeakSet[Supervisor] = weakref.WeakSet()


def _settle_at_exit() -> None:
    """Stops the batches still running and waits a little for threads inside a task."""
    supervisors = list(_SUPERVISORS)
    for supervisor in supervisors:
        supervisor.interrupt()
    deadline = time.monotonic() + EXIT_GRACE_SECONDS
    busy = {thread for supervisor in supervisors for thread in supervisor.busy_threads()}
    for thread in busy:
        if thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))


atexit.register(_settle_at_exit)
