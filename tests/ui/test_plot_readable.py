"""Plots people can read.

The archive's own colour range, whole-number levels, legends beside the data,
run boundaries in the history, one colour per layer type.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # render off-screen; must precede pyplot

import matplotlib.colors
import matplotlib.pyplot as plt
import pytest

from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core.network import Network
from galapagos_nao.ui import plot


def net(n_layers: int, val_acc: float) -> Network:
    return Network([("dense", [8, "relu"])] * n_layers, val_acc=val_acc, test_acc=val_acc)


def archive(nets: list[Network], measures: list[str], levels: int = 2) -> Selection:
    selection = Selection(parameters=Parameters())
    selection.parameters.put(selection, {"measures": measures, "complexity_levels": levels})
    selection.select(nets)
    return selection


def overlaps(figure, a, b) -> bool:
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    return a.get_window_extent(renderer).overlaps(b.get_window_extent(renderer))


@pytest.mark.parametrize("measures", [["layers"], ["layers", "params"]])
def test_archive_colours_span_the_archives_own_fitness_range(measures):
    figure = plot.archive(archive([net(1, 0.92), net(5, 0.975)], measures))
    data, colour_bar = figure.axes
    assert colour_bar.get_ylim() == pytest.approx((0.92, 0.975))
    if len(measures) == 2:
        norm = data.images[0].norm
        assert (norm.vmin, norm.vmax) == pytest.approx((0.92, 0.975))
    else:
        low, high = (patch.get_facecolor() for patch in data.patches)
        # On 0..1 both sat near the top of viridis; on the archive's range they are its ends.
        assert sum(abs(a - b) for a, b in zip(low, high, strict=True)) > 1.0, (low, high)
        assert data.get_ylim()[0] > 0.8  # and the heights differ visibly
    plt.close(figure)


def test_the_layers_axis_is_labelled_with_whole_numbers():
    # 5 layers in 2 levels: edges 2.5 and 5, i.e. 0-2 and 3-5 layers.
    figure = plot.archive(archive([net(1, 0.9), net(5, 0.95)], ["layers"]))
    labels = [t.get_text() for t in figure.axes[0].get_xticklabels()]
    assert labels == ["1\n0–2", "2\n3–5"]
    plt.close(figure)
    figure = plot.archive(archive([net(1, 0.9), net(3, 0.95)], ["layers", "params"], levels=4))
    labels = [t.get_text() for t in figure.axes[0].get_yticklabels()]
    assert labels == ["1\n0", "2\n1", "3\n2", "4\n3"]  # edges 0.75, 1.5, 2.25, 3
    plt.close(figure)


def test_the_archive_colour_bar_is_beside_the_data():
    figure = plot.archive(archive([net(1, 0.92), net(5, 0.975)], ["layers", "params"]))
    data, colour_bar = figure.axes
    assert not overlaps(figure, data, colour_bar)
    plt.close(figure)


def history_of_two_runs() -> Selection:
    selection = archive([], ["layers"])
    pools = [[net(1, 0.5)], [net(2, 0.7)], [net(3, 0.8)], [net(4, 0.9)], [net(4, 0.95)]]
    # A second run counts on from the archive's generation; its first entry says so.
    tasks = ["a", "a", "a", "b", "b"]
    for generation, nets in enumerate(pools):
        changes = selection.select(nets)
        selection.record_generation(
            generation,
            changes,
            evaluated=1,
            failed=0,
            seconds=2.0,
            first_of_run=generation in (0, 3),
            task=tasks[generation],
        )
    return selection


def test_history_marks_where_a_new_run_began():
    selection = history_of_two_runs()
    assert plot.run_starts(selection.history()) == [3]
    figure = plot.history(selection)
    by_generation, by_time = figure.axes[0], figure.axes[1]
    boundaries = [line for line in by_generation.lines if line.get_label() == "new run"]
    assert [line.get_xdata()[0] for line in boundaries] == [2.5]
    assert any(line.get_label() == "new run" for line in by_time.lines)
    switches = [line for line in by_generation.lines if line.get_label() == "task switch"]
    assert [line.get_xdata()[0] for line in switches] == [2.5]
    assert "b" in [text.get_text() for text in by_generation.texts]  # the task it moved to
    plt.close(figure)


def test_archive_marks_pinned_and_favored_cells():
    selection = history_of_two_runs()
    cell = next(iter(selection.elites()))
    selection.pin(cell)
    selection.favor(cell, 3)
    figure = plot.archive(selection)
    assert "P×3" in [text.get_text() for text in figure.axes[0].texts]
    plt.close(figure)


def test_history_legend_is_outside_the_lines():
    figure = plot.history(history_of_two_runs())
    for ax in figure.axes[:2]:
        legend = ax.get_legend()
        assert legend is not None
        labels = [t.get_text() for t in legend.get_texts()]
        assert labels == ["coverage", "best val_acc", "new run", "task switch", "QD-score"]
        assert not overlaps(figure, ax, legend)
    plt.close(figure)


def test_each_layer_type_keeps_its_colour_across_plots():
    def colours(layers) -> dict[str, tuple]:
        figure = plot.network(Network(layers))
        names = [t.get_text().split()[0] for t in figure.axes[0].texts]
        found = {
            name: matplotlib.colors.to_rgba(patch.get_edgecolor())
            for name, patch in zip(names, figure.axes[0].patches, strict=True)
        }
        plt.close(figure)
        return found

    first = colours([("dense", [16, "relu"]), ("dropout", [0.5])])
    second = colours([("batch_norm", []), ("dense", [16, "relu"]), ("activation", ["tanh"])])
    for name in ("input", "dense", "head"):
        assert first[name] == second[name], name
    assert len(set(second.values())) == len(second)  # different types, different colours
    assert plot.layer_colour("my_custom") == plot.layer_colour("my_custom")


def test_history_generation_ticks_are_whole_numbers():
    figure = plot.history(history_of_two_runs())
    ticks = figure.axes[0].get_xticks()
    assert all(float(t).is_integer() for t in ticks)
    plt.close(figure)
