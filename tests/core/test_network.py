from __future__ import annotations

import math
import uuid

import pytest
import torch
from torch import nn

from galapagos_nao.config.settings import TrainingSettings
from galapagos_nao.core import datasets, inheritance, network
from galapagos_nao.core.device_data import DeviceDataCache
from galapagos_nao.core.network import Network
from galapagos_nao.core.training import fit
from galapagos_nao.core.transform import Standardize
from galapagos_nao.example import seed_layers


def test_build_adds_input_adapter_named_layer_blocks_and_head():
    model = network.build(seed_layers(), (1, 28, 28), 10)
    names = [name for name, _ in model.named_children()]
    assert names == ["input", *(f"layer{i}" for i in range(8)), "head"]
    # The input block: the (stateless) input transform, then flatten.
    assert [type(m) for m in model.input] == [Standardize, nn.Flatten]
    assert model.head.out_features == 10
    out = model.eval()(torch.zeros(5, 1, 28, 28))
    assert out.shape == (5, 10)


def test_build_handles_an_empty_genome_as_a_linear_classifier():
    model = network.build([], (3, 4), 7)
    assert model(torch.zeros(2, 3, 4)).shape == (2, 7)
    assert network.count_parameters(model) == 12 * 7 + 7


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"input_shape": (0, 28)}, "input_shape[0]"),
        ({"input_shape": ()}, "input_shape"),
        ({"n_classes": 1}, "n_classes"),
        ({"layers": [("dense", [3])]}, "layers[0]"),
    ],
)
def test_build_and_network_reject_bad_arguments(kwargs, fragment):
    args = {"layers": seed_layers(), "input_shape": (1, 28, 28), "n_classes": 10, **kwargs}
    with pytest.raises(ValueError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        network.build(args["layers"], args["input_shape"], args["n_classes"])
    with pytest.raises(ValueError):
        Network(args["layers"], input_shape=args["input_shape"], n_classes=args["n_classes"])


def test_network_ids_are_fresh_uuid4_strings():
    a, b = Network(seed_layers()), Network(seed_layers())
    assert a.id != b.id
    assert uuid.UUID(a.id).version == 4
    assert a != b and a == a


def test_network_is_immutable_and_its_layers_cannot_be_changed_through_genome():
    net = Network(seed_layers())
    with pytest.raises(AttributeError):
        net.test_acc = 1.0  # type: ignore[misc]
    editable = net.genome
    editable[0][1][0] = 1
    assert net.layers[0] == ("dense", (64, "relu"))


def test_repr_reads_like_the_seed():
    net = Network([("dense", [64, "softrelu"]), ("batch_norm", [])], test_acc=0.95531)
    layers = "[('dense', [64, 'softrelu']), ('batch_norm', [])]"
    assert repr(net) == f"Network(id={net.id!r}, layers={layers}, test_acc=0.9553)"


def test_model_returns_fresh_modules_carrying_a_copy_of_the_weights():
    trained = network.build(seed_layers())
    weights = trained.state_dict()
    net = Network(seed_layers(), weights=weights)
    first, second = net.model(), net.model()
    assert first is not second
    for name, tensor in first.state_dict().items():
        assert torch.equal(tensor, weights[name])
    with torch.no_grad():
        first.head.weight.add_(1.0)
    assert torch.equal(net.model().head.weight, weights["head.weight"])


def test_predict_returns_class_indices_and_rejects_wrong_shapes():
    net = Network(seed_layers(), weights=network.build(seed_layers()).state_dict())
    x = torch.randn(6, 1, 28, 28)
    predictions = net.predict(x)
    assert predictions.shape == (6,) and predictions.dtype == torch.int64
    assert torch.equal(predictions, net.model()(x).argmax(1))
    with pytest.raises(ValueError, match="shape"):
        net.predict(torch.zeros(6, 10))
    with pytest.raises(ValueError, match="torch.Tensor"):
        net.predict([[0.0]])


def test_inherit_weights_copies_matching_layers_and_the_shared_part_of_resized_ones():
    parent_layers = [("dense", [16, "relu"]), ("dense", [8, "relu"])]
    parent = network.build(parent_layers, (4,), 3)
    child_layers = [("dense", [16, "relu"]), ("dense", [9, "relu"]), ("dense", [8, "relu"])]
    child = network.build(child_layers, (4,), 3)
    fresh = child.layer1[0].weight.detach().clone()
    copied = inheritance.inherit_weights(child, parent.state_dict(), origins=(0, 1, None))
    # layer0 and the head (8 -> 3 in both) whole, layer1 (8 -> 9 units) in part; layer2 is new
    assert copied == 6
    assert torch.equal(child.layer0[0].weight, parent.layer0[0].weight)
    assert torch.equal(child.head.weight, parent.head.weight)
    assert torch.equal(child.layer1[0].weight[:8], parent.layer1[0].weight)
    assert torch.equal(child.layer1[0].bias[:8], parent.layer1[0].bias)
    assert torch.equal(child.layer1[0].weight[8], fresh[8])  # the new unit keeps its init
    assert not torch.equal(child.layer2[0].weight[:, :8], parent.layer1[0].weight[:, :8])


def test_a_conv_layer_that_gained_channels_starts_from_its_parents_kernels():
    parent = network.build([("conv2d", [4, 3, "relu"]), ("max_pool", [2])], (1, 8, 8), 3)
    child = network.build([("conv2d", [6, 5, "relu"]), ("max_pool", [2])], (1, 8, 8), 3)
    fresh = child.layer0[0].weight.detach().clone()
    inheritance.inherit_weights(child, parent.state_dict(), origins=(0, 1))
    kernels = child.layer0[0].weight
    # The 3x3 kernels sit in the centre of the 5x5 ones; channels 4 and 5 are new.
    assert torch.equal(kernels[:4, :, 1:4, 1:4], parent.layer0[0].weight)
    assert torch.equal(kernels[:4, :, 0], fresh[:4, :, 0])
    assert torch.equal(kernels[4:], fresh[4:])
    assert torch.equal(child.layer0[0].bias[:4], parent.layer0[0].bias)


def test_a_conv_layer_that_lost_channels_keeps_the_parents_first_ones():
    parent = network.build([("conv2d", [6, 3, "relu"]), ("dense", [5, "relu"])], (1, 6, 6), 3)
    child = network.build([("conv2d", [2, 3, "relu"]), ("dense", [5, "relu"])], (1, 6, 6), 3)
    inheritance.inherit_weights(child, parent.state_dict(), origins=(0, 1))
    assert torch.equal(child.layer0[0].weight, parent.layer0[0].weight[:2])
    # The dense layer after it sees 2*36 features instead of 6*36: the shared columns carry over.
    assert torch.equal(child.layer1[0].weight, parent.layer1[0].weight[:, :72])


def test_seed_init_is_reproducible():
    a, b = network.build(seed_layers()), network.build(seed_layers())
    network.seed_init(a, torch.Generator().manual_seed(7))
    network.seed_init(b, torch.Generator().manual_seed(7))
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name


def test_fit_trains_batch_norm_when_the_last_batch_would_hold_one_sample(small_mnist):
    # 65 training samples in batches of 64: a last batch of one cannot train batch_norm.
    task = datasets.subset(small_mnist, 72, 20, seed=0)
    data = DeviceDataCache().get(task, torch.device("cpu"), 0.1)
    assert data.x_train.shape[0] % 64 == 1
    layers = [("dense", [16, "relu"]), ("batch_norm", [])]
    result = fit(layers, data, TrainingSettings(batch_size=64, epochs=2).train_settings(), seed=0)
    assert math.isfinite(result.loss) and 0.0 <= result.train_acc <= 1.0
