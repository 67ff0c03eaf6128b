"""Image genomes: shapes reach every layer, convolutions and pools build, children stay valid."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import galapagos_nao as gn
from galapagos_nao.core import evolution, genome, measures, network
from galapagos_nao.core.crossover import crossover, crossover_networks
from galapagos_nao.core.network import Network

MNIST = (1, 28, 28)
CONV = [
    ("conv2d", [8, 3, "relu"]),
    ("max_pool", [2]),
    ("conv2d", [16, 5, "relu"]),
    ("avg_pool", [2]),
    ("batch_norm", []),
    ("dense", [32, "relu"]),
    ("dropout", [0.25]),
]
CONV_TYPES = {
    "conv2d": [8, 3, "relu"],
    "max_pool": [2],
    "avg_pool": [2],
    "dense": [64, "none"],
    "dropout": [0.5],
    "activation": ["relu"],
}


def test_each_layer_sees_the_shape_its_input_has():
    shapes = genome.layer_shapes(CONV, MNIST)
    assert shapes == [
        (1, 28, 28),
        (8, 28, 28),
        (8, 14, 14),
        (16, 14, 14),
        (16, 7, 7),
        (16, 7, 7),
        (32,),
        (32,),
    ]


def test_a_flat_genome_sees_flat_features_as_before():
    assert genome.layer_shapes([("dense", [64, "relu"])], MNIST) == [(784,), (64,)]


@pytest.mark.parametrize(
    ("layers", "shape", "named", "hint"),
    [
        (
            [("dense", [16, "relu"]), ("conv2d", [4, 3, "relu"])],
            MNIST,
            r"layers\[1\] \('conv2d'",
            r"layers\[0\] \('dense'\) made it flat: place it before layer 0",
        ),
        (
            [("max_pool", [3])] * 4,
            MNIST,
            r"layers\[3\] \('max_pool', \[3\]\)",
            "pooling 1×1 pixels by 3 leaves less than one pixel",
        ),
        (
            [("conv2d", [4, 3, "relu"])],
            (16,),
            r"layers\[0\] \('conv2d'",
            r"this task's samples are flat, \(16,\)",
        ),
        (
            [("flatten", []), ("avg_pool", [2])],
            MNIST,
            r"layers\[1\] \('avg_pool'",
            r"layers\[0\] \('flatten'\) made it flat",
        ),
    ],
)
def test_validate_names_the_layer_that_makes_a_shape_impossible(layers, shape, named, hint):
    snapshot = [(t, list(p)) for t, p in layers]
    with pytest.raises(genome.ShapeError, match=named) as caught:
        gn.validate(layers, shape)
    assert caught.match(hint)
    assert layers == snapshot  # nothing changed
    with pytest.raises(ValueError, match=named):
        Network(layers, input_shape=shape)


def test_without_a_shape_validate_still_refuses_a_convolution_after_a_flatten():
    with pytest.raises(genome.ShapeError, match=r"layers\[1\] \('conv2d'\).*layers\[0\]"):
        gn.validate([("dense", [8, "relu"]), ("conv2d", [4, 3, "relu"])])
    assert gn.validate(CONV) == [(t, list(p)) for t, p in CONV]


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        (("conv2d", [8, 4, "relu"]), r"params\[1\] \(kernel_size\) must be an odd int"),
        (("conv2d", [8, 9, "relu"]), r"params\[1\] \(kernel_size\)"),
        (("conv2d", [0, 3, "relu"]), r"params\[0\] \(channels\) must be an int >= 1"),
        (("conv2d", [8, 3, "gelu"]), r"params\[2\] \(activation\)"),
        (("max_pool", [4]), r"params\[0\] \(size\) must be an int in \[2, 3\]"),
        (("avg_pool", [1]), r"params\[0\] \(size\)"),
    ],
)
def test_image_layer_params_are_checked_by_name(layer, message):
    with pytest.raises(ValueError, match=message):
        gn.validate([layer], MNIST)


def test_a_cnn_takes_images_as_users_hold_them(small_mnist):
    net = Network(CONV, input_transform=small_mnist.input_transform)
    model = net.model()
    images = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8)
    as_float = images.float() / 255
    expected = model(images)
    for x in (images.unsqueeze(1), as_float, as_float.unsqueeze(1), images.reshape(5, 784)):
        torch.testing.assert_close(model(x), expected)
    assert net.predict(images).shape == (5,)
    assert torch.equal(net.predict(as_float.unsqueeze(1)), net.predict(images))


def test_seed_genomes_build_the_same_modules_as_before():
    seed = [("dense", [64, "softrelu"]), ("batch_norm", []), ("activation", ["relu"])]
    model = network.build(seed)
    assert isinstance(model.input.flatten, nn.Flatten)
    assert type(model.layer0[0]) is nn.Linear and model.layer0[0].in_features == 784
    assert isinstance(model.layer1[0], nn.BatchNorm1d)
    assert sorted(model.state_dict()) == sorted(
        ["layer0.0.weight", "layer0.0.bias", "head.weight", "head.bias"]
        + [f"layer1.0.{n}" for n in ("weight", "bias", "running_mean", "running_var")]
        + ["layer1.0.num_batches_tracked"]
    )


def test_a_dense_layer_after_convolutions_keeps_its_weight_names():
    model = network.build(CONV)
    assert isinstance(model.layer4[0], nn.BatchNorm2d)
    assert model.layer5[0].weight.shape == (32, 16 * 7 * 7)
    assert "layer5.0.weight" in model.state_dict()


def test_a_one_dimensional_user_layer_still_works_after_convolutions():
    def scale(params, in_features):
        return [nn.Linear(in_features, params[0])], params[0]

    genome.register_layer("test_flat_scale", [genome.UNITS], scale)
    layers = [("conv2d", [2, 3, "relu"]), ("test_flat_scale", [5])]
    assert genome.layer_shapes(layers, MNIST)[-1] == (5,)
    assert network.build(layers)(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    # On its own it sees flat features, as it always did.
    assert genome.layer_shapes([("test_flat_scale", [5])], MNIST) == [(784,), (5,)]


def test_a_shape_aware_user_layer_sees_the_image_and_can_refuse_it():
    def crop(params, in_shape):
        if len(in_shape) != 3 or in_shape[1] <= 2 * params[0]:
            raise genome.ShapeError(f"crop needs an image wider than {2 * params[0]} pixels")
        c, h, w = in_shape
        border = params[0]
        module = nn.ZeroPad2d(-border)
        return [module], (c, h - 2 * border, w - 2 * border)

    genome.register_layer("test_crop", [genome.UNITS], crop, shape_aware=True)
    assert genome.layer_shapes([("test_crop", [2])], MNIST)[-1] == (1, 24, 24)
    assert network.build([("test_crop", [2]), ("conv2d", [3, 3, "relu"])])(
        torch.rand(2, 28, 28)
    ).shape == (2, 10)
    with pytest.raises(genome.ShapeError, match=r"layers\[0\] \('test_crop', \[20\]\): crop"):
        gn.validate([("test_crop", [20])], MNIST)
    # Its multiply-adds are counted from a meta build (a pad has none; the head does).
    assert genome.macs([("test_crop", [2])], MNIST, 10) == 24 * 24 * 10


def test_multiply_adds_match_torchs_own_count():
    model = network.build(CONV)
    with FlopCounterMode(display=False) as counter:
        model(torch.rand(1, 1, 28, 28))
    assert genome.macs(CONV, MNIST, 10) == counter.get_total_flops() // 2
    net = Network(CONV)
    assert measures.measure("flops").value(net) == net.flops == genome.macs(CONV, MNIST, 10)


def test_the_flops_measure_tells_a_costly_cnn_from_a_cheap_one_of_similar_size():
    cheap = Network([("max_pool", [2]), ("conv2d", [16, 3, "relu"]), ("max_pool", [2])])
    costly = Network([("conv2d", [16, 3, "relu"]), ("max_pool", [2]), ("max_pool", [2])])
    flops = measures.measure("flops")
    assert network.count_parameters(cheap.model()) == network.count_parameters(costly.model())
    assert flops.value(costly) > 3 * flops.value(cheap)
    grid, cells = measures.bin_networks([cheap, costly], ["flops"], [2])
    assert cells == [1, 2] and grid.measures == ("flops",)


def _fits(layers):
    try:
        genome.layer_shapes(layers, MNIST)
    except ValueError:
        return False
    return True


def test_ten_thousand_children_of_conv_genomes_are_all_valid():
    rng = np.random.default_rng(0)
    parents = [
        CONV,
        [("conv2d", [4, 7, "tanh"]), ("max_pool", [3]), ("max_pool", [3]), ("max_pool", [3])],
        [("avg_pool", [3]), ("conv2d", [2, 1, "none"]), ("dense", [8, "relu"])],
    ]
    invalid, kinds = 0, set()
    parent = parents[0]
    for index in range(10_000):
        child = evolution.spawn_offspring(
            parent, rng, mutation_rate=0.5, layer_types=CONV_TYPES, input_shape=MNIST
        )
        if not _fits(child.layers):
            invalid += 1
        kinds.update(t for t, _ in child.layers)
        # Walk on from valid children so that genomes drift far from the seeds.
        parent = child.layers if child.layers and index % 7 else parents[index % 3]
        if len(parent) > 24:
            parent = parents[index % 3]
    assert invalid == 0
    assert {"conv2d", "max_pool", "avg_pool", "dense"} <= kinds


def test_convolutions_are_only_inserted_where_the_input_is_still_an_image():
    rng = np.random.default_rng(1)
    flat_tail = [("conv2d", [4, 3, "relu"]), ("dense", [16, "relu"]), ("dense", [8, "relu"])]
    for _ in range(500):
        child = evolution.mutate(
            flat_tail, rng, rate=1.0, std_dev=2, layer_types=CONV_TYPES, input_shape=MNIST
        )[0]
        assert _fits(child), child


def test_kernel_and_pool_sizes_mutate_within_their_allowed_sets():
    rng = np.random.default_rng(2)
    kernels, pools = set(), set()
    for _ in range(300):
        kernels.add(evolution.mutate_params([8, 3, "relu"], "conv2d", rng, std_dev=2)[1])
        pools.add(evolution.mutate_params([2], "max_pool", rng, std_dev=2)[0])
    assert kernels == {1, 3, 5, 7} and pools == {2, 3}


def test_forbid_and_max_layers_cover_the_image_types():
    assert "forbid 'max_pool'" in evolution.constraint_violation(CONV, forbid=["max_pool"])
    assert "forbid 'conv2d'" in evolution.constraint_violation(CONV, forbid=["conv2d"])
    assert "max_layers 3" in evolution.constraint_violation(CONV, max_layers=3)


def test_crossover_of_a_cnn_and_an_mlp_gives_a_child_that_fits():
    mlp = Network([("dense", [32, "relu"]), ("dense", [16, "relu"])])
    cnn = Network(CONV)
    for seed in range(40):
        child = crossover_networks(mlp, cnn, np.random.default_rng(seed))
        assert _fits(child.layers), child.layers
    with pytest.raises(ValueError, match="no head of the first genome"):
        crossover(
            [("dense", [4, "relu"])],
            [("conv2d", [2, 3, "relu"])],
            np.random.default_rng(0),
            input_shape=MNIST,
        )


def test_with_layers_refuses_a_genome_whose_shapes_do_not_fit():
    net = Network(CONV)
    with pytest.raises(genome.ShapeError, match=r"layers\[7\] \('conv2d'"):
        net.with_layers(net.genome + [("conv2d", [4, 3, "relu"])])
    edited = net.with_layers([("conv2d", [4, 3, "relu"]), *net.genome])
    assert edited.layers[0] == ("conv2d", (4, 3, "relu"))
