"""Saved networks and their ONNX graphs keep the input transform; old files still load."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save as save_tensors
from torch import nn

import galapagos_nao as gn
from galapagos_nao.core import genome
from galapagos_nao.core.datasets import MNIST_MEAN, MNIST_STD, MNIST_TRANSFORM
from galapagos_nao.core.network import Network
from galapagos_nao.core.transform import IDENTITY
from galapagos_nao.store import codec
from galapagos_nao.store.layout import DIGEST_KEY, seal
from galapagos_nao.store.persistence import CorruptFileError

LAYERS = [("dense", [32, "relu"]), ("dropout", [0.2])]


@pytest.fixture(scope="module")
def trained(small_mnist, train_network) -> Network:
    return train_network(small_mnist, LAYERS, seed=5)


def raw_images(task) -> tuple[torch.Tensor, torch.Tensor]:
    floats = (task.x_test * MNIST_STD + MNIST_MEAN).clamp(0.0, 1.0)
    return floats, (floats * 255).round().to(torch.uint8)


def accuracy(predictions, labels) -> float:
    return float((torch.as_tensor(predictions) == labels).float().mean())


def test_a_loaded_network_takes_raw_images(trained, small_mnist, tmp_path):
    loaded = gn.load(trained.save(tmp_path / "net.safetensors"))
    assert loaded.input_transform == MNIST_TRANSFORM
    for x in raw_images(small_mnist):
        measured = accuracy(loaded.predict(x), small_mnist.y_test)
        assert measured == pytest.approx(trained.test_acc, abs=0.005), x.dtype
        with torch.inference_mode():
            logits = loaded.model()(x)
        assert accuracy(logits.argmax(1), small_mnist.y_test) == measured


def old_format_bytes(net: Network) -> bytes:
    """A file as the code before input transforms wrote it: no ``input_transform`` key."""
    weights = {name: tensor.contiguous() for name, tensor in net.weights.items()}
    record = {
        "layers": [[type_name, list(params)] for type_name, params in net.layers],
        "input_shape": list(net.input_shape),
        "n_classes": net.n_classes,
        "id": net.id,
        "test_acc": net.test_acc,
        "val_acc": net.val_acc,
        "train_acc": net.train_acc,
        "loss": net.loss,
        "n_params": net.n_params,
        "parent_id": None,
        "generation": 2,
        "mutations": [],
    }
    metadata = {
        "format": "galapagos_nao.core.network",
        "version": "1",
        "network": json.dumps(record),
        "has_weights": "1",
        "weights_sha256": codec.weights_digest(weights),
    }
    return bytes(save_tensors(weights, metadata=metadata))


def test_an_old_file_without_a_transform_loads_and_expects_standardized_inputs(
    trained, small_mnist, tmp_path
):
    path = tmp_path / "old.safetensors"
    path.write_bytes(old_format_bytes(trained))
    old = gn.upgrade(path)  # rewritten in place as version 2
    assert gn.load(path).id == old.id
    assert old.input_transform == IDENTITY
    assert (old.id, old.layers, old.generation) == (trained.id, trained.layers, 2)
    measured = accuracy(old.predict(small_mnist.x_test), small_mnist.y_test)
    assert measured == pytest.approx(trained.test_acc, abs=0.005)
    # Saved again, it stays the identity: nothing guesses a transform it never had.
    assert gn.load(old.save(tmp_path / "again.safetensors")).input_transform == IDENTITY


def resealed(data: bytes) -> bytes:
    """``data`` with its whole-file digest recomputed, as a forger who knows the format would."""
    header_end = 8 + int.from_bytes(data[:8], "little")
    digest = json.loads(data[8:header_end])["__metadata__"][DIGEST_KEY]
    return seal(data.replace(digest.encode(), b"0" * 64, 1), header_end)


def test_a_damaged_transform_is_reported_as_a_corrupt_file(trained):
    data = codec.to_bytes(trained)
    damaged = data.replace(b'\\"std\\": 0.3081', b'\\"std\\": -1.000')
    assert damaged != data
    with pytest.raises(CorruptFileError, match="does not match its SHA-256 digest"):
        codec.from_bytes(damaged, "net.safetensors")
    # Even with a digest that matches, the transform itself is checked.
    with pytest.raises(CorruptFileError, match="std must be > 0"):
        codec.from_bytes(resealed(damaged), "net.safetensors")


def test_onnx_graph_takes_raw_images(trained, small_mnist, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    path = trained.to_onnx(tmp_path / "net.onnx")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    floats, _ = raw_images(small_mnist)
    (logits,) = session.run(["logits"], {"input": floats.numpy()})
    measured = accuracy(logits.argmax(1), small_mnist.y_test)
    assert measured == pytest.approx(trained.test_acc, abs=0.005)
    with torch.inference_mode():
        expected = trained.model()(floats).numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)


def _twice(params, in_features):
    return [nn.Linear(in_features, 2 * in_features)], 2 * in_features


def test_a_layer_type_this_process_lacks_is_named_with_how_to_register_it(tmp_path):
    genome.register_layer("test_twice", [], _twice)
    path = Network([("test_twice", []), ("dense", [8, "relu"])], input_shape=(3,)).save(
        tmp_path / "custom.safetensors"
    )
    assert gn.load(path).layers[0] == ("test_twice", ())
    # A fresh process, as a user reopening the file in a new session, has not registered it.
    script = (
        "import sys, galapagos_nao as gn\n"
        "try:\n    gn.load(sys.argv[1])\n"
        "except gn.persistence.UnknownLayerError as error:\n"
        "    print(type(error).__mro__[1].__name__, error)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.startswith("CorruptFileError ")
    assert "layers[0] has layer type 'test_twice', which is not registered" in done.stdout
    assert "gn.register_layer('test_twice', params, build)" in done.stdout
