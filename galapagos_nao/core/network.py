"""Networks: the immutable ``Network`` record and the genome → ``nn.Sequential`` compiler.

A compiled network is an input block (the task's input transform, then flatten), one
``nn.Sequential`` block per
genome layer (named ``layer0``, ``layer1``, …) and a linear classification head.
The input block holds no weights, so state dicts are the same with or without it.
Naming each genome layer's block keeps weight names stable, which is what lets a
child inherit its parent's weights layer by layer after mutation.
"""

from __future__ import annotations

import dataclasses
import math
import os
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
from torch import nn

from galapagos_nao.core import genome
from galapagos_nao.core.bindings import Viewable, bound
from galapagos_nao.core.builtin_layers import FlatLinear, InputReshape
from galapagos_nao.core.checks import check_int, describe
from galapagos_nao.core.inheritance import aligned_origins, inherit_weights, layer_prefix
from galapagos_nao.core.transform import IDENTITY, InputTransform, Standardize
from galapagos_nao.core.typing import Genome, Layer

__all__ = [
    "MNIST_SHAPE",
    "InputReshape",
    "Network",
    "build",
    "checked_genome",
    "classification_head",
    "count_parameters",
    "fitness_or",
    "input_block",
    "seed_init",
]

#: Input shape of MNIST images, the default task.
MNIST_SHAPE: tuple[int, ...] = (1, 28, 28)


def build(
    layers: Genome,
    input_shape: Sequence[int] = MNIST_SHAPE,
    n_classes: int = 10,
    input_transform: InputTransform = IDENTITY,
) -> nn.Sequential:
    """Compiles a genome into a fresh ``nn.Sequential``.

    Args:
        layers: The genome; validated first.
        input_shape: Shape of one sample, e.g. ``(1, 28, 28)``.
        n_classes: Size of the classification head.
        input_transform: Applied to the input first. Training passes the
            identity (its data is transformed once, up front);
            :meth:`Network.model` passes the task's, so the model takes raw data.

    Returns:
        ``Sequential(input=Sequential(standardize, flatten), layer0=…, …, head=Linear)``
        on the CPU. The input block flattens each sample, or, for a genome with
        convolutions or pools, gives it the ``(channels, height, width)`` they need.

    Raises:
        ValueError: If the genome, ``input_shape`` or ``n_classes`` is invalid,
            or a layer cannot take the shape reaching it (a :class:`ShapeError`).
    """
    checked, entry = checked_genome(layers, input_shape, n_classes)
    if not isinstance(input_transform, InputTransform):
        raise ValueError(
            f"input_transform must be an InputTransform, got {describe(input_transform)}"
        )
    blocks: OrderedDict[str, nn.Module] = OrderedDict(input=input_block(entry, input_transform))
    for index, layer in enumerate(checked):
        modules, entry = genome.build_layer(layer, entry)
        blocks[layer_prefix(index)] = nn.Sequential(*modules)
    blocks["head"] = classification_head(entry, n_classes)
    return nn.Sequential(blocks)


def checked_genome(
    layers: Genome, input_shape: Sequence[int], n_classes: int
) -> tuple[list[Layer], tuple[int, ...]]:
    """:func:`build`'s checks: the normalised layers and the shape the first layer sees."""
    shape = _check_shape(input_shape)
    checked = genome.validate(layers, shape)
    check_int("n_classes", n_classes, minimum=2)
    return checked, genome.entry_shape(checked, shape)


def input_block(entry: tuple[int, ...], input_transform: InputTransform) -> nn.Sequential:
    """A compiled network's first block: the input transform, then the first layer's shape."""
    # A flat genome flattens (as networks always did); an image genome reshapes,
    # so (N, 28, 28), (N, 1, 28, 28) and (N, 784) inputs all work.
    shaper: nn.Module = nn.Flatten() if len(entry) == 1 else InputReshape(entry)
    return nn.Sequential(OrderedDict(standardize=Standardize(input_transform), flatten=shaper))


def classification_head(entry: tuple[int, ...], n_classes: int) -> nn.Linear:
    """A compiled network's last block, taking the last layer's output of shape ``entry``."""
    head = FlatLinear if len(entry) > 1 else nn.Linear  # after a pool the head flattens
    return head(math.prod(entry), n_classes)


def _check_shape(input_shape: Any) -> tuple[int, ...]:
    if not isinstance(input_shape, (tuple, list)) or not input_shape:
        raise ValueError(
            f"input_shape must be a non-empty tuple of ints, got {describe(input_shape)}"
        )
    for index, size in enumerate(input_shape):
        check_int(f"input_shape[{index}]", size, minimum=1)
    return tuple(input_shape)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalars in ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def seed_init(model: nn.Module, generator: torch.Generator) -> None:
    """Re-initialises every linear and convolutional layer from ``generator``.

    Torch's default init draws from the global generator, which concurrent
    candidates share; drawing from the candidate's own generator makes a seeded
    run reproducible. The distribution is torch's default for ``nn.Linear`` and
    ``nn.Conv2d``: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for weights and biases,
    where a kernel's fan-in is ``in_channels × kernel_size²``.
    """
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                limit = 1.0 / math.sqrt(module.weight[0].numel())
                module.weight.uniform_(-limit, limit, generator=generator)
                if module.bias is not None:
                    module.bias.uniform_(-limit, limit, generator=generator)


def _frozen_layers(layers: Genome, input_shape: Sequence[int] | None = None) -> tuple[Layer, ...]:
    checked = genome.validate(layers, input_shape)
    return tuple((type_name, tuple(params)) for type_name, params in checked)


#: The fields that decide which network a record describes (and its weights' shapes).
_ARCHITECTURE = ("layers", "input_shape", "n_classes")


def _check_weights(weights: Any) -> None:
    """Raises TypeError naming ``weights`` unless it maps str names to tensors."""
    if not isinstance(weights, Mapping):
        raise TypeError(
            f"weights must be a dict of name -> tensor or None, got {describe(weights)}"
        )
    for key, value in weights.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise TypeError(
                f"weights[{key!r}] must be a torch.Tensor under a str name, got {describe(value)}"
            )


def _new_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True, eq=False, repr=False)
class Network(Viewable):
    """An immutable record of one network: genome, metrics and trained weights.

    Create one from a genome with ``Network(layers)``; training returns new
    records with metrics and weights filled in. Two records are equal only if
    they are the same object (ids are unique).

    Attributes:
        layers: The genome as a tuple of ``(type, params)`` tuples.
        input_shape: Shape of one input sample.
        n_classes: Number of output classes.
        id: A fresh uuid4 string, unique per record.
        test_acc: Accuracy on the task's test split (reported, never selected on).
        val_acc: Accuracy on the validation split: the fitness.
        train_acc: Accuracy measured while training the last epoch.
        loss: Mean training loss of the last epoch.
        n_params: Number of trainable parameters.
        parent_id: Id of the network this one was bred from, if any.
        generation: Generation in which it was evaluated, if any.
        mutations: The operators that made it from its parent, in order.
        weights: Trained state dict as CPU tensors, or None if untrained.
        input_transform: How the task's data as users hold it (0..1 or uint8
            images for MNIST) becomes what the layers saw in training; part of
            the input block of :meth:`model`. The identity for records saved
            before transforms were recorded (they expect standardized inputs).
    """

    layers: tuple[Layer, ...]
    input_shape: tuple[int, ...] = MNIST_SHAPE
    n_classes: int = 10
    id: str = field(default_factory=_new_id)
    test_acc: float | None = None
    val_acc: float | None = None
    train_acc: float | None = None
    loss: float | None = None
    n_params: int | None = None
    parent_id: str | None = None
    generation: int | None = None
    mutations: tuple[str, ...] = ()
    weights: Mapping[str, torch.Tensor] | None = None
    input_transform: InputTransform = IDENTITY

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", _check_shape(self.input_shape))
        object.__setattr__(self, "layers", _frozen_layers(self.layers, self.input_shape))
        check_int("n_classes", self.n_classes, minimum=2)
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"id must be a non-empty str, got {describe(self.id)}")
        object.__setattr__(self, "mutations", tuple(self.mutations))
        if not isinstance(self.input_transform, InputTransform):
            raise ValueError(
                f"input_transform must be an InputTransform, got {describe(self.input_transform)}"
            )
        if self.weights is not None:
            _check_weights(self.weights)
            weights = {k: v.detach().to("cpu") for k, v in self.weights.items()}
            object.__setattr__(self, "weights", MappingProxyType(weights))

    @property
    def fitness(self) -> float | None:
        """What selection compares: validation accuracy."""
        return self.val_acc

    @property
    def complexity(self) -> int:
        """The seed's complexity: number of layers."""
        return genome.complexity(self.layers)

    @property
    def flops(self) -> int:
        """Compute per sample: multiply-adds of one forward pass (the ``flops`` measure)."""
        return genome.macs(self.layers, self.input_shape, self.n_classes)

    @property
    def genome(self) -> list[Layer]:
        """The genome as a fresh, editable list of ``(type, [params])`` tuples."""
        return [(type_name, list(params)) for type_name, params in self.layers]

    def replace(self, **changes: Any) -> Network:
        """A copy with ``changes`` applied; the copy keeps this record's id unless given one.

        Raises:
            ValueError: if ``changes`` alter the architecture (``layers``,
                ``input_shape``, ``n_classes``) of a record with metrics or
                weights, which would then describe another network; derive an
                edited network with :meth:`with_layers` instead.
        """
        measured = self.weights is not None or self.fitness is not None
        for name in _ARCHITECTURE:
            if name not in changes or not measured:
                continue
            if name == "layers":
                same = _frozen_layers(changes[name]) == self.layers
            else:
                same = changes[name] == getattr(self, name) or (
                    name == "input_shape" and tuple(changes[name]) == self.input_shape
                )
            if not same:
                raise ValueError(
                    f"{name}={changes[name]!r}: replace() keeps this record's id, metrics and "
                    f"weights, which belong to the old {name}; use net.with_layers(layers) for "
                    "a new network derived from this one"
                )
        return dataclasses.replace(self, **changes)

    def with_layers(self, layers: Genome) -> Network:
        """A new, unevaluated network with an edited genome, derived from this one.

        It gets a fresh id, no metrics and ``parent_id`` = this id; it keeps this
        network's input shape, classes and input transform, and its weights
        wherever a layer survived the edit with the same shapes (as a child
        inherits from its parent in evolution). Start from ``net.genome``, an
        editable list: ``net.with_layers(net.genome + [("dense", [32, "relu"])])``.

        Args:
            layers: The new genome; validated first.

        Returns:
            The new record; the model of an untrained one gets fresh weights
            where nothing could be kept.

        Raises:
            ValueError: naming the first invalid layer.
        """
        new_layers = _frozen_layers(layers, self.input_shape)
        weights = None
        if self.weights is not None:
            model = build(new_layers, self.input_shape, self.n_classes, self.input_transform)
            inherit_weights(model, self.weights, aligned_origins(self.layers, new_layers))
            weights = model.state_dict()
        return Network(
            new_layers,
            input_shape=self.input_shape,
            n_classes=self.n_classes,
            parent_id=self.id,
            mutations=("edited with with_layers",),
            weights=weights,
            input_transform=self.input_transform,
        )

    def model(self) -> nn.Sequential:
        """A fresh torch module carrying a copy of the trained weights.

        The module takes the task's data as users hold it (for MNIST, 0..1 float
        or uint8 images): its ``input`` block applies :attr:`input_transform`.

        Returns:
            The compiled ``nn.Sequential`` on the CPU, in eval mode (call
            ``.train()`` to fine-tune it). Untrained records give fresh init.
        """
        module = build(self.layers, self.input_shape, self.n_classes, self.input_transform)
        if self.weights is not None:
            module.load_state_dict({k: v.clone() for k, v in self.weights.items()})
        return module.eval()

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Writes genome, metrics and weights to one safetensors file; read it with ``gn.load``.

        See :func:`galapagos_nao.store.persistence.save`.
        """
        return Path(bound(type(self), "save")(self, path))

    def to_onnx(self, path: str | os.PathLike[str]) -> Path:
        """Exports the model to ONNX (needs the ``onnx`` extra).

        See :func:`galapagos_nao.store.persistence.to_onnx`.
        """
        return Path(bound(type(self), "to_onnx")(self, path))

    @cached_property
    def _inference_model(self) -> nn.Sequential:
        return self.model()

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Class indices for a batch ``x`` of shape ``(batch, *input_shape)``.

        ``x`` is the data as users hold it: for MNIST, float images in 0..1 or
        uint8 images in 0..255 (:attr:`input_transform` maps them to the scale
        training saw); for a task made with ``from_tensors``, tensors on the
        scale given there.

        Raises:
            ValueError: If ``x`` is not a real tensor whose trailing size matches the input.
        """
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"x must be a torch.Tensor, got {describe(x)}")
        if x.is_complex() or x.dtype == torch.bool:
            raise ValueError(f"x must hold real numbers, got dtype {x.dtype}")
        features = math.prod(self.input_shape)
        if x.dim() == 0 or math.prod(x.shape[1:]) != features:
            raise ValueError(
                f"x must have shape (batch, {', '.join(map(str, self.input_shape))}), "
                f"got {tuple(x.shape)}"
            )
        with torch.inference_mode():
            # uint8 stays uint8 here: the input block tells images from floats by dtype.
            logits = self._inference_model(x.to("cpu"))
        return logits.argmax(dim=1)

    def __repr__(self) -> str:
        layers = [(type_name, list(params)) for type_name, params in self.layers]
        accuracy = "None" if self.test_acc is None else f"{self.test_acc:.4f}"
        return f"Network(id={self.id!r}, layers={layers!r}, test_acc={accuracy})"


def fitness_or(net: Network, missing: float) -> float:
    """``net.fitness``, or ``missing`` for a network never evaluated.

    Callers say what an unevaluated network is worth where they use it: the
    archive ranks it below everything (``-inf``); the QD-score counts it as 0.
    """
    return missing if net.fitness is None else net.fitness
