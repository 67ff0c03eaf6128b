"""Memory a candidate needs to train, estimated from its genome before anything is allocated.

A genome within every format limit can still need more memory than the machine
has: a 20,000-unit layer followed by 1,500 batch-norm layers keeps about 61 GB
of activations for one backward pass at batch 512. On a GPU that raises
``OutOfMemoryError``, which the run handles; on the CPU the kernel kills the
process first. So the evaluators compare :func:`estimate_training_memory` with
the ``training.max_memory`` budget and drop a candidate over it before building
its weights.

The estimate builds the network on the ``meta`` device (shapes only, no memory,
no random draws). A genome of built-in layer types gives each module's output
size from the shapes its layers declare; one with a registered user type runs
a forward pass on ``meta`` to learn them, so it follows whatever shapes such a
layer produces. (The meta forward goes through torch's Python reference
kernels: 2-10 ms a genome, paid by every candidate before it trains.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from galapagos_nao.core import genome
from galapagos_nao.core.fit_records import EVAL_BATCH, CandidateFailure
from galapagos_nao.core.network import build
from galapagos_nao.core.typing import Genome

__all__ = [
    "BYTES_PER_VALUE",
    "PARAMETER_COPIES",
    "MemoryEstimate",
    "OverBudget",
    "estimate_training_memory",
    "format_bytes",
]

#: Bytes of one float32 value.
BYTES_PER_VALUE = 4
#: Copies of every parameter training holds: the weights, their gradients and
#: the optimizer's state (Adam keeps two moments; SGD with momentum one).
PARAMETER_COPIES = 4


class OverBudget(CandidateFailure):
    """A candidate's estimated memory is over ``training.max_memory``: dropped before training."""


@dataclass(frozen=True)
class MemoryEstimate:
    """What training one network takes, in bytes.

    Attributes:
        parameters: Weights, gradients and optimizer state.
        activations: The larger of what one training batch keeps for its
            backward pass (every module's output, plus the gradient in flight)
            and what an evaluation batch holds at once.
        batch_size: The training batch it was estimated for.
    """

    parameters: int
    activations: int
    batch_size: int

    @property
    def total(self) -> int:
        """Parameters and activations together."""
        return self.parameters + self.activations

    def times(self, members: int) -> MemoryEstimate:
        """The estimate for ``members`` such networks trained together as one stacked model."""
        return MemoryEstimate(
            self.parameters * members, self.activations * members, self.batch_size
        )

    def describe(self) -> str:
        """``"about 61.4 GB (parameters 1.6 MB, activations 61.4 GB at batch 512)"``."""
        return (
            f"about {format_bytes(self.total)} (parameters {format_bytes(self.parameters)}, "
            f"activations {format_bytes(self.activations)} at batch {self.batch_size})"
        )


def format_bytes(size: float) -> str:
    """``1.5 GB``: a byte count in decimal units, three significant digits."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{size:.3g} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1000
    raise AssertionError("unreachable")


def _leaves(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if not list(m.children())]


def _declared_sizes(
    model: nn.Module, layers: Genome, input_shape: Sequence[int], n_classes: int
) -> list[int]:
    """:func:`_forward_sizes` of a built network of built-in layer types, from its shapes.

    Every module of a built-in layer outputs the layer's shape (a dense or
    convolution block's product and activation, a pool, a dropout...); the input
    block's modules output the sample's values, the head the classes.
    """
    shapes = genome.layer_shapes(layers, input_shape)
    sizes: list[int] = []
    for name, block in model.named_children():
        if name == "input":
            size = math.prod(input_shape)
        elif name == "head":
            size = n_classes
        else:
            size = math.prod(shapes[int(name.removeprefix("layer")) + 1])
        sizes.extend([size] * len(_leaves(block)))
    return sizes


def _forward_sizes(model: nn.Module, input_shape: Sequence[int]) -> list[int]:
    """Values per sample that each leaf module of ``model`` (on ``meta``) outputs."""
    sizes: list[int] = []

    def record(module: nn.Module, inputs: object, output: object) -> None:
        if isinstance(output, torch.Tensor):
            sizes.append(math.prod(output.shape[1:]))

    handles = [leaf.register_forward_hook(record) for leaf in _leaves(model)]
    try:
        model.eval()  # eval: dropout draws nothing, batch norm needs no batch statistics
        with torch.no_grad():
            model(torch.zeros((1, *input_shape), device="meta"))
    finally:
        for handle in handles:
            handle.remove()
    return sizes


def estimate_training_memory(
    layers: Genome, input_shape: Sequence[int], n_classes: int, batch_size: int
) -> MemoryEstimate:
    """The memory training ``layers`` at ``batch_size`` takes, before any is allocated.

    Args:
        layers: The genome.
        input_shape: Shape of one sample.
        n_classes: Size of the classification head.
        batch_size: Samples per training step (the batch actually used, at most
            the training split's size).

    Raises:
        ValueError: If the genome or shape is invalid (as ``build`` says).
        Exception: Whatever a registered layer's builder or forward raises on ``meta``.
    """
    with torch.device("meta"):
        model = build(layers, input_shape, n_classes)
    parameters = sum(p.numel() for p in model.parameters()) + sum(
        b.numel() for b in model.buffers()
    )
    if all(genome.is_builtin(genome.layer_type(name)) for name, _ in layers):
        sizes = _declared_sizes(model, layers, input_shape, n_classes)
    else:
        sizes = _forward_sizes(model, input_shape)
    features = math.prod(input_shape)
    widest = max([features, *sizes])
    # Training keeps each module's output for the backward pass, and a gradient as
    # wide as the widest in flight; evaluation holds about two layers at a time.
    training = batch_size * (features + sum(sizes) + widest)
    evaluating = EVAL_BATCH * 2 * widest
    return MemoryEstimate(
        parameters=parameters * PARAMETER_COPIES * BYTES_PER_VALUE,
        activations=max(training, evaluating) * BYTES_PER_VALUE,
        batch_size=batch_size,
    )
