"""The seed's README session, line by line, in a real IPython shell on real MNIST."""

from __future__ import annotations

import time

import pytest
from IPython.core.interactiveshell import InteractiveShell

import galapagos_nao as gn
from galapagos_nao.core import datasets


@pytest.fixture
def shell(small_mnist):
    """A real IPython shell with a clean shared state and a quick task in its namespace."""
    gn.Selection.clear()
    gn.Library.clear()
    gn.Parameters.reset()
    ipython = InteractiveShell.instance()
    ipython.user_ns["task"] = small_mnist
    yield ipython
    run = gn.Selection.run
    if run is not None:
        run.stop()
        run.join(60)
    gn.Selection.clear()
    gn.Library.clear()
    gn.Parameters.reset()


def cell(shell: InteractiveShell, source: str):
    """Runs one cell like a user would and returns its value, failing on any error."""
    result = shell.run_cell(source, store_history=True)
    assert result.success, f"{source!r} raised {result.error_before_exec or result.error_in_exec!r}"
    return result.result


def wait_until(predicate, timeout: float = 120.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_short_example_runs_two_generations_on_real_mnist(shell, mnist_task, capsys):
    # The example's default task: the full real MNIST that GN_DATA_DIR points at.
    assert datasets.default_task().x_train.shape[0] == mnist_task.x_train.shape[0]
    cell(shell, "import galapagos_nao as gn")
    cell(shell, "run = gn.example.short_example()")
    run = shell.user_ns["run"]
    shown = cell(shell, "run")
    assert shown is run and repr(run).startswith("<Run ")
    assert run.join(240), repr(run)
    elites = cell(shell, "gn.Selection.get_all()")
    assert elites and all(isinstance(k, int) and k > 0 for k in elites)
    assert all(net.test_acc > 0.85 for net in elites.values())
    assert "test_acc=0." in repr(elites)
    assert run.status().evaluated + run.status().failed == 8
    err = capsys.readouterr().err
    # The examples say one line per generation; gn.log_level("candidate") adds the seed's lines.
    assert "Generation 0 (this run 1/2): " in err and "Generation 1 (this run 2/2): " in err
    assert "Epoch 0. Loss:" not in err


def test_the_continual_session_of_the_seed(shell):
    cell(shell, "import galapagos_nao as gn")
    cell(shell, "run = gn.example.infinite_example(task)")
    run = shell.user_ns["run"]
    assert "/∞" in repr(cell(shell, "run"))
    # get_all while training: a snapshot, never blocking the run
    wait_until(
        lambda: cell(shell, "len([k for k in gn.Selection.get_all() if k > 0])") >= 1,
        what="an elite",
    )
    cell(shell, "net = gn.Selection.get_all()[max(gn.Selection.get_all())]")
    net = shell.user_ns["net"]
    cell(shell, "gn.Library.put(net)")
    assert cell(shell, "gn.Library.get(net.id)") is net

    generation = run.status().completed
    cell(shell, 'gn.Parameters.put(gn.Selection, {"complexity_levels": 4})')
    wait_until(lambda: run.status().completed >= generation + 2, what="two more generations")
    # the most complex network always lands on the top level, so level 4 now exists
    assert max(cell(shell, "gn.Selection.get_all()")) == 4

    key = cell(shell, "gn.Selection.put_unevaluated(gn.Library.get(net.id))")
    assert key < 0 and cell(shell, f"gn.Selection.get_all()[{key}]") is net
    queued_at = run.status().completed
    wait_until(lambda: run.status().completed >= queued_at + 2, what="the queued net's generation")
    assert key not in cell(shell, "gn.Selection.get_all()")

    model = cell(shell, "net.model()")
    import torch

    assert isinstance(model, torch.nn.Module)
    x = shell.user_ns["task"].x_test[:64]
    assert torch.equal(model(x).argmax(1), net.predict(x))

    cell(shell, "run.stop(); run.join()")
    assert run.status().state == "stopped"
    assert cell(shell, "run.done()") is True


def test_import_gn_is_the_same_package(shell):
    cell(shell, "import gn")
    assert cell(shell, "gn.Selection.get_all()") == {}
    assert cell(shell, "gn.Selection") is gn.Selection
    assert cell(shell, "gn.example.seed_layers()")[0] == ("dense", [64, "relu"])
