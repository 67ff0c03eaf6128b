"""Bad input gets a ValueError/TypeError naming the argument, and changes nothing.

Each case was found by fuzzing (issue 11) raising an unclear error or none.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from galapagos_nao.core import datasets, genome
from galapagos_nao.core.network import Network


def _task_parts(n_train=8, features=3, labels=None):
    x = torch.randn(n_train, features)
    y = torch.tensor([i % 2 for i in range(n_train)]) if labels is None else labels
    return x, y, torch.randn(4, features), torch.tensor([0, 1, 0, 1])


def test_from_tensors_refuses_samples_without_features():
    x, y, xt, yt = _task_parts(features=0)
    with pytest.raises(ValueError, match=r"x_train.*no features"):
        datasets.from_tensors(x, y, xt, yt)


def test_from_tensors_refuses_a_single_training_sample():
    x, y, xt, yt = _task_parts(n_train=1, labels=torch.tensor([1]))
    with pytest.raises(ValueError, match=r"x_train has 1 sample.*at least 2"):
        datasets.from_tensors(x, y, xt, yt)


def test_from_tensors_refuses_a_billion_classes():
    x, y, xt, yt = _task_parts(labels=torch.tensor([0, 1, 0, 1, 0, 1, 0, 10**9]))
    with pytest.raises(ValueError, match=r"y_train\[7\] = 1000000000.*at most"):
        datasets.from_tensors(x, y, xt, yt)
    with pytest.raises(ValueError, match=r"n_classes must be at most"):
        datasets.from_tensors(*_task_parts(), n_classes=10**9)


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32])
def test_from_tensors_takes_unsigned_labels(dtype):
    x, y, xt, yt = _task_parts()
    task = datasets.from_tensors(x, y.numpy().astype(dtype), xt, yt.numpy().astype(dtype))
    assert task.n_classes == 2 and task.y_train.dtype == torch.int64


@pytest.mark.parametrize("alpha", [3.5e38, 1e300, 10**400])
def test_a_leaky_relu_alpha_beyond_float32_is_refused(alpha):
    with pytest.raises(ValueError, match=r"layers\[0\] \('leaky_relu'\).*alpha"):
        genome.validate([("leaky_relu", [alpha])])


def test_predict_on_an_empty_batch_names_the_batch():
    net = Network([("dense", [4, "relu"])], input_shape=(3,), n_classes=2)
    assert net.predict(torch.zeros(0, 3)).shape == (0,)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 3\)"):
        net.predict(torch.zeros(0, 5))


@pytest.mark.parametrize("weights", ["junk", 3, {"a": "b"}, {1: torch.zeros(1)}])
def test_network_weights_must_be_a_dict_of_tensors(weights):
    with pytest.raises((TypeError, ValueError), match="weights"):
        Network([("dense", [4, "relu"])], weights=weights)


def test_register_layer_takes_a_generator_of_specs():
    def build(params, n):
        return [], n

    registered = genome.register_layer("test_generator_specs", (s for s in [genome.UNITS]), build)
    assert [p.name for p in registered.params] == ["units"]
    with pytest.raises(ValueError, match=r"expects 1 params"):
        genome.validate([("test_generator_specs", [])])


def test_register_layer_refuses_params_that_are_not_a_list():
    with pytest.raises(TypeError, match="params must be"):
        genome.register_layer("test_not_a_list", 3, lambda p, n: ([], n))
    assert "test_not_a_list" not in genome.layer_types()
