"""``examples/live.ipynb`` executed in a real Jupyter kernel (nbclient), as a notebook user runs it.

The client records every widget message the kernel sends, as a front end
would receive them: the live view's state must change while the run trains,
steering must show in it while the run goes on, and its last state must be the
run's final figures. The notebook's other promises are checked on its outputs:
notebook progress bars, one figure per plot, log lines in the view and no
thread left behind.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the notebook test needs nbformat (dev extra)")
nbclient = pytest.importorskip("nbclient", reason="the notebook test needs nbclient (dev extra)")
pytest.importorskip("ipykernel", reason="the notebook test needs ipykernel (dev extra)")
pytest.importorskip("anywidget", reason="the live view needs the notebook extra (anywidget)")

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "examples" / "live.ipynb"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

#: Appended to the notebook: what the kernel itself says at the end, as JSON.
PROBE = """
import json, threading, time
from ipywidgets.widgets.widget import _instances
from galapagos_nao.ui.live_widget import LiveView

deadline = time.monotonic() + 10
while any(t.name == "gn-live" for t in threading.enumerate()) and time.monotonic() < deadline:
    time.sleep(0.05)
# Each view sends its state once more, so the client holds the last one even if
# the view's final refresh came between two cells (a client sees messages of cells only).
for widget in list(_instances.values()):
    if isinstance(widget, LiveView):
        widget.send_state("state")
status, stats = run.status(), gn.Selection.stats()
print(json.dumps({
    "threads": [t.name for t in threading.enumerate()],
    "state": status.state,
    "generation": status.completed,
    "evaluated": status.evaluated,
    "best": stats.best_fitness,
    "mean": stats.mean_fitness,
    "filled": stats.filled,
    "elites": {json.dumps(k): n.val_acc for k, n in gn.Selection.elites().items()},
    "pinned": [json.dumps(k) for k in gn.Selection.curation().pinned],
}))
"""


#: Appended last: the same kernel as if anywidget were missing (the one fault made by hand).
WITHOUT_ANYWIDGET = """
import sys
sys.modules["anywidget"] = None
sys.modules.pop("galapagos_nao.ui.live_widget", None)
gn.Selection
"""


class RecordingClient(nbclient.NotebookClient):
    """A notebook client that keeps every widget state update, with the cell it came during."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.updates: list[tuple[float, int, str, dict]] = []

    def handle_comm_msg(self, outs, msg, cell_index):
        state = msg["content"].get("data", {}).get("state", {})
        if state.get("state"):  # the live view's trait, once it holds a state
            comm = msg["content"]["comm_id"]
            self.updates.append((time.monotonic(), cell_index, comm, state["state"]))
        super().handle_comm_msg(outs, msg, cell_index)


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The notebook run in a fresh kernel: ``(notebook, client, probe, seconds)``."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(PROBE))
    notebook.cells.append(nbformat.v4.new_code_cell(WITHOUT_ANYWIDGET))
    home = tmp_path_factory.mktemp("kernel")
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # the notebook's own backend
    env["GN_HOME"] = str(home / "gn_home")
    # The kernel imports this checkout, whether or not it is installed.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    client = RecordingClient(notebook, timeout=300, kernel_name="python3")
    client.resources = {"metadata": {"path": str(home)}}
    started = time.monotonic()
    client.execute(env=env)
    seconds = time.monotonic() - started
    probe = json.loads(notebook.cells[-2].outputs[-1]["text"])
    return notebook, client, probe, seconds


def code_cell(notebook, starts: str):
    return next(c for c in notebook.cells if c.cell_type == "code" and c.source.startswith(starts))


def run_view_updates(notebook, client) -> list[tuple[float, int, dict]]:
    """The Run view's updates, in order: the widget the ``run`` cell displayed."""
    cell = code_cell(notebook, "run = gn.evolve")
    model = next(o for o in cell.outputs if WIDGET_MIME in o.get("data", {}))
    model_id = model["data"][WIDGET_MIME]["model_id"]
    return [(t, index, state) for t, index, comm, state in client.updates if comm == model_id]


def test_the_view_changes_while_the_run_trains_and_ends_with_its_final_figures(executed):
    notebook, client, probe, seconds = executed
    updates = run_view_updates(notebook, client)
    running = [state for _, _, state in updates if state["state"] == "running"]
    seen = {(state["generation"], state["candidates"]) for state in running}
    assert len(seen) >= 5, seen  # it moved on its own, generation after generation
    generations = [state["generation"] for _, _, state in updates]
    assert generations == sorted(generations) and generations[0] < generations[-1]
    final = updates[-1][2]
    assert probe["state"] == "finished" and final["state"] == "finished"
    assert final["generation"] == probe["generation"] == final["generations"]
    assert final["evaluated"] == probe["evaluated"]
    assert (final["best"], final["mean"], final["filled"]) == (
        probe["best"],
        probe["mean"],
        probe["filled"],
    )
    shown = {
        json.dumps(c["cell"][0] if len(c["cell"]) == 1 else c["cell"]): c["fitness"]
        for c in final["cells"]
        if c["fitness"] is not None
    }
    assert shown == probe["elites"]
    print(f"notebook executed in {seconds:.1f} s")


def test_steering_cells_run_while_the_view_updates(executed):
    notebook, client, probe, _ = executed
    updates = run_view_updates(notebook, client)
    run_cell = notebook.cells.index(code_cell(notebook, "run = gn.evolve"))
    pin_cell = notebook.cells.index(code_cell(notebook, "import time"))
    # The kernel was free: later cells ran (and the view kept updating) during the run.
    assert any(index > run_cell and s["state"] == "running" for _, index, s in updates)
    texts = {
        event["text"]
        for _, _, state in updates
        if state["state"] == "running"
        for event in state["events"]
        if event["kind"] == "steer"
    }
    assert any(t.startswith("Parameters.put(section='selection'") for t in texts)
    assert any(t.startswith("Selection.pin(") for t in texts)
    pinned = [json.dumps(c["cell"][0]) for c in updates[-1][2]["cells"] if c["pinned"]]
    assert pinned == probe["pinned"] and len(pinned) == 1
    favored = [c["favor"] for c in updates[-1][2]["cells"] if c["pinned"]]
    assert favored == [3.0]
    assert pin_cell > run_cell


def test_the_cell_carries_the_static_view_where_widgets_cannot_render(executed):
    notebook, *_ = executed
    for starts in ("run = gn.evolve", "gn.Selection"):
        outputs = code_cell(notebook, starts).outputs
        (result,) = [o for o in outputs if o.output_type == "execute_result"]
        assert WIDGET_MIME in result["data"]
        assert result["data"]["text/html"].startswith("<div><strong>")
        assert result["data"]["text/plain"].startswith(("<Run ", "Selection("))


def test_nbconvert_without_widget_state_shows_the_static_views(executed):
    nbconvert = pytest.importorskip("nbconvert", reason="comes with JupyterLab (dev extra)")
    notebook = nbformat.from_dict(executed[0])
    # As Jupyter saves a notebook by default, and as GitHub reads it: no widget state.
    notebook.metadata.pop("widgets", None)
    html, _ = nbconvert.HTMLExporter().from_notebook_node(notebook)
    assert "<strong>Run</strong>" in html and "<strong>Selection</strong>" in html
    assert WIDGET_MIME not in html


def test_without_anywidget_a_notebook_shows_the_static_view_and_names_the_extra(executed):
    notebook, *_ = executed
    (result,) = notebook.cells[-1].outputs
    assert WIDGET_MIME not in result["data"]
    html = result["data"]["text/html"]
    assert html.startswith("<div><strong>Selection</strong>")
    assert "pip install 'galapagos-nao[notebook]'" in html


def test_log_lines_go_into_the_view_not_under_a_cell(executed):
    notebook, client, *_ = executed
    cells = [c for c in notebook.cells if c.cell_type == "code"]
    streams = [o.get("text", "") for c in cells for o in c.outputs]
    assert not any("Generation " in text for text in streams)
    final = run_view_updates(notebook, client)[-1][2]
    logged = [e["text"] for e in final["events"] if e["kind"] == "log"]
    assert any(text.startswith("Generation ") for text in logged)


def test_progress_bars_are_notebook_bars_and_a_plot_shows_once(executed):
    notebook, *_ = executed
    bars = code_cell(notebook, "run.wait(progress=True)").outputs
    assert sum(WIDGET_MIME in o.get("data", {}) for o in bars) == 2  # generations, candidates
    assert not any("\x1b[" in o.get("text", "") for o in bars)
    plot = code_cell(notebook, "gn.plot.archive()").outputs
    assert sum("image/png" in o.get("data", {}) for o in plot) == 1


def test_no_view_thread_is_left_when_the_run_has_ended(executed):
    *_, probe, _ = executed
    assert "gn-live" not in probe["threads"]
