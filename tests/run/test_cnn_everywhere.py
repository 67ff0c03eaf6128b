"""Everything that takes a network takes a CNN: runs, files, ONNX, replay, views, tasks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import galapagos_nao as gn
from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core import datasets, genome
from galapagos_nao.core.fingerprint import fingerprint
from galapagos_nao.run.api import Session
from galapagos_nao.run.session_journal import SessionJournal
from galapagos_nao.store.library import Library
from galapagos_nao.ui import display

CNN = [("conv2d", [4, 3, "relu"]), ("max_pool", [2]), ("conv2d", [8, 3, "relu"]), ("max_pool", [2])]
PATIENCE = 300


@pytest.fixture(scope="module")
def task(small_mnist):
    return datasets.subset(small_mnist, 300, 100, seed=0)


def _session() -> Session:
    parameters = Parameters()
    selection = Selection(parameters=parameters)
    session = Session(parameters=parameters, selection=selection, library=Library())
    parameters.put("orchestration", {"generation_size": 3, "workers": 1})  # journaled
    return session


@pytest.fixture(scope="module")
def evolved(task):
    """A steered two-generation CNN session: (session, its best network)."""
    session = _session()
    session.evolve(CNN, 1, task, seed=11).result(timeout=PATIENCE)
    cell, best = max(session.selection.elites().items(), key=lambda item: item[1].val_acc)
    session.selection.pin(cell)
    session.evolve(None, 1, task, seed=12).result(timeout=PATIENCE)
    return session, best


def test_a_cnn_evolves_and_its_children_keep_image_layers(evolved):
    session, best = evolved
    elites = session.selection.elites().values()
    assert all(net.val_acc is not None and net.val_acc > 0.2 for net in elites)  # chance is 0.1
    assert any(layer[0] == "conv2d" for net in elites for layer in net.layers)
    assert best.weights is not None and any(w.dim() == 4 for w in best.weights.values())


def test_a_cnn_file_loads_back_the_same_network(evolved, tmp_path, task):
    _, best = evolved
    loaded = gn.load(best.save(tmp_path / "cnn.safetensors"))
    assert fingerprint(loaded) == fingerprint(best)
    assert torch.equal(loaded.predict(task.x_test[:16]), best.predict(task.x_test[:16]))


def test_a_cnn_predicts_on_uint8_and_float_images_with_or_without_a_channel(evolved, small_mnist):
    _, best = evolved
    raw = small_mnist.x_test[:16]  # on the model's scale: the test split as the task holds it
    expected = best.predict(raw)
    images = torch.randint(0, 256, (16, 28, 28), dtype=torch.uint8)
    as_float = images.float() / 255
    by_uint8 = best.predict(images)
    for x in (images.unsqueeze(1), as_float, as_float.unsqueeze(1)):
        assert torch.equal(best.predict(x), by_uint8)
    assert expected.shape == (16,)


def test_a_cnn_exports_to_onnx_and_runs_the_same_in_onnxruntime(evolved, tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="needs the onnx extra")
    _, best = evolved
    path = best.to_onnx(tmp_path / "cnn.onnx")
    session = ort.InferenceSession(str(path))
    images = torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8).float() / 255
    (name,) = [i.name for i in session.get_inputs()]
    logits = session.run(None, {name: images.numpy()})[0]
    torch.testing.assert_close(torch.from_numpy(logits), best.model()(images), atol=1e-4, rtol=1e-4)


def test_a_cnn_session_replays_exactly(evolved, task):
    session, _ = evolved
    result = SessionJournal(session).replay(task)
    assert result.divergences == []
    archive = {cell: fingerprint(net) for cell, net in session.selection.elites().items()}
    assert result.archive() == archive


def test_the_views_show_each_layers_shape(evolved):
    _, best = evolved
    rows = display.layer_rows(best)
    shapes = genome.layer_shapes(best.layers, best.input_shape)
    assert [row.out_shape for row in rows[:-1]] == shapes
    assert rows[1].shape.startswith("(batch, ") and len(rows[1].out_shape) == 3
    for view in (display.network_text(best), display.network_html(best)):
        assert "conv2d" in view and "(batch, 4, 28, 28)" in view


def test_plot_network_labels_every_layer_with_its_shape(evolved):
    pytest.importorskip("matplotlib")
    _, best = evolved
    figure = gn.plot.network(best)
    labels = [text.get_text() for text in figure.axes[0].texts]
    shapes = genome.layer_shapes(best.layers, best.input_shape)
    for shape in shapes[1:]:
        assert any(f"(batch, {', '.join(map(str, shape))})" in label for label in labels)


def test_from_tensors_keeps_image_shaped_inputs_as_images(small_mnist):
    x = small_mnist.x_train[:200].reshape(200, 28, 28)
    y = small_mnist.y_train[:200]
    task = datasets.from_tensors(x, y, x[:50], y[:50])
    assert task.input_shape == (28, 28)
    assert genome.layer_shapes(CNN, task.input_shape)[0] == (1, 28, 28)
    session = _session()
    session.evolve(CNN, 1, task, seed=3).result(timeout=PATIENCE)
    assert session.selection.elites()


def test_a_conv_genome_on_flat_features_is_refused_before_anything_starts():
    rng = np.random.default_rng(0)
    x, y = torch.from_numpy(rng.normal(size=(120, 16)).astype("float32")), torch.arange(120) % 3
    flat = datasets.from_tensors(x, y, x[:30], y[:30])
    session = _session()
    with pytest.raises(ValueError, match=r"layers\[0\] \('conv2d'.*samples are flat, \(16,\)"):
        session.evolve(CNN, 1, flat)
    assert session.selection.elites() == {}
    assert [e.action for e in session.journal.entries()] == ["Parameters.put"]  # no run began
