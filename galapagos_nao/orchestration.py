"""Runs: the generation loop on a background thread, and the evaluators that train candidates.

:func:`evolve` and :func:`evolve_continual` return a :class:`Run` at once. Each
generation reads one Parameters snapshot, breeds children from every network in
the Selection (elites plus the unevaluated queue; a lone parent is cloned
``generation_size`` times first), trains them concurrently through an evaluator,
and lets the Selection keep the fittest per level. Hooks (``Run.hooks``) see a
:class:`GenerationReport` after each generation; logs go to the
``galapagos_nao`` logger only.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from galapagos_nao import evolution
from galapagos_nao._checks import check_int, describe
from galapagos_nao.datasets import Task, default_task
from galapagos_nao.history import history_hook
from galapagos_nao.lineage import lineage_hook
from galapagos_nao.network import Network
from galapagos_nao.parameters import Parameters
from galapagos_nao.selection import Change, Selection
from galapagos_nao.training import (
    CandidateFailure,
    CandidateStopped,
    DeviceDataCache,
    TrainSettings,
    estimated_macs,
    fit,
    resolve_device,
)

__all__ = [
    "PARAMETER_SECTION",
    "STREAMS_PER_GPU",
    "Candidate",
    "Evaluator",
    "GenerationReport",
    "LocalEvaluator",
    "Outcome",
    "Run",
    "RunStatus",
    "assign_devices",
    "evolve",
    "evolve_continual",
    "longest_first",
    "plan_cpu_workers",
    "plan_workers",
    "training_devices",
]

#: Name of this module's section in :mod:`galapagos_nao.parameters`.
PARAMETER_SECTION = "orchestration"

logger = logging.getLogger("galapagos_nao")

#: Hooks added to every new run: ``factory(run)`` returns a generation hook or None.
#: By default the archive's history and the lineage registry follow every generation.
default_hook_factories: list[Callable[[Run], Callable[[GenerationReport], None] | None]] = [
    history_hook,
    lineage_hook,
]


@dataclass(frozen=True)
class Candidate:
    """One child to train.

    Attributes:
        index: Position in its generation; results are selected in this order.
        generation: The generation it belongs to (0-based).
        layers: Its genome.
        seed: Seeds its init, shuffling and dropout.
        parent: The network it was bred from.
        origins: Parent-layer index of each layer, for weight inheritance.
        mutations: The operators that made it.
        inherit: Whether to start from the parent's weights.
    """

    index: int
    generation: int
    layers: tuple[Any, ...]
    seed: int
    parent: Network | None = None
    origins: tuple[int | None, ...] | None = None
    mutations: tuple[str, ...] = ()
    inherit: bool = True


@dataclass(frozen=True)
class Outcome:
    """A candidate's result: a trained network, or why it failed."""

    candidate: Candidate
    network: Network | None = None
    failure: str | None = None
    stopped: bool = False
    seconds: float = 0.0


@dataclass
class EvaluationJob:
    """Everything an evaluator needs besides the candidates.

    Attributes:
        task: The data.
        snapshot: The generation's Parameters snapshot.
        stop_event: Set when the run is stopped; candidates end at the next batch.
        data_cache: Device copies of the task, shared across the run.
    """

    task: Task
    snapshot: Mapping[str, Mapping[str, Any]]
    stop_event: threading.Event
    data_cache: DeviceDataCache


class Evaluator(Protocol):
    """Trains candidates; yields outcomes as they complete (any order)."""

    def evaluate(self, candidates: Sequence[Candidate], job: EvaluationJob) -> Iterator[Outcome]:
        """Trains every candidate and yields one Outcome each."""
        ...

    def close(self) -> None:
        """Releases workers; called when the run ends."""
        ...


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def plan_cpu_workers(
    n_candidates: int, workers: Any = "auto", threads: Any = "auto"
) -> tuple[int, int]:
    """How many candidates train at once on the CPU, and intra-op threads for each.

    ``auto`` gives every core a candidate (up to the number of candidates) and
    splits the cores evenly among them, so workers × threads never exceeds the
    cores. Why candidates rather than threads: the networks evolution makes are
    small, so a training step is mostly short operators and Python overhead,
    which one thread runs no slower than two, while two candidates on two cores
    do twice the work; oversubscribing the cores only adds context switches and
    OpenMP spin-waits. ``make bench`` measures this choice against the
    alternatives (see the README, "Performance"). The thread count is applied
    inside each worker thread, since torch's intra-op setting is per thread.
    """
    cores = usable_cores()
    n_workers = min(max(1, n_candidates), cores) if workers == "auto" else int(workers)
    n_threads = max(1, cores // n_workers) if threads == "auto" else int(threads)
    return n_workers, n_threads


#: Candidates trained at once per GPU when ``workers`` is ``auto``. Each worker
#: thread has its own CUDA stream, so one candidate's kernels fill the gaps left by
#: another's Python overhead; but small networks leave the GPU waiting on the CPU
#: thread that launches their kernels, and more threads only fight over the GIL.
#: Measured on an H200 (benchmarks/RESULTS.md): 1, 2, 4, 8 workers trained 345,
#: 467, 369, 372 seed-genome candidates per minute.
STREAMS_PER_GPU = 2


def plan_workers(
    n_candidates: int, devices: Sequence[torch.device], workers: Any = "auto", threads: Any = "auto"
) -> tuple[int, int]:
    """Workers (candidates at once) and intra-op threads per worker for ``devices``.

    On GPUs: up to :data:`STREAMS_PER_GPU` candidates per device (or ``workers``),
    one CPU thread each (the CPU only launches kernels). On the CPU:
    :func:`plan_cpu_workers`.
    """
    if devices and devices[0].type == "cuda":
        wanted = max(1, n_candidates) if workers == "auto" else int(workers)
        limit = STREAMS_PER_GPU * len(devices) if workers == "auto" else wanted
        return min(wanted, limit), 1
    return plan_cpu_workers(n_candidates, workers, threads)


def training_devices(setting: str, cuda_count: int | None = None) -> list[torch.device]:
    """Devices candidates are spread over, round-robin: every GPU for 'auto'/'cuda'.

    Args:
        setting: The ``training.device`` setting.
        cuda_count: GPUs visible; None asks torch.
    """
    if cuda_count is None:
        cuda_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if setting in ("auto", "cuda") and cuda_count > 0:
        return [torch.device("cuda", i) for i in range(cuda_count)]
    if setting == "auto":
        return [torch.device("cpu")]
    return [resolve_device(setting)]


def assign_devices(
    candidates: Sequence[Candidate], devices: Sequence[torch.device]
) -> list[torch.device]:
    """The device of each candidate: round-robin over ``devices`` by candidate index."""
    return [devices[c.index % len(devices)] for c in candidates]


def longest_first(
    candidates: Sequence[Candidate], devices: Sequence[torch.device], task: Task
) -> list[tuple[Candidate, torch.device]]:
    """Candidates paired with their devices, costliest first.

    A generation ends when its last candidate does: starting the big ones first
    lets the small ones fill the other workers meanwhile, instead of one big
    candidate finishing alone at the end (longest-processing-time scheduling).
    """
    features = math.prod(task.input_shape)
    pairs = list(zip(candidates, devices, strict=True))
    pairs.sort(key=lambda pair: -estimated_macs(pair[0].layers, features, task.n_classes))
    return pairs


class LocalEvaluator:
    """Trains candidates on threads of this process, on the CPU or local GPUs."""

    def __init__(self) -> None:
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._pool_shape: tuple[int, int] | None = None
        self._local = threading.local()

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
        """Trains the candidates concurrently and yields outcomes as they finish."""
        settings = TrainSettings.from_parameters(job.snapshot)
        orchestration = job.snapshot["orchestration"]
        devices = training_devices(settings.device)
        workers, threads = plan_workers(
            len(candidates), devices, orchestration["workers"], orchestration["threads_per_worker"]
        )
        pool = self._executor(workers, threads)
        timeout = float(orchestration["timeout"])
        scheduled = longest_first(candidates, assign_devices(candidates, devices), job.task)
        futures = [
            pool.submit(self._train, c, device, settings, job, timeout) for c, device in scheduled
        ]
        for future in concurrent.futures.as_completed(futures):
            yield future.result()

    def _train(
        self,
        candidate: Candidate,
        device: torch.device,
        settings: TrainSettings,
        job: EvaluationJob,
        timeout: float,
    ) -> Outcome:
        started = time.monotonic()
        if job.stop_event.is_set():
            return Outcome(candidate, stopped=True)
        try:
            data = job.data_cache.get(job.task, device, settings.validation_fraction)
            with self._stream(device):
                return train_candidate(
                    candidate, data, settings, job.stop_event.is_set, started + timeout
                )
        except Exception as error:  # a failing candidate never stops the run
            return failed_outcome(candidate, error, time.monotonic() - started)

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


def train_candidate(
    candidate: Candidate,
    data: Any,
    settings: TrainSettings,
    should_stop: Callable[[], bool],
    deadline: float | None,
) -> Outcome:
    """Trains one candidate and wraps the result as a Network record.

    Shared by every evaluator so that records and log lines are the same
    whatever the backend. Failures raise; callers turn them into outcomes.
    """
    parent = candidate.parent
    inherit = candidate.inherit and parent is not None and parent.weights is not None
    result = fit(
        candidate.layers,
        data,
        settings,
        seed=candidate.seed,
        parent_weights=parent.weights if inherit and parent is not None else None,
        origins=candidate.origins if inherit else None,
        should_stop=should_stop,
        deadline=deadline,
    )
    logger.info(
        "Epoch %d. Loss: %.4f, Train_acc %.4f, Val_acc %.4f, Test_acc %.4f",
        settings.epochs - 1,
        result.loss,
        result.train_acc,
        result.val_acc,
        result.test_acc,
    )
    network = Network(
        candidate.layers,
        input_shape=data.input_shape,
        n_classes=data.n_classes,
        parent_id=None if parent is None else parent.id,
        generation=candidate.generation,
        mutations=candidate.mutations,
        **result.record_fields(),
    )
    return Outcome(candidate, network=network, seconds=result.seconds)


def failed_outcome(candidate: Candidate, error: BaseException, seconds: float) -> Outcome:
    """The outcome of a candidate that raised: stopped, or failed with a logged reason."""
    if isinstance(error, CandidateStopped):
        return Outcome(candidate, stopped=True, seconds=seconds)
    if isinstance(error, torch.OutOfMemoryError):
        reason = "out of memory"
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    elif isinstance(error, CandidateFailure):
        reason = str(error)
    else:
        reason = f"{type(error).__name__}: {error}"
    logger.warning(
        "Candidate %d of generation %d dropped: %s", candidate.index, candidate.generation, reason
    )
    return Outcome(candidate, failure=reason, seconds=seconds)


@dataclass(frozen=True)
class GenerationReport:
    """What one generation did; passed to every hook.

    Attributes:
        run: The run.
        generation: Its index (0-based).
        snapshot: The Parameters snapshot it used.
        outcomes: Every candidate's outcome, in candidate order.
        changes: Cells whose elite changed.
        elites: The archive after selection.
        started: ``time.time()`` at its start.
        seconds: Its wall time.
        train_seconds: Summed time candidates spent training and evaluating.
    """

    run: Run
    generation: int
    snapshot: Mapping[str, Mapping[str, Any]]
    outcomes: tuple[Outcome, ...]
    changes: tuple[Change, ...]
    elites: Mapping[int, Network]
    started: float
    seconds: float
    train_seconds: float

    @property
    def evaluated(self) -> int:
        """Candidates trained successfully."""
        return sum(o.network is not None for o in self.outcomes)

    @property
    def failed(self) -> int:
        """Candidates dropped for a failure (not counting those stopped)."""
        return sum(o.failure is not None for o in self.outcomes)


@dataclass(frozen=True)
class RunStatus:
    """A run's progress at one moment."""

    state: str  #: starting, running, stopping, finished, stopped or failed
    generation: int  #: generations completed
    generations: int | None  #: total, or None for a continual run
    evaluated: int  #: candidates trained successfully so far
    failed: int  #: candidates dropped so far
    best_test_acc: float | None  #: best test accuracy among the elites
    elapsed: float  #: seconds since the start
    error: BaseException | None = None  #: what killed the run, if it failed


class Run:
    """A handle on evolution running on a background daemon thread.

    Created by :func:`evolve` / :func:`evolve_continual`; do not build directly.
    """

    def __init__(
        self,
        *,
        generations: int | None,
        task: Task | None,
        selection: Selection,
        parameters: Parameters,
        evaluator: Evaluator | None = None,
        seed: int | None = None,
        generation_offset: int = 0,
        rng: np.random.Generator | None = None,
    ) -> None:
        self.generations = generations
        self.selection = selection
        self.parameters = parameters
        self.hooks: list[Callable[[GenerationReport], None]] = []
        self.candidate_hooks: list[Callable[[Outcome], None]] = []
        self._task = task
        self._evaluator = evaluator
        self._seed = seed
        self._rng = rng
        self._generation_offset = generation_offset
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._state = "starting"
        self._completed = 0
        self._evaluated = 0
        self._failed = 0
        self._error: BaseException | None = None
        self._started = time.monotonic()
        self._ended: float | None = None
        self._data_cache = DeviceDataCache()
        self._thread = threading.Thread(target=self._main, name="gn-run", daemon=True)
        for factory in list(default_hook_factories):
            hook = factory(self)
            if hook is not None:
                self.hooks.append(hook)

    # -- control ---------------------------------------------------------------

    def start(self) -> Run:
        """Starts the background thread (done by evolve)."""
        self.selection._claim(self)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Asks the run to stop: candidates in training end at their next batch."""
        with self._lock:
            if self._state in ("starting", "running"):
                self._state = "stopping"
        self._stop_event.set()

    def join(self, timeout: float | None = None) -> bool:
        """Waits for the run to end; True if it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def wait(self, timeout: float | None = None, *, progress: bool = False) -> bool:
        """Waits for the run to end, optionally under progress bars; True if it has.

        Args:
            timeout: Seconds to wait at most; None waits for the end.
            progress: Show tqdm bars over generations and candidates (needs
                tqdm, the ``plot`` extra). Ctrl-C stops the waiting, not the run.
        """
        if not progress:
            return self.join(timeout)
        from galapagos_nao.progress import watch

        return watch(self, timeout)

    def done(self) -> bool:
        """True once the run has ended, for whatever reason."""
        return self._ended is not None

    def result(self, timeout: float | None = None) -> dict[int, Network]:
        """The final elites, waiting for the end; re-raises what killed the run.

        Raises:
            TimeoutError: if the run has not ended within ``timeout``.
        """
        if not self.join(timeout):
            raise TimeoutError(f"the run did not end within {timeout} s")
        if self._error is not None:
            raise self._error
        return self.selection.elites()

    def status(self) -> RunStatus:
        """A consistent snapshot of the run's progress."""
        elites = self.selection.elites()
        accuracies = [n.test_acc for n in elites.values() if n.test_acc is not None]
        with self._lock:
            end = self._ended if self._ended is not None else time.monotonic()
            return RunStatus(
                state=self._state,
                generation=self._completed,
                generations=self.generations,
                evaluated=self._evaluated,
                failed=self._failed,
                best_test_acc=max(accuracies, default=None),
                elapsed=end - self._started,
                error=self._error,
            )

    @property
    def generation(self) -> int:
        """Index of the generation to run next, counting any resumed ones."""
        with self._lock:
            return self._generation_offset + self._completed

    def __repr__(self) -> str:
        s = self.status()
        total = "∞" if s.generations is None else str(s.generations)
        current = s.generation + (1 if s.state in ("running", "stopping") else 0)
        if s.generations is not None:
            current = min(current, s.generations)
        best = "-" if s.best_test_acc is None else f"{s.best_test_acc:.3f}"
        minutes, seconds = divmod(int(s.elapsed), 60)
        return (
            f"<Run {s.state}: generation {current}/{total}, {s.evaluated} evaluated, "
            f"{s.failed} failed, best test_acc {best}, {minutes:02d}:{seconds:02d}>"
        )

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        from galapagos_nao import display

        display.run_pretty(self, p, cycle)

    def _repr_html_(self) -> str:
        from galapagos_nao import display

        return display.run_html(self)

    # -- the loop ----------------------------------------------------------------

    def _main(self) -> None:
        try:
            with self._lock:
                if self._state == "starting":
                    self._state = "running"
            task = self._task if self._task is not None else default_task()
            seed = self._seed if self._seed is not None else self.parameters.get("training", "seed")
            rng = self._rng if self._rng is not None else np.random.default_rng(seed)
            self._rng = rng
            evaluator = (
                self._evaluator if self._evaluator is not None else make_evaluator(self.parameters)
            )
            self._evaluator = evaluator
            try:
                while not self._stop_event.is_set() and (
                    self.generations is None or self._completed < self.generations
                ):
                    remaining = (
                        "infinity"
                        if self.generations is None
                        else self.generations - self._completed
                    )
                    logger.info("Generations remaining: %s", remaining)
                    self._run_generation(task, rng, evaluator)
            finally:
                evaluator.close()
                self._data_cache.clear()
            final = "stopped" if self._stop_event.is_set() else "finished"
        except BaseException as error:  # noqa: BLE001 - reported through result()
            logger.exception("The run failed: %s", error)
            self._error = error
            final = "failed"
        with self._lock:
            self._state = final
            self._ended = time.monotonic()

    @property
    def rng(self) -> np.random.Generator | None:
        """The run's generator (None before the run starts); its state is checkpointable."""
        return self._rng

    def _run_generation(self, task: Task, rng: np.random.Generator, evaluator: Evaluator) -> None:
        started_wall, started = time.time(), time.monotonic()
        snapshot = self.parameters.snapshot()
        generation = self.generation
        parents, queued = self.selection.elites(), self.selection.queued()
        candidates = breed(
            list(parents.values()) + list(queued.values()), rng, snapshot, generation
        )
        job = EvaluationJob(task, snapshot, self._stop_event, self._data_cache)
        outcomes: list[Outcome] = []
        for outcome in evaluator.evaluate(candidates, job):
            outcomes.append(outcome)
            with self._lock:
                self._evaluated += outcome.network is not None
                self._failed += outcome.failure is not None
            for candidate_hook in list(self.candidate_hooks):
                candidate_hook(outcome)
        outcomes.sort(key=lambda o: o.candidate.index)
        if self._stop_event.is_set() and any(o.stopped for o in outcomes):
            return  # an interrupted generation is not selected: its results would be partial
        # Queued networks that already carry metrics compete as they are.
        pool = [o.network for o in outcomes if o.network is not None]
        pool += [n for n in queued.values() if n.fitness is not None]
        changes = self.selection.select(pool, settings=snapshot["selection"], consumed=queued)
        report = GenerationReport(
            run=self,
            generation=generation,
            snapshot=snapshot,
            outcomes=tuple(outcomes),
            changes=tuple(changes),
            elites=self.selection.elites(),
            started=started_wall,
            seconds=time.monotonic() - started,
            train_seconds=sum(o.seconds for o in outcomes),
        )
        with self._lock:
            self._completed += 1
        for hook in list(self.hooks):
            hook(report)


def breed(
    parents: Sequence[Network],
    rng: np.random.Generator,
    snapshot: Mapping[str, Mapping[str, Any]],
    generation: int,
) -> list[Candidate]:
    """One child per parent, at least ``generation_size`` children (parents taken in turn).

    With one parent this is the seed's rule (clone it ``generation_size`` times,
    then mutate each clone); with more it keeps every generation at least as
    large as ``generation_size``.
    """
    if not parents:
        raise RuntimeError(
            "the Selection is empty: nothing to breed from (put_unevaluated a network first)"
        )
    settings = snapshot["evolution"]
    count = max(len(parents), snapshot["orchestration"]["generation_size"])
    candidates = []
    for index in range(count):
        parent = parents[index % len(parents)]
        child = evolution.spawn_offspring(
            parent.layers,
            rng,
            mutation_rate=settings["mutation_rate"],
            std_dev=settings["std_dev"],
            layer_types=settings["layer_types"],
        )
        candidates.append(
            Candidate(
                index=index,
                generation=generation,
                layers=tuple(child.layers),
                seed=int(rng.integers(2**62)),
                parent=parent,
                origins=child.origins,
                mutations=child.mutations,
                inherit=bool(settings["inherit_weights"]),
            )
        )
    return candidates


def make_evaluator(parameters: Parameters) -> Evaluator:
    """The evaluator the parameters ask for (local threads by default).

    Raises:
        ImportError: naming the ``galapagos-nao[ray]`` extra when the Ray backend
            is chosen but Ray is not installed.
    """
    section = parameters.get(PARAMETER_SECTION)
    if section["backend"] == "ray":
        from galapagos_nao.ray_backend import RayEvaluator  # Ray is an optional extra

        return RayEvaluator(address=section["ray_address"])
    return LocalEvaluator()


def _initial_networks(net_or_nets: Any) -> list[Network]:
    """Networks from a Network, a genome, or a list of either; validated before anything changes."""
    if isinstance(net_or_nets, Network):
        return [net_or_nets]
    is_genome = isinstance(net_or_nets, (list, tuple)) and (
        not net_or_nets
        or (isinstance(net_or_nets[0], (tuple, list)) and isinstance(net_or_nets[0][0], str))
    )
    if is_genome:
        return [Network(net_or_nets)]
    if isinstance(net_or_nets, (list, tuple)):
        nets = []
        for index, item in enumerate(net_or_nets):
            try:
                nets.append(item if isinstance(item, Network) else Network(item))
            except ValueError as error:
                raise ValueError(f"net_or_nets[{index}]: {error}") from None
        return nets
    raise ValueError(
        f"net_or_nets must be a Network, a genome or a list of them, got {describe(net_or_nets)}"
    )


def _start(
    net_or_nets: Any,
    generations: int | None,
    task: Task | None,
    selection: Selection | None,
    parameters: Parameters | None,
    seed: int | None,
    evaluator: Evaluator | None,
) -> Run:
    from galapagos_nao import Parameters as shared_parameters
    from galapagos_nao import Selection as shared_selection

    selection = shared_selection if selection is None else selection
    parameters = selection.parameters if parameters is None else parameters
    if task is not None and not isinstance(task, Task):
        raise ValueError(f"task must be a datasets.Task or None, got {describe(task)}")
    if seed is not None:
        check_int("seed", seed, minimum=0)
    nets = [] if net_or_nets is None else _initial_networks(net_or_nets)
    if not nets and not len(selection):
        raise ValueError(
            "net_or_nets is None and the Selection is empty: give a network to start from"
        )
    run = Run(
        generations=generations,
        task=task,
        selection=selection,
        parameters=parameters or shared_parameters,
        evaluator=evaluator,
        seed=seed,
    )
    selection._claim(run)  # fail before queueing anything if another run is live
    for net in nets:
        selection.put_unevaluated(net)
    return run.start()


def evolve(
    net_or_nets: Any,
    generations: int,
    task: Task | None = None,
    *,
    selection: Selection | None = None,
    parameters: Parameters | None = None,
    seed: int | None = None,
    evaluator: Evaluator | None = None,
) -> Run:
    """Evolves for ``generations`` generations on a background thread.

    Args:
        net_or_nets: A Network, a genome, or a list of them, queued as the
            starting population; None continues from what the Selection holds.
        generations: How many generations to run (≥ 1).
        task: The data; full MNIST (see ``datasets.mnist``) when None.
        selection: The archive to evolve; the shared ``gn.Selection`` when None.
        parameters: Settings; the Selection's (``gn.Parameters``) when None.
        seed: Seeds the run's generator; ``training.seed`` when None.
        evaluator: Trains candidates; chosen from Parameters when None.

    Returns:
        The :class:`Run`, already started.

    Raises:
        ValueError: for bad arguments (nothing is queued then).
        RuntimeError: if the Selection already has a run in progress.
    """
    check_int("generations", generations, minimum=1)
    return _start(net_or_nets, generations, task, selection, parameters, seed, evaluator)


def evolve_continual(
    net: Any = None,
    task: Task | None = None,
    *,
    selection: Selection | None = None,
    parameters: Parameters | None = None,
    seed: int | None = None,
    evaluator: Evaluator | None = None,
    resume: bool = False,
) -> Run:
    """Evolves until stopped (``run.stop()``); arguments as for :func:`evolve`.

    With ``resume=True`` it continues the workspace's last run from its last
    completed generation, with that generation's archive, Parameters and
    generator state (see :func:`galapagos_nao.continual.resume`); ``net`` and
    ``seed`` must then be None.

    Raises:
        ValueError: for bad arguments, or ``resume=True`` with ``net`` or ``seed``.
    """
    if resume is not False:
        if resume is not True:
            raise ValueError(f"resume must be True or False, got {describe(resume)}")
        if net is not None or seed is not None:
            raise ValueError(
                "resume=True conflicts with net and seed: a resumed run continues its checkpoint"
            )
        from galapagos_nao.continual import resume as resume_run  # continual imports this module

        return resume_run(task, selection=selection, parameters=parameters, evaluator=evaluator)
    return _start(net, None, task, selection, parameters, seed, evaluator)
