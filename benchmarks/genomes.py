"""The fixed genomes every figure is measured on, and their training FLOPs.

Four genomes from 1 to 12 layers: the seed's eight-layer genome and three others
spanning the sizes evolution visits (a lone dense layer, a small four-layer net,
and a wider twelve-layer one that uses every built-in layer type).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from galapagos_nao.core.network import MNIST_SHAPE, build
from galapagos_nao.core.typing import Genome, Layer
from galapagos_nao.example import seed_layers

__all__ = ["BENCH_GENOMES", "training_flops"]

#: Name → genome, in increasing complexity; "8 layers (seed)" is the seed's genome.
BENCH_GENOMES: dict[str, list[Layer]] = {
    "1 layer": [("dense", [128, "relu"])],
    "4 layers": [
        ("dense", [128, "relu"]),
        ("dropout", [0.2]),
        ("dense", [64, "tanh"]),
        ("batch_norm", []),
    ],
    "8 layers (seed)": seed_layers(),
    "12 layers": [
        ("dense", [256, "relu"]),
        ("batch_norm", []),
        ("dropout", [0.3]),
        ("dense", [128, "relu"]),
        ("batch_norm", []),
        ("dense", [128, "softrelu"]),
        ("leaky_relu", [0.1]),
        ("dense", [64, "relu"]),
        ("dropout", [0.2]),
        ("dense", [64, "tanh"]),
        ("activation", ["relu"]),
        ("dense", [32, "none"]),
    ],
}


def training_flops(
    layers: Genome, input_shape: Sequence[int] = MNIST_SHAPE, n_classes: int = 10
) -> int:
    """Floating-point operations to train on one sample: forward plus backward.

    Only the matrix products are counted (``2 * in * out`` per product), which is
    what the matmul peak measures; activations, batch norm and dropout are
    element-wise, memory-bound and add a few percent of arithmetic at most.
    Per linear layer: the forward product, the weight gradient, and the input
    gradient unless no trainable parameter precedes the layer (autograd then
    skips it, as it does for the first layer, whose input is the data).

    Args:
        layers: The genome, compiled with its classification head.
        input_shape: Shape of one sample.
        n_classes: Size of the head.

    Returns:
        FLOPs per training sample.
    """
    flops = 0
    grad_flows = False  # does any parameter before this point need an input gradient?
    for module in build(layers, input_shape, n_classes).modules():
        if isinstance(module, nn.Linear):
            product = 2 * module.in_features * module.out_features
            flops += product * (3 if grad_flows else 2)
        if any(p.requires_grad for p in module.parameters(recurse=False)):
            grad_flows = True
    return flops
