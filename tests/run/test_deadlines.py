"""Every wait has a deadline (issue 22, findings 1 and 2).

Finding 1: the grouped path (``training.group_size`` ≥ 2) honours ``timeout``
and ``stop()`` like the per-candidate path, and a BaseException raised by user
code (a forward, a builder, a ``mutate``) drops the candidate, not the run.
Finding 2: a stuck candidate never keeps Python from exiting.

Every fault is real: registered layers whose forward or builder blocks on an
Event (released at teardown), or raises; a real interpreter that must exit.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest
import torch
from torch import nn

import galapagos_nao as gn
from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core import datasets, genome
from galapagos_nao.core.network import Network
from galapagos_nao.run.records import Outcome

#: Released at teardown so that stuck forwards and builders return and their threads end.
RELEASE = threading.Event()
#: Set by a stuck forward or builder once it is stuck.
ENTERED = threading.Event()
#: Set by a test: from then on "test_hang_always" never returns off the main thread.
ARMED = threading.Event()

#: (type name, exception class) of the layers whose forward raises a BaseException.
RAISING = [
    ("test_raise_exit", SystemExit),
    ("test_raise_interrupt", KeyboardInterrupt),
    ("test_raise_generator_exit", GeneratorExit),
]


@pytest.fixture(autouse=True)
def faulty_layers() -> Iterator[None]:
    """Registers the faulty layer types and releases stuck threads after the test."""
    release, entered, armed = RELEASE, ENTERED, ARMED

    class Block(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            entered.set()
            release.wait()  # a forward pass that does not return until the test lets it
            return x

    def hanging_builder(params, features):
        # Shapes are read on the meta device (genome checks, grouping, memory
        # estimates); the network that is really built never comes back.
        if torch.get_default_device().type != "meta":
            entered.set()
            release.wait()
        return [nn.Identity()], features

    def armed_builder(params, features):
        # Armed, every call off the test's thread hangs: breeding's shape checks first.
        if armed.is_set() and threading.current_thread() is not threading.main_thread():
            entered.set()
            release.wait()
        return [nn.Identity()], features

    def exiting_builder(params, features):
        if torch.get_default_device().type != "meta":  # shape checks pass; the real build exits
            raise SystemExit("bye from a builder")
        return [nn.Identity()], features

    def raising(error: type[BaseException]) -> type[nn.Module]:
        class Raise(nn.Module):
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                raise error("raised by a layer")

        return Raise

    def mutate_exits(value, rng, std_dev):
        raise GeneratorExit("mutate exits")

    spec = genome.ParamSpec("size", "an int >= 1", lambda v: isinstance(v, int), mutate_exits)
    genome.register_layer("test_block", [], lambda p, n: ([Block()], n), replace=True)
    genome.register_layer("test_hang_build", [], hanging_builder, replace=True)
    genome.register_layer("test_hang_always", [], armed_builder, replace=True)
    genome.register_layer("test_build_exit", [], exiting_builder, replace=True)
    for name, error in RAISING:
        module = raising(error)
        genome.register_layer(name, [], lambda p, n, m=module: ([m()], n), replace=True)
    genome.register_layer(
        "test_exit_mutate", [spec], lambda p, n: ([nn.Identity()], n), replace=True
    )
    RELEASE.clear()
    ENTERED.clear()
    ARMED.clear()
    yield
    RELEASE.set()


def grouped_selection(
    group_size: int = 2, mutation_rate: float = 0.0, **orchestration: object
) -> Selection:
    parameters = Parameters()
    parameters.put("evolution", {"mutation_rate": mutation_rate})
    parameters.put("training", {"device": "cpu", "group_size": group_size})
    parameters.put("orchestration", {"generation_size": 2, **orchestration})
    return Selection(parameters=parameters)


def net(*layers: tuple) -> Network:
    return Network(list(layers), input_shape=(4,), n_classes=2)


GOOD = ("dense", [4, "relu"])


def one_generation_drops_one(task: datasets.Task, group_size: int, bad: Network) -> set[str]:
    """Runs ``bad`` and a good network for a generation; the failures' reasons.

    The run must finish with the bad child dropped and the good one evaluated.
    """
    outcomes: list[Outcome] = []
    run = gn.evolve(
        [bad, net(GOOD)],
        1,
        task,
        selection=grouped_selection(group_size),
        seed=0,
        candidate_hooks=[outcomes.append],
    )
    assert run.join(60)
    status = run.status()
    assert (status.state, status.failed, status.evaluated) == ("finished", 1, 1), status
    return {o.failure for o in outcomes if o.failure}


@pytest.mark.parametrize("stuck", ["test_block", "test_hang_build"])
def test_grouped_stop_ends_a_run_whose_forward_or_builder_never_returns(tiny_task, stuck):
    selection = grouped_selection(timeout=3600)
    run = gn.evolve_continual([net((stuck, [])), net(GOOD)], tiny_task, selection=selection)
    assert ENTERED.wait(60), "the stuck layer was never reached"
    started = time.monotonic()
    run.stop()
    assert run.join(30), f"stop() could not end a grouped run with a stuck {stuck}: {run!r}"
    assert time.monotonic() - started < 15
    assert run.status().state == "stopped"


@pytest.mark.parametrize("group_size", [1, 2])
def test_stop_ends_a_run_whose_breeding_never_returns(tiny_task, group_size, caplog):
    # Breeding checks each child's shapes, which calls its builder, on the run's thread.
    # mutation_rate 1: every child duplicates a slice, and checks its shapes.
    selection = grouped_selection(group_size, mutation_rate=1.0, timeout=3600)
    parents = [net(("test_hang_always", [])), net(GOOD)]
    ARMED.set()
    run = gn.evolve_continual(parents, tiny_task, selection=selection)
    assert ENTERED.wait(60), "breeding never reached the builder"
    started = time.monotonic()
    run.stop()
    assert run.join(30), f"stop() could not end a run stuck in breeding: {run!r}"
    assert time.monotonic() - started < 15
    assert run.status().state == "stopped"
    assert {n.id for n in selection.queued().values()} == {p.id for p in parents}


def test_breeding_that_never_returns_is_given_up_and_the_parents_stay(tiny_task, caplog):
    caplog.set_level(logging.WARNING, logger="galapagos_nao")
    selection = grouped_selection(mutation_rate=1.0, timeout=0.5)
    parents = [net(("test_hang_always", [])), net(GOOD)]
    ARMED.set()
    run = gn.evolve(parents, 1, tiny_task, selection=selection)
    try:
        deadline = time.monotonic() + 30
        said = []
        while not said and time.monotonic() < deadline:
            time.sleep(0.2)
            said = [r.getMessage() for r in caplog.records if "breeding did not" in r.getMessage()]
        assert said, "a breeding that never returned was not given up"
        assert "no child could be bred: breeding did not return within 2.5 s" in said[0]
        assert run.status().state == "running"
        assert {n.id for n in selection.queued().values()} == {p.id for p in parents}
    finally:
        run.stop()
    assert run.join(30)


# With processes the stuck layers, registered here only, train on the worker threads:
# their allowance must be the threads' one, not one that waits for a worker process.
@pytest.mark.parametrize("backend", ["threads", "processes"])
@pytest.mark.parametrize("stuck", ["test_block", "test_hang_build"])
def test_grouped_stuck_candidates_are_dropped_at_their_timeout(tiny_task, stuck, backend):
    selection = grouped_selection(timeout=0.5, backend=backend)
    outcomes: list[Outcome] = []
    run = gn.evolve(
        [net((stuck, [])), net(GOOD)],
        2,
        tiny_task,
        selection=selection,
        seed=0,
        candidate_hooks=[outcomes.append],
    )
    assert run.join(60), f"a stuck {stuck} wedged the grouped run: {run!r}"
    status = run.status()
    assert status.state == "finished" and status.completed == 2, status
    stuck_failures = [o.failure for o in outcomes if o.failure]
    assert stuck_failures and all("did not return within" in f for f in stuck_failures)
    assert all(n.layers == (("dense", (4, "relu")),) for n in selection.elites().values())


@pytest.mark.parametrize("group_size", [1, 2])
@pytest.mark.parametrize(("layer", "error"), RAISING)
def test_a_base_exception_in_a_forward_drops_the_candidate_not_the_run(
    tiny_task, group_size, layer, error
):
    failures = one_generation_drops_one(tiny_task, group_size, net((layer, [])))
    assert failures == {f"{error.__name__}: raised by a layer"}


@pytest.mark.parametrize("group_size", [1, 2])
def test_a_builder_raising_system_exit_drops_the_candidate(tiny_task, group_size):
    failures = one_generation_drops_one(tiny_task, group_size, net(("test_build_exit", [])))
    assert failures == {"SystemExit: bye from a builder"}


def test_a_mutate_raising_generator_exit_drops_the_child(tiny_task, caplog):
    caplog.set_level(logging.WARNING, logger="galapagos_nao")
    parameters = Parameters()
    parameters.put("evolution", {"mutation_rate": 0.5, "layer_types": {"dropout": [0.1]}})
    parameters.put("orchestration", {"generation_size": 8})
    parameters.put("training", {"device": "cpu", "group_size": 2})
    selection = Selection(parameters=parameters)
    nets = [net(*[("test_exit_mutate", [3])] * 6), net(GOOD)]
    run = gn.evolve(nets, 2, tiny_task, selection=selection, seed=0)
    assert run.join(60)
    status = run.status()
    assert status.state == "finished" and status.completed == 2, status
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert any("GeneratorExit" in m and "mutate exits" in m for m in dropped), dropped


#: A real interpreter: a run whose candidate hangs in its forward pass, then ``exit()``.
EXIT_SCRIPT = textwrap.dedent(
    """
    import sys, threading
    import torch
    from torch import nn
    import galapagos_nao as gn
    from galapagos_nao.archive.selection import Selection
    from galapagos_nao.config.parameters import Parameters
    from galapagos_nao.core import datasets, genome
    from galapagos_nao.core.network import Network

    group_size, stop = int(sys.argv[1]), sys.argv[2] == "stop"
    entered = threading.Event()

    class Block(nn.Module):
        def forward(self, x):
            entered.set()
            threading.Event().wait()  # never returns
            return x

    genome.register_layer("test_block", [], lambda p, n: ([Block()], n), replace=True)
    x = torch.randn(96, 4)
    y = (x[:, 0] > 0).long()
    task = datasets.from_tensors(x[:64], y[:64], x[64:], y[64:], name="tiny")
    parameters = Parameters()
    parameters.put("training", {"device": "cpu", "group_size": group_size})
    parameters.put("orchestration", {"timeout": 3600})
    selection = Selection(parameters=parameters)
    nets = [Network([("test_block", [])], input_shape=(4,), n_classes=2)]
    run = gn.evolve_continual(nets, task, selection=selection, seed=0)
    assert entered.wait(60), "never stuck"
    if stop:
        run.stop()
        assert run.join(30), repr(run)
    print("exiting", run.status().state, flush=True)
    exit()
    """
)


def exit_with_a_stuck_candidate(group_size: int, how: str) -> tuple[Any, float]:
    """Runs EXIT_SCRIPT: its CompletedProcess (or TimeoutExpired), and the seconds it took."""
    started = time.monotonic()
    try:
        done: Any = subprocess.run(
            [sys.executable, "-c", EXIT_SCRIPT, str(group_size), how],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired as error:
        done = error
    return done, time.monotonic() - started


@pytest.fixture(scope="module")
def exits(request: pytest.FixtureRequest) -> Iterator[dict[tuple[int, str], Future[Any]]]:
    """The EXIT_SCRIPT run of every case this session tests, all started at first use.

    Half of such a run is spent idle (seconds of waiting at exit), so they overlap.
    """
    cases = [
        (item.callspec.params["group_size"], item.callspec.params["how"])
        for item in request.session.items
        if getattr(item, "function", None) is test_python_exits_while_a_candidate_is_stuck
    ]
    pool = ThreadPoolExecutor(max(len(cases), 1), thread_name_prefix="exit-script")
    try:
        yield {case: pool.submit(exit_with_a_stuck_candidate, *case) for case in cases}
    finally:
        pool.shutdown(cancel_futures=True)


@pytest.mark.parametrize(("group_size", "how"), [(1, "no-stop"), (2, "stop")])
def test_python_exits_while_a_candidate_is_stuck(group_size, how, exits):
    done, seconds = exits[group_size, how].result()
    if isinstance(done, subprocess.TimeoutExpired):
        pytest.fail(f"exit() hung behind a stuck candidate: {done.stdout!r} {done.stderr!r}")
    assert done.returncode == 0, done.stderr[-2000:]
    expected = "exiting stopped" if how == "stop" else "exiting running"
    assert expected in done.stdout, (done.stdout, done.stderr[-2000:])
    assert seconds < 110
