"""``gn.plot.tasks``: R as a heatmap and ACC after each task."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # render off-screen; must precede pyplot

import matplotlib.pyplot as plt
import pytest

import galapagos_nao as gn
from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core import datasets
from galapagos_nao.core.continual import TaskMetrics
from galapagos_nao.ui import plot_tasks

METRICS = TaskMetrics(
    ("a", "b", "c"), (0, 1, 2), ((0.9, 0.1, 0.0), (0.6, 0.8, 0.1), (0.5, 0.4, 0.7))
)


def test_tasks_draws_r_with_its_values_and_acc_over_time():
    figure = plot_tasks.tasks(METRICS)
    heat, line, *_ = figure.axes
    assert heat.images[0].get_array().shape == (3, 3)
    assert "0.90" in [text.get_text() for text in heat.texts]
    assert list(line.lines[0].get_ydata()) == pytest.approx(METRICS.acc_history)
    assert "BWT -0.400" in line.get_title()
    assert f"final ACC {METRICS.acc:.3f}" in line.get_title()
    # Only the learned triangle is coloured: task c was not learned after task a.
    drawn = heat.images[0].get_array()
    assert drawn.mask[0][1] and drawn.mask[0][2] and drawn.mask[1][2]
    assert not drawn.mask[2].any() and drawn[1][0] == pytest.approx(0.6)
    assert "0.10" not in [text.get_text() for text in heat.texts]  # R[0][1], not learned yet
    again = plot_tasks.tasks(METRICS, axes=(heat, line))  # redraws in place, one colour bar
    assert again is figure and len(figure.axes) == 3
    plt.close(figure)


def test_task_metrics_show_rounded():
    assert repr(METRICS) == (
        "TaskMetrics(ACC 0.533, BWT -0.400, tasks learned 3 of 3, "
        "R=[[0.900, 0.100, 0.000], [0.600, 0.800, 0.100], [0.500, 0.400, 0.700]])"
    )


def test_gn_plot_tasks_draws_the_shared_selections_run_and_refuses_a_run_without_stream(
    small_mnist,
):
    stream = datasets.split_mnist(datasets.subset(small_mnist, 300, 100, seed=0))[:2]
    selection = Selection(parameters=Parameters())
    selection.parameters.put(gn.orchestration, {"generation_size": 2, "workers": 1})
    selection.parameters.put(gn.training, {"batch_size": 25, "device": "cpu"})

    def stop(report):
        if report.generation == 1:
            report.run.stop()

    run = gn.evolve_continual(
        [("dense", [8, "relu"])],
        selection=selection,
        tasks=stream,
        generations_per_task=1,
        seed=0,
        hooks=[stop],
    )
    assert run.join(60)
    figure = gn.plot.tasks(selection)
    assert figure.axes[0].images[0].get_array().shape == (2, 2)
    plt.close(figure)
    plain = gn.evolve([("dense", [8, "relu"])], 1, stream[0], selection=selection, seed=0)
    assert plain.join(60)
    with pytest.raises(ValueError, match="needs a run on a task stream"):
        gn.plot.tasks(selection)
