"""Random steering from several threads never kills a running run (issue 22, the attack).

Hypothesis draws sequences of the documented steering calls (``Parameters.put``,
``pin``, ``unpin``, ``favor`` with 0 among the weights, ``veto``,
``put_unevaluated``, ``clear_vetoes``) and three real threads send them at once
against one running continual run. After each batch the run must still be
running and its archive non-empty; at the end, steered back to plain
settings, it must breed again. A call the API refuses (an empty cell, a vetoed
genome) is fine: it raises and changes nothing. Bounded to about 15 s.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import galapagos_nao as gn
from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core.network import Network

#: Genomes the attack queues or vetoes (small: a candidate trains in milliseconds).
GENOMES = [
    [("dense", [4, "relu"])],
    [("dense", [6, "tanh"]), ("dropout", [0.2])],
    [("dense", [5, "sigmoid"]), ("batch_norm", []), ("dense", [3, "relu"])],
    [("leaky_relu", [0.1]), ("dense", [4, "none"]), ("activation", ["relu"]), ("dropout", [0.5])],
]

PUTS = st.one_of(
    st.builds(lambda n: ("orchestration", {"generation_size": n}), st.integers(1, 6)),
    st.builds(lambda t: ("orchestration", {"timeout": t}), st.floats(5, 60)),
    st.builds(lambda r: ("evolution", {"mutation_rate": r}), st.floats(0, 1)),
    st.builds(lambda m: ("evolution", {"max_layers": m}), st.none() | st.integers(1, 8)),
    st.builds(
        lambda names: ("evolution", {"forbid": names}),
        st.lists(
            st.sampled_from(["sigmoid", "tanh", "dropout", "batch_norm", "dense"]), max_size=3
        ),
    ),
    st.builds(lambda n: ("selection", {"complexity_levels": n}), st.integers(1, 4)),
    st.builds(lambda g: ("training", {"group_size": g}), st.sampled_from([1, 2, "auto"])),
    st.builds(lambda b: ("training", {"batch_size": b}), st.sampled_from([16, 32, "auto"])),
)
CALLS = st.one_of(
    st.tuples(st.just("put"), PUTS),
    st.tuples(st.just("pin"), st.integers(0, 5)),
    st.tuples(st.just("unpin"), st.integers(0, 5)),
    st.tuples(st.just("favor"), st.integers(0, 5), st.sampled_from([0, 0, 0.5, 1, 3])),
    st.tuples(st.just("veto"), st.integers(0, 5)),
    st.tuples(st.just("veto_genome"), st.integers(0, len(GENOMES) - 1)),
    st.tuples(st.just("put_unevaluated"), st.integers(0, len(GENOMES) - 1)),
    st.tuples(st.just("clear_vetoes")),
    st.tuples(st.just("sleep"), st.floats(0, 0.05)),
)


def network(index: int) -> Network:
    return Network(GENOMES[index], input_shape=(4,), n_classes=2)


class Attacker:
    """Sends steering calls at a Selection; keeps the calls that must never fail."""

    def __init__(self, selection: Selection) -> None:
        self.selection = selection
        self.unexpected: list[str] = []
        # Only a veto can empty the archive, and the person would mean it: the
        # attack vetoes an archived network only while an elite of another genome
        # remains. (A queued network does not count: a generation consumes it by
        # breeding from it, and if every child it gets is dropped, say by a forbid
        # another thread put, nothing of it reaches the archive.)
        self._veto_lock = threading.Lock()

    def cell(self, index: int) -> Any:
        cells = sorted(self.selection.elites(), key=str)
        return cells[index % len(cells)] if cells else (index,)

    def veto_archived(self, index: int) -> None:
        held = [*self.selection.elites().values(), *self.selection.queued().values()]
        if held:
            self.veto(held[index % len(held)])

    def veto(self, net: Network) -> None:
        """Vetoes ``net`` (and every network of its genome) if an elite of another genome stays."""
        with self._veto_lock:
            if {n.layers for n in self.selection.elites().values()} - {net.layers}:
                self.selection.veto(net)

    def perform(self, call: tuple[Any, ...]) -> None:
        name, *args = call
        actions: dict[str, Callable[..., Any]] = {
            "put": lambda put: self.selection.parameters.put(*put),
            "pin": lambda i: self.selection.pin(self.cell(i)),
            "unpin": lambda i: self.selection.unpin(self.cell(i)),
            "favor": lambda i, w: self.selection.favor(self.cell(i), w),
            "veto": self.veto_archived,
            "veto_genome": lambda i: self.veto(network(i)),
            "put_unevaluated": lambda i: self.selection.put_unevaluated(network(i)),
            "clear_vetoes": self.selection.clear_vetoes,
            "sleep": time.sleep,
        }
        try:
            actions[name](*args)
        except (KeyError, ValueError):
            pass  # refused, naming what was wrong, and nothing changed: allowed
        except Exception as error:  # noqa: BLE001 - collected, then the test fails on it
            self.unexpected.append(f"{call!r}: {type(error).__name__}: {error}")

    def send(self, calls: list[tuple[Any, ...]]) -> None:
        for call in calls:
            self.perform(call)


def test_random_steering_from_three_threads_never_kills_the_run(tiny_task):
    parameters = Parameters()
    parameters.put("training", {"device": "cpu"})
    parameters.put("orchestration", {"generation_size": 2})
    selection = Selection(parameters=parameters)
    run = gn.evolve_continual([network(0), network(2)], tiny_task, selection=selection, seed=0)
    attacker = Attacker(selection)
    started = time.monotonic()

    @settings(
        max_examples=12,
        deadline=None,
        derandomize=True,  # the same calls in every run; the threads' interleaving still varies
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(st.lists(st.lists(CALLS, min_size=5, max_size=25), min_size=3, max_size=3))
    def attack(plans: list[list[tuple[Any, ...]]]) -> None:
        threads = [threading.Thread(target=attacker.send, args=(plan,)) for plan in plans]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert not any(thread.is_alive() for thread in threads), "a steering call never returned"
        assert not attacker.unexpected, attacker.unexpected
        status = run.status()
        assert status.state == "running", status
        assert selection.elites() or selection.queued(), "the archive lost its last networks"

    try:
        attack()
        assert time.monotonic() - started < 60
        # Steered back to plain settings, it breeds again.
        parameters.put("evolution", {"max_layers": None, "forbid": [], "mutation_rate": 0.25})
        selection.clear_vetoes()
        for cell in selection.elites():
            selection.favor(cell, 1)
        selection.put_unevaluated(network(1))
        at = run.status().completed
        deadline = time.monotonic() + 60
        while run.status().completed < at + 2:
            assert time.monotonic() < deadline, f"the run no longer breeds: {run!r}"
            time.sleep(0.05)
    finally:
        run.stop()
    assert run.join(30) and run.status().state == "stopped"
