"""The steering clock: a change lands wholly before or after a run's boundary."""

from __future__ import annotations

import threading
import time

import pytest

from galapagos_nao.core.clock import BREEDING, SELECTION, Stamp, SteeringClock, holding, in_order


def test_a_change_waits_for_the_boundary_in_progress_and_is_stamped_after_it():
    clock = SteeringClock()
    inside, release = threading.Event(), threading.Event()
    stamps: list[Stamp] = []

    def run_boundary() -> None:
        with clock.boundary(Stamp(4, BREEDING), Stamp(4, SELECTION)):
            inside.set()
            release.wait(5)

    runner = threading.Thread(target=run_boundary)
    runner.start()
    assert inside.wait(5)

    def steer() -> None:
        with clock as stamp:
            stamps.append(stamp)

    steering = threading.Thread(target=steer)
    steering.start()
    time.sleep(0.05)
    assert stamps == []  # blocked while the run reads
    release.set()
    runner.join(5)
    steering.join(5)
    assert stamps == [Stamp(4, SELECTION)]
    assert clock.now() == Stamp(4, SELECTION)


def test_boundary_listeners_see_the_stamp_before_the_body_and_the_next_stamp_applies_after():
    clock = SteeringClock()
    seen: list[tuple[str, Stamp]] = []
    clock.boundary_listeners.append(lambda stamp: seen.append(("listener", clock.now())))
    with clock.boundary(Stamp(2, SELECTION), Stamp(3, BREEDING)):
        seen.append(("body", clock.now()))
    assert seen == [("listener", Stamp(2, SELECTION)), ("body", Stamp(2, SELECTION))]
    assert clock.now() == Stamp(3, BREEDING)
    with pytest.raises(RuntimeError), clock.boundary(Stamp(3, BREEDING), Stamp(3, SELECTION)):
        raise RuntimeError("a body that fails still moves the clock on")
    assert clock.now() == Stamp(3, SELECTION)


def test_stamps_order_as_a_run_passes_them_and_refuse_unknown_phases():
    passed = [Stamp(0, BREEDING), Stamp(0, SELECTION), Stamp(1, BREEDING), Stamp(1, SELECTION)]
    assert sorted(reversed(passed), key=Stamp.order) == passed
    assert str(Stamp(3, SELECTION)) == "3 selection"
    with pytest.raises(ValueError, match="phase must be one of"):
        Stamp(1, "training")


def test_several_clocks_are_always_taken_in_one_order():
    first, second = SteeringClock(), SteeringClock()
    assert in_order([second, first, second]) == in_order([first, second])
    assert len(in_order([first, first])) == 1
    # Re-entrant for the holder: a steering call made at a boundary takes it again.
    with holding([second, first]), first as stamp:
        assert stamp == Stamp(0, BREEDING)
