from __future__ import annotations

import io
import sys

import matplotlib

matplotlib.use("Agg")  # render off-screen; must precede pyplot

import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pytest

from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core import measures
from galapagos_nao.core.network import Network
from galapagos_nao.ui import plot

THIRD_MEASURE = "test_plot.dropouts"
if THIRD_MEASURE not in measures.measure_names():
    measures.register_measure(
        THIRD_MEASURE,
        lambda n: sum(t == "dropout" for t, _ in n.layers),
        lambda values, levels: [
            max(values, default=0.0) * i / levels for i in range(1, levels + 1)
        ],
    )


def net(n_layers: int, val_acc: float, n_params: int) -> Network:
    # A real genome with exactly n_params (the archive checks the count): one-unit layers
    # after an input of the remaining features, 2 classes.
    shape = (n_params - 2 * n_layers - 3,)
    layers = [("dense", [1, "relu"])] * n_layers
    return Network(
        layers, input_shape=shape, n_classes=2, val_acc=val_acc, test_acc=val_acc, n_params=n_params
    )


def pixels(figure) -> np.ndarray:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=60)
    plt.close(figure)
    buffer.seek(0)
    return matplotlib.image.imread(buffer, format="png")


def assert_non_trivial(image: np.ndarray) -> None:
    rgb = image[..., :3]
    assert rgb.std() > 0.05  # not a blank canvas
    colours = np.unique((rgb * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 20  # text, lines and fills, not one flat colour


def archive_of(kind: str, measure_names: list[str]) -> Selection:
    selection = Selection(parameters=Parameters())
    selection.parameters.put(
        selection,
        {"measures": measure_names, "measure_levels": {"params": 2}, "measure_ranges": {}},
    )
    nets = {
        "empty": [],
        "one": [net(4, 0.7, 1000)],
        "full": [net(1, 0.5, 12), net(2, 0.6, 1000), net(4, 0.7, 12), net(3, 0.8, 1000)],
    }[kind]
    selection.select(nets)
    return selection


@pytest.mark.parametrize("measure_names", [["layers"], ["layers", "params"]])
@pytest.mark.parametrize("kind", ["empty", "one", "full"])
def test_archive_renders_a_non_trivial_image(kind, measure_names):
    selection = archive_of(kind, measure_names)
    if kind == "full":
        assert selection.stats().coverage == 1.0
    figure = plot.archive(selection)
    assert figure.axes
    assert_non_trivial(pixels(figure))


def test_full_and_empty_archives_draw_differently():
    empty = pixels(plot.archive(archive_of("empty", ["layers", "params"])))
    full = pixels(plot.archive(archive_of("full", ["layers", "params"])))
    assert empty.shape == full.shape and np.abs(empty - full).mean() > 0.01


def test_archive_heatmap_puts_each_elite_in_its_cell():
    figure = plot.archive(archive_of("full", ["layers", "params"]))
    image = figure.axes[0].images[0].get_array()
    # rows: layers levels, columns: params levels; values by hand from archive_of
    assert image.tolist() == [[0.5, 0.6], [0.7, 0.8]]
    plt.close(figure)


def test_archive_bars_show_fitness_per_level():
    figure = plot.archive(archive_of("full", ["layers"]))
    heights = [patch.get_height() for patch in figure.axes[0].patches]
    assert heights == [0.6, 0.8]  # best of levels 1 and 2
    plt.close(figure)


def test_history_renders_empty_and_filled():
    selection = archive_of("empty", ["layers"])
    assert_non_trivial(pixels(plot.history(selection)))
    for generation, nets in enumerate([[net(1, 0.5, 12)], [net(4, 0.7, 12)], [net(4, 0.9, 12)]]):
        changes = selection.select(nets)
        selection.record_generation(
            generation, changes, evaluated=1, failed=0, seconds=1.0 + generation
        )
    figure = plot.history(selection)
    assert len(figure.axes) == 4  # two panels, each with its QD-score twin
    qd = figure.axes[2].lines[0].get_ydata()
    assert list(qd) == pytest.approx([0.5, 1.2, 1.4])
    assert_non_trivial(pixels(figure))


def test_passing_the_same_axes_refreshes_in_place():
    selection = archive_of("full", ["layers", "params"])
    figure, ax = plt.subplots()
    assert plot.archive(selection, ax=ax) is figure
    assert plot.archive(selection, ax=ax) is figure
    assert len(figure.axes) == 1 and len(ax.images) == 1
    selection.record_generation(0, [], evaluated=0, failed=0, seconds=1.0)
    plot.history(selection, ax=ax)
    plot.history(selection, ax=ax, x="time")
    assert len(figure.axes) == 2  # the axes and one QD-score twin, not one per call
    assert_non_trivial(pixels(figure))


def test_network_plot_draws_every_layer():
    layers = [("dense", [16, "relu"]), ("dropout", [0.5]), ("batch_norm", [])]
    figure = plot.network(Network(layers))
    texts = [t.get_text() for t in figure.axes[0].texts]
    assert len(texts) == len(layers) + 2
    assert texts[1].startswith("dense 16, relu → (batch, 16)") and "12,560 params" in texts[1]
    assert_non_trivial(pixels(figure))


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (
            lambda s: plot.archive(s, metric="loss"),
            r"metric must be one of \['val_acc', 'test_acc'\], got 'loss'",
        ),
        (
            lambda s: plot.history(s, x="epoch"),
            r"x must be one of \['generation', 'time'\], got 'epoch'",
        ),
        (lambda s: plot.network("net"), "net must be a Network, got 'net'"),
    ],
)
def test_bad_arguments_are_named(call, fragment):
    with pytest.raises(ValueError, match=fragment):
        call(archive_of("one", ["layers"]))


def test_more_than_two_measures_is_refused():
    selection = archive_of("one", ["layers", "params", THIRD_MEASURE])
    with pytest.raises(ValueError, match="one or two measures"):
        plot.archive(selection)


def test_missing_matplotlib_names_the_extra(monkeypatch):
    # matplotlib is installed here, so its absence is simulated: the one fault we cannot produce.
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"galapagos-nao\[plot\]"):
        plot.archive(archive_of("one", ["layers"]))
