from __future__ import annotations

import logging
import sys

import pytest

from galapagos_nao import evolve, evolve_continual
from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core.network import Network
from galapagos_nao.example import seed_layers
from galapagos_nao.run.loop import Run
from galapagos_nao.ui import progress


def fresh_selection(generation_size: int = 2) -> Selection:
    parameters = Parameters()
    parameters.put("orchestration", {"generation_size": generation_size})
    return Selection(parameters=parameters)


@pytest.fixture
def silent_logger(monkeypatch):
    """No console handler on the package logger, whatever other tests turned on."""
    monkeypatch.setattr(logging.getLogger("galapagos_nao"), "handlers", [logging.NullHandler()])


def test_progress_bar_reaches_100_percent_on_a_short_run(small_mnist, capsys, silent_logger):
    run = evolve(seed_layers(), 2, small_mnist, selection=fresh_selection(), seed=7)
    hooks, candidate_hooks = list(run.hooks), list(run.candidate_hooks)
    assert run.wait(progress=True) is True
    assert run.status().completed == 2 and run.status().evaluated > 0
    err = capsys.readouterr().err
    final = err.replace("\r", "\n").splitlines()
    generation_lines = [line for line in final if line.startswith("generations:")]
    assert generation_lines and "100%" in generation_lines[-1] and "2/2" in generation_lines[-1]
    assert any(line.startswith("candidates:") for line in final)
    assert run.hooks == hooks and run.candidate_hooks == candidate_hooks  # bars leave no hooks


def test_a_background_run_prints_nothing_by_itself(small_mnist, capsys, silent_logger):
    run = evolve(seed_layers(), 1, small_mnist, selection=fresh_selection(), seed=8)
    assert run.wait() is True  # progress=False: a plain join
    assert run.status().evaluated > 0 and run.status().state == "finished"
    assert capsys.readouterr() == ("", "")


def test_waiting_on_a_continual_run_times_out_and_leaves_it_running(
    small_mnist, capsys, silent_logger
):
    run = evolve_continual(seed_layers(), small_mnist, selection=fresh_selection(), seed=9)
    try:
        assert run.wait(0.3, progress=True) is False
        assert not run.done()
        assert "generations:" in capsys.readouterr().err
    finally:
        run.stop()
        run.join()


def test_expected_candidates_follows_the_breeding_rule():
    selection = fresh_selection(generation_size=2)
    run = Run(generations=1, task=None, selection=selection, parameters=selection.parameters)
    selection.put_unevaluated(Network([("dense", [4, "relu"])]))
    assert progress.expected_candidates(run) == 2  # a lone parent is cloned generation_size times
    for n in range(3):
        selection.put_unevaluated(Network([("dense", [4 + n, "relu"])]))
    assert progress.expected_candidates(run) == 4  # one child per parent


def test_missing_tqdm_names_the_extra(monkeypatch):
    # tqdm is installed here, so its absence is simulated: the one fault we cannot produce.
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    selection = fresh_selection()
    run = Run(generations=1, task=None, selection=selection, parameters=selection.parameters)
    hooks = list(run.hooks)
    with pytest.raises(ImportError, match=r"galapagos-nao\[plot\]"):
        run.wait(progress=True)
    assert run.hooks == hooks
