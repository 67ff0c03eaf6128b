"""The live notebook view in this process: real runs, real threads, the real widget (no browser).

The kernel and the browser are in ``test_live_notebook.py`` and ``test_live_browser.py``.
"""

from __future__ import annotations

import logging
import sys
import threading
import time

import pytest

from galapagos_nao import evolve, evolve_continual
from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core import datasets
from galapagos_nao.ui import live
from galapagos_nao.ui.logs import PACKAGE_LOGGER, enable_console_logging, log_level

pytest.importorskip("anywidget", reason="the live view needs the notebook extra (anywidget)")

LAYERS = [("dense", [8, "relu"])]


@pytest.fixture(scope="module")
def tiny_task(small_mnist):
    return datasets.subset(small_mnist, 600, 200)


def fresh_selection(generation_size: int = 3) -> Selection:
    parameters = Parameters()
    parameters.put("orchestration", {"generation_size": generation_size, "workers": 1})
    return Selection(parameters=parameters)


def live_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "gn-live"]


def recorded(widget) -> list[dict]:
    states = [widget.state]
    widget.observe(lambda change: states.append(change["new"]), names="state")
    return states


def diverted_handlers() -> list[logging.Handler]:
    """The package's handlers that still hand lines to a live view."""
    handlers = logging.getLogger(PACKAGE_LOGGER).handlers
    return [h for h in handlers if any(type(f).__name__ == "_Diverted" for f in h.filters)]


def wait_until(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_the_view_changes_while_a_run_trains_and_ends_with_its_final_figures(tiny_task):
    selection = fresh_selection()
    run = evolve(LAYERS, 3, tiny_task, selection=selection, seed=1)
    widget = live.view(run)
    states = recorded(widget)
    assert run.wait(120)
    wait_until(lambda: not widget.following)
    running = [s for s in states if s["state"] == "running"]
    assert len({(s["generation"], s["candidates"]) for s in running}) >= 3
    assert [s["generation"] for s in states] == sorted(s["generation"] for s in states)
    final, status, stats = states[-1], run.status(), selection.stats()
    assert final["state"] == "finished" and final["done"] is True
    assert (final["generation"], final["generations"]) == (status.completed, 3)
    assert final["evaluated"] == status.evaluated and final["failed"] == status.failed
    assert (final["best"], final["mean"], final["metric"]) == (
        stats.best_fitness,
        stats.mean_fitness,
        "val_acc",
    )
    assert (final["filled"], final["cells_total"]) == (stats.filled, stats.cells)
    shown = {tuple(c["cell"]): c["fitness"] for c in final["cells"] if c["fitness"] is not None}
    elites = selection.elites()
    assert shown == {(k if isinstance(k, tuple) else (k,)): n.val_acc for k, n in elites.items()}
    assert any(event["kind"] in ("new", "replaced") for event in final["events"])


def test_a_view_leaves_no_thread_hook_or_listener_behind_when_its_run_ends(tiny_task):
    selection = fresh_selection()
    enable_console_logging()
    run = evolve(LAYERS, 1, tiny_task, selection=selection, seed=2)
    hooks, candidate_hooks = list(run.hooks), list(run.candidate_hooks)
    listeners = list(selection.listeners), list(selection.parameters.listeners)
    widget = live.view(run)
    assert widget.following and live_threads() and diverted_handlers()
    assert len(run.hooks) == len(hooks) + 1 and len(selection.listeners) == len(listeners[0]) + 1
    assert run.wait(120)
    wait_until(lambda: not live_threads(), timeout=5)
    assert not widget.following
    assert (run.hooks, run.candidate_hooks) == (hooks, candidate_hooks)
    assert (list(selection.listeners), list(selection.parameters.listeners)) == listeners
    assert not diverted_handlers()


def test_closing_the_view_stops_it_and_leaves_the_run_going(tiny_task):
    selection = fresh_selection()
    run = evolve_continual(LAYERS, tiny_task, selection=selection, seed=3)
    try:
        hooks = list(run.hooks)
        widget = live.view(run)
        assert live.view(run) is widget  # shown again: the same widget, one thread
        wait_until(lambda: widget.state["generation"] >= 1)
        widget.close()
        assert not widget.following and not live_threads()
        assert run.hooks == hooks and not run.done()
        generation = widget.state["generation"]
        wait_until(lambda: run.status().completed > generation + 1)
        assert widget.state["generation"] == generation  # closed: no longer updated
        assert live.view(run) is not widget  # a new view follows afresh
    finally:
        run.stop()
        run.join()
    wait_until(lambda: not live_threads(), timeout=5)


def test_steering_during_the_run_shows_at_once_pins_favor_and_events(tiny_task):
    selection = fresh_selection()
    run = evolve_continual(LAYERS, tiny_task, selection=selection, seed=4)
    try:
        widget = live.view(run)
        wait_until(lambda: selection.elites())
        cell = next(iter(selection.elites()))
        selection.pin(cell)
        selection.favor(cell, 3)
        selection.parameters.put("selection", {"complexity_levels": 3})

        def marked() -> bool:
            cells = {tuple(c["cell"]): c for c in widget.state["cells"]}
            key = cell if isinstance(cell, tuple) else (cell,)
            return key in cells and cells[key]["pinned"] and cells[key]["favor"] == 3

        wait_until(marked, timeout=5)
        texts = [e["text"] for e in widget.state["events"] if e["kind"] == "steer"]
        assert f"Selection.pin(cell={cell!r})" in texts
        assert f"Selection.favor(cell={cell!r}, weight=3.0)" in texts
        assert any(t.startswith("Parameters.put(section='selection'") for t in texts)
        assert widget.state["state"] == "running"
    finally:
        run.stop()
        run.join()
    wait_until(lambda: not live_threads(), timeout=5)
    assert widget.state["state"] == "stopped" and widget.state["done"]


def test_background_log_lines_go_into_the_view_and_a_cells_own_stay_put(tiny_task, capsys):
    log_level("generation")  # as the examples and the notebook do
    selection = fresh_selection()
    run = evolve(LAYERS, 2, tiny_task, selection=selection, seed=5)
    widget = live.view(run)
    logging.getLogger("galapagos_nao.tests").warning("said on the main thread")
    assert run.wait(120)
    wait_until(lambda: not widget.following)
    err = capsys.readouterr().err
    assert "said on the main thread" in err
    assert "this run 1/2" not in err and "this run 2/2" not in err
    logged = [e["text"] for e in widget.state["events"] if e["kind"] == "log"]
    assert any(text.startswith("Generation 1 (this run 2/2)") for text in logged)
    # The view has ended: background lines reach the console again.
    assert not diverted_handlers()


def test_a_finished_run_and_a_selection_without_a_run_show_once_without_a_thread(tiny_task):
    selection = fresh_selection()
    empty = live.view(selection)
    assert not empty.following and empty.state["state"] == "no run"
    assert empty.state["filled"] == 0 and empty.state["cells"]
    run = evolve(LAYERS, 1, tiny_task, selection=selection, seed=6)
    assert run.wait(120)
    for obj in (run, selection):
        widget = live.view(obj)
        assert not widget.following and widget.state["state"] == "finished"
        # Events from the archive's history: the view began after them.
        recalled = [e for e in widget.state["events"] if e["time"] == "earlier"]
        assert recalled and recalled[0]["text"].startswith("generation 1: cell ")
    assert not live_threads()


def test_a_two_measure_archive_shows_every_cell_of_its_grid(tiny_task):
    selection = fresh_selection(generation_size=4)
    selection.parameters.put(selection, {"measures": ["layers", "params"], "complexity_levels": 3})
    run = evolve(LAYERS, 2, tiny_task, selection=selection, seed=8)
    assert run.wait(120)
    state = live.view(run).state
    grid = selection.grid()
    assert state["measures"] == list(grid.measures) == ["layers", "params"]
    assert state["levels"] == list(grid.levels)
    assert [c["cell"] for c in state["cells"]] == [
        [row, column]
        for row in range(1, grid.levels[0] + 1)
        for column in range(1, grid.levels[1] + 1)
    ]
    shown = {tuple(c["cell"]): c["fitness"] for c in state["cells"] if c["fitness"] is not None}
    assert shown == {cell: net.val_acc for cell, net in selection.elites().items()}


def test_a_view_that_fails_stops_alone_and_says_so_while_the_run_goes_on(tiny_task, caplog):
    from galapagos_nao.ui.live_follow import Follower

    selection = fresh_selection()
    run = evolve_continual(LAYERS, tiny_task, selection=selection, seed=9)
    published: list[dict] = []

    def publish(state: dict) -> None:  # a front end that breaks after its first state
        if published:
            raise ConnectionError("the front end went away")
        published.append(state)

    try:
        hooks = list(run.hooks)
        follower = Follower(run, publish, refresh=0.05)
        follower.start()
        wait_until(lambda: not follower.following, timeout=10)
        assert run.hooks == hooks and not diverted_handlers()
        assert "the live view of <Run" in caplog.text and "the front end went away" in caplog.text
        generation = run.status().completed
        wait_until(lambda: run.status().completed > generation)  # the run went on
    finally:
        run.stop()
        run.join()


def test_a_view_of_anything_else_is_refused_naming_it():
    with pytest.raises(ValueError, match="obj must be a Run or a Selection, got dict"):
        live.view({})


def test_without_anywidget_the_view_names_the_extra_to_install(monkeypatch):
    # The one fault not produced for real: anywidget is installed in the test environment.
    monkeypatch.setitem(sys.modules, "anywidget", None)
    monkeypatch.delitem(sys.modules, "galapagos_nao.ui.live_widget", raising=False)
    with pytest.raises(ImportError, match=r"pip install 'galapagos-nao\[notebook\]'"):
        live.view(fresh_selection())


def test_a_terminal_ipython_keeps_the_text_views(tiny_task):
    from IPython.core.interactiveshell import InteractiveShell

    selection = fresh_selection()
    run = evolve(LAYERS, 1, tiny_task, selection=selection, seed=7)
    assert run.wait(120)
    shell = InteractiveShell.instance()
    try:
        assert not live.in_kernel()
        for obj in (run, selection):
            data, _ = shell.display_formatter.format(obj)
            assert live.WIDGET_MIME not in data
            assert data["text/plain"].startswith(repr(obj))
            assert data["text/html"] == obj._repr_html_()  # the static view
        assert not live_threads()
    finally:
        InteractiveShell.clear_instance()
