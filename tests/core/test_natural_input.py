"""Trained networks take the task's data as users hold it: 0..1 or uint8 images for MNIST."""

from __future__ import annotations

import pytest
import torch

from galapagos_nao.core import datasets
from galapagos_nao.core.datasets import MNIST_MEAN, MNIST_STD, MNIST_TRANSFORM
from galapagos_nao.core.network import Network
from galapagos_nao.core.transform import IDENTITY, InputTransform

LAYERS = [("dense", [32, "relu"]), ("batch_norm", []), ("dense", [16, "tanh"])]


def raw_images(task: datasets.Task) -> tuple[torch.Tensor, torch.Tensor]:
    """The test images as users hold them: 0..1 floats (ToTensor) and uint8 pixels."""
    floats = (task.x_test * MNIST_STD + MNIST_MEAN).clamp(0.0, 1.0)
    pixels = (floats * 255).round().to(torch.uint8)
    return floats, pixels


def accuracy(predictions: torch.Tensor, labels: torch.Tensor) -> float:
    return (predictions == labels).float().mean().item()


@pytest.fixture(scope="module")
def trained(small_mnist, train_network) -> Network:
    return train_network(small_mnist, LAYERS, seed=3)


def test_mnist_tasks_record_their_transform_and_subsets_keep_it(mnist_task, small_mnist):
    assert mnist_task.input_transform == MNIST_TRANSFORM
    assert small_mnist.input_transform == MNIST_TRANSFORM
    floats, pixels = raw_images(small_mnist)
    # The transform reproduces the stored split bit for bit from the uint8 pixels.
    assert torch.equal(MNIST_TRANSFORM.apply(pixels), small_mnist.x_test)


def test_user_tensors_are_taken_as_given():
    task = datasets.from_tensors(
        torch.rand(20, 3), torch.arange(20) % 2, torch.rand(4, 3), torch.arange(4) % 2
    )
    assert task.input_transform == IDENTITY


def test_predict_on_raw_images_reproduces_the_recorded_test_accuracy(trained, small_mnist):
    floats, pixels = raw_images(small_mnist)
    assert trained.test_acc is not None and trained.test_acc > 0.8
    for x in (floats, pixels):
        measured = accuracy(trained.predict(x), small_mnist.y_test)
        assert measured == pytest.approx(trained.test_acc, abs=0.005), x.dtype


def test_model_takes_raw_images_too(trained, small_mnist):
    floats, pixels = raw_images(small_mnist)
    model = trained.model()
    assert list(dict(model.named_children()))[0] == "input"
    with torch.inference_mode():
        for x in (floats, pixels):
            measured = accuracy(model(x).argmax(1), small_mnist.y_test)
            assert measured == pytest.approx(trained.test_acc, abs=0.005), x.dtype


def test_a_record_without_a_transform_expects_standardized_inputs(trained, small_mnist):
    # What records saved before transforms were recorded mean: today's behaviour.
    old = Network(LAYERS, weights=trained.weights, test_acc=trained.test_acc)
    assert old.input_transform == IDENTITY
    measured = accuracy(old.predict(small_mnist.x_test), small_mnist.y_test)
    assert measured == pytest.approx(trained.test_acc, abs=0.005)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"std": 0.0}, "std must be > 0, got 0.0"),
        ({"mean": float("nan")}, "mean must be a finite number"),
        ({"mean": "0.1"}, "mean must be a finite number, got"),
        ({"scale_uint8": 1}, "scale_uint8 must be a bool"),
    ],
)
def test_bad_transforms_name_the_field(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        InputTransform(**kwargs)


def test_predict_rejects_inputs_that_are_not_real_numbers(trained):
    with pytest.raises(ValueError, match="dtype torch.bool"):
        trained.predict(torch.zeros(2, 1, 28, 28, dtype=torch.bool))
    with pytest.raises(ValueError, match="input_transform must be an InputTransform"):
        Network(LAYERS, input_transform={"mean": 0.1})


# -- editing a trained network ------------------------------------------------------


def test_with_layers_derives_a_new_unevaluated_network_keeping_matching_weights(trained):
    edited = trained.with_layers(trained.genome + [("dense", [8, "relu"])])
    assert edited.id != trained.id and edited.parent_id == trained.id
    assert (edited.test_acc, edited.val_acc, edited.n_params) == (None, None, None)
    assert edited.input_transform == trained.input_transform
    assert edited.layers[-1] == ("dense", (8, "relu"))
    # Every layer that survived keeps its trained tensors; the new layer and the
    # head (now 8 -> 10 instead of 16 -> 10) are fresh.
    for name, tensor in trained.weights.items():
        if not name.startswith("head."):
            assert torch.equal(edited.weights[name], tensor), name
    assert edited.weights["head.weight"].shape == (10, 8)
    edited.model()  # loads without a size mismatch


def test_with_layers_follows_layers_across_an_insertion(trained):
    # A layer inserted in front shifts the others by one; each keeps its weights.
    edited = trained.with_layers([("dropout", [0.1]), *trained.genome])
    assert torch.equal(edited.weights["layer2.0.weight"], trained.weights["layer1.0.weight"])
    assert torch.equal(edited.weights["layer3.0.weight"], trained.weights["layer2.0.weight"])


def test_with_layers_rejects_a_bad_genome_naming_the_layer(trained):
    with pytest.raises(ValueError, match=r"layers\[1\].*units"):
        trained.with_layers([("dense", [8, "relu"]), ("dense", [0, "relu"])])


def test_replace_refuses_architecture_changes_on_a_measured_network(trained):
    for change in (
        {"layers": trained.genome + [("dense", [8, "relu"])]},
        {"n_classes": 3},
        {"input_shape": (784,)},
    ):
        with pytest.raises(ValueError, match="with_layers"):
            trained.replace(**change)
    # Changes that leave the network the same are fine, as on an unmeasured record.
    assert trained.replace(generation=7, layers=trained.genome).generation == 7
    fresh = Network(LAYERS)
    assert fresh.replace(layers=[("dense", [4, "relu"])]).layers == (("dense", (4, "relu")),)
