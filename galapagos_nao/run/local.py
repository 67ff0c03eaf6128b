"""The local evaluator: candidates train on threads of this process, on the CPU or local GPUs.

A thread cannot be killed. A candidate whose forward pass never returns (a
user's layer waiting on a lock, a driver that hangs) would hold its worker and
the whole generation forever, so :meth:`LocalEvaluator.evaluate` waits for each
candidate with a deadline: its timeout plus a grace (or the grace after
``stop()``). Past it the candidate is reported as failed and left behind; its
thread may linger until the op returns, and the evaluator starts a fresh pool
so that the candidates still queued and later generations have workers.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from galapagos_nao.core.training import TrainSettings
from galapagos_nao.run.devices import assign_devices, longest_first, plan_workers, training_devices
from galapagos_nao.run.grouped import Grouper, resolve_group_size, train_group
from galapagos_nao.run.records import Candidate, EvaluationJob, Outcome
from galapagos_nao.run.train import failed_outcome, train_candidate

__all__ = ["LocalEvaluator", "STUCK_GRACE_SECONDS", "stuck_after"]

#: Seconds past its timeout (or past ``stop()``) before a candidate counts as stuck:
#: time for a long batch to reach the training loop's next deadline check.
STUCK_GRACE_SECONDS = 2.0
#: How often the waiting loop looks for stuck candidates.
_POLL_SECONDS = 0.2


def stuck_after(timeout: float) -> float:
    """Seconds after its start at which a candidate is given up: its timeout plus a grace."""
    return timeout + max(STUCK_GRACE_SECONDS, 0.1 * timeout)


logger = logging.getLogger("galapagos_nao")


class LocalEvaluator:
    """Trains candidates on threads of this process, on the CPU or local GPUs."""

    def __init__(self) -> None:
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._pool_shape: tuple[int, int] | None = None
        self._local = threading.local()
        self._grouper = Grouper()

    def _executor(self, workers: int, threads: int) -> concurrent.futures.ThreadPoolExecutor:
        if self._pool is None or self._pool_shape != (workers, threads):
            self.close()
            # set_num_threads inside each worker: torch's intra-op pool size is per thread.
            self._pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=workers,
                thread_name_prefix="gn-worker",
                initializer=torch.set_num_threads,
                initargs=(threads,),
            )
            self._pool_shape = (workers, threads)
        return self._pool

    def evaluate(self, candidates: Sequence[Candidate], job: EvaluationJob) -> Iterator[Outcome]:
        """Trains the candidates concurrently and yields outcomes as they finish.

        A candidate still running :func:`stuck_after` its timeout (or
        :data:`STUCK_GRACE_SECONDS` after ``stop()``) is yielded as failed (as
        stopped after ``stop()``) without waiting for its thread.
        """
        settings = job.settings.training.train_settings()
        orchestration = job.settings.orchestration
        devices = training_devices(settings.device)
        group_size = resolve_group_size(settings.group_size, devices[0])
        if group_size > 1:
            yield from self._evaluate_groups(candidates, job, settings, devices, group_size)
            return
        workers, threads = plan_workers(
            len(candidates), devices, orchestration.workers, orchestration.threads_per_worker
        )
        pool = self._executor(workers, threads)
        timeout = orchestration.timeout
        scheduled = longest_first(candidates, assign_devices(candidates, devices), job.task)
        starts: dict[int, float] = {}  # candidate index -> when its thread picked it up
        waiting = {
            pool.submit(self._train, c, device, settings, job, timeout, starts): (c, device)
            for c, device in scheduled
        }
        stopped_at: float | None = None
        while waiting:
            done, _ = concurrent.futures.wait(
                waiting, timeout=_POLL_SECONDS, return_when=concurrent.futures.FIRST_COMPLETED
            )
            for future in done:
                del waiting[future]
                yield future.result()
            now = time.monotonic()
            if job.stop_event.is_set() and stopped_at is None:
                stopped_at = now
            stuck = [
                future
                for future, (candidate, _) in waiting.items()
                if candidate.index in starts
                and (
                    now > starts[candidate.index] + stuck_after(timeout)
                    or (stopped_at is not None and now > stopped_at + STUCK_GRACE_SECONDS)
                )
            ]
            if not stuck:
                continue
            for future in stuck:
                candidate, _ = waiting.pop(future)
                yield self._abandoned(candidate, now - starts[candidate.index], timeout, stopped_at)
            waiting = self._requeue(waiting, workers, threads, settings, job, timeout, starts)

    def _abandoned(
        self, candidate: Candidate, seconds: float, timeout: float, stopped_at: float | None
    ) -> Outcome:
        if stopped_at is not None:
            return Outcome(candidate, stopped=True, seconds=seconds)
        return Outcome(
            candidate,
            failure=(
                f"did not return within {stuck_after(timeout):g} s; "
                "its thread may linger until the op returns"
            ),
            seconds=seconds,
        )

    def _requeue(
        self,
        waiting: dict[concurrent.futures.Future[Outcome], tuple[Candidate, torch.device]],
        workers: int,
        threads: int,
        settings: TrainSettings,
        job: EvaluationJob,
        timeout: float,
        starts: dict[int, float],
    ) -> dict[concurrent.futures.Future[Outcome], tuple[Candidate, torch.device]]:
        """Leaves the pool of a stuck worker behind; queued candidates move to a new one."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=False)
            self._pool = None
        pool = self._executor(workers, threads)
        kept = {}
        for future, (candidate, device) in waiting.items():
            if future.cancel():  # not started: it would wait behind the stuck worker
                future = pool.submit(self._train, candidate, device, settings, job, timeout, starts)
            kept[future] = (candidate, device)
        return kept

    def _train(
        self,
        candidate: Candidate,
        device: torch.device,
        settings: TrainSettings,
        job: EvaluationJob,
        timeout: float,
        starts: dict[int, float],
    ) -> Outcome:
        started = time.monotonic()
        starts[candidate.index] = started  # the waiting loop's clock for this candidate
        if job.stop_event.is_set():
            return Outcome(candidate, stopped=True)
        try:
            data = job.data_cache.get(job.task, device, settings.validation_fraction)
            with self._stream(device):
                return train_candidate(
                    candidate, data, settings, job.stop_event.is_set, started + timeout
                )
        # BaseException: a candidate's SystemExit or KeyboardInterrupt (raised by its
        # own code: signals reach only the main thread) must not end the run either.
        except BaseException as error:  # noqa: BLE001
            return failed_outcome(candidate, error, time.monotonic() - started)

    def _evaluate_groups(
        self,
        candidates: Sequence[Candidate],
        job: EvaluationJob,
        settings: TrainSettings,
        devices: Sequence[torch.device],
        group_size: int,
    ) -> Iterator[Outcome]:
        """The grouped path: stacked groups of one signature, spread over the workers."""
        orchestration = job.settings.orchestration
        task = job.task
        # Exact groups on the CPU: each member computes the bits it computes alone. On a
        # GPU, looser groups of any widths: more members per launch, rounding aside.
        planned = self._grouper.plan(
            candidates,
            task.input_shape,
            task.n_classes,
            group_size,
            exact=devices[0].type == "cpu",
        )
        planned.sort(key=lambda pair: len(pair[0]), reverse=True)  # the biggest first
        logger.info(
            "Generation %d: %d candidates in groups of %s",
            candidates[0].generation if candidates else -1,
            len(candidates),
            [len(g) for g, _ in planned],
        )
        workers, threads = plan_workers(
            len(planned), devices, orchestration.workers, orchestration.threads_per_worker
        )
        pool = self._executor(workers, threads)
        timeout = orchestration.timeout
        futures = [
            pool.submit(
                self._train_group, group, share, devices[i % len(devices)], settings, job, timeout
            )
            for i, (group, share) in enumerate(planned)
        ]
        for future in concurrent.futures.as_completed(futures):
            yield from future.result()

    def _train_group(
        self,
        group: list[Candidate],
        padded_share: float,
        device: torch.device,
        settings: TrainSettings,
        job: EvaluationJob,
        timeout: float,
    ) -> list[Outcome]:
        started = time.monotonic()
        if job.stop_event.is_set():
            return [Outcome(c, stopped=True) for c in group]
        # On the CPU a group's members share the cores, so it gets each one's timeout;
        # on a GPU a group trains in about one candidate's time.
        deadline = started + timeout * (len(group) if device.type == "cpu" else 1)
        try:
            data = job.data_cache.get(job.task, device, settings.validation_fraction)
            with self._stream(device):
                return train_group(
                    group, data, settings, job.stop_event.is_set, deadline, started, padded_share
                )
        except Exception as error:  # a failing group never stops the run
            return [failed_outcome(c, error, time.monotonic() - started) for c in group]

    def _stream(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        # One CUDA stream per worker thread lets candidates on one GPU overlap.
        if device.type != "cuda":
            return contextlib.nullcontext()
        streams = self._local.__dict__.setdefault("streams", {})
        if device not in streams:
            streams[device] = torch.cuda.Stream(device)
        return torch.cuda.stream(streams[device])

    def close(self) -> None:
        """Shuts the worker threads down."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
