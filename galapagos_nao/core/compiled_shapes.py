"""What a genome compiles to, read without compiling it: leaves, weight shapes, parameters.

Grouping a generation reads every child's leaves
(:func:`~galapagos_nao.core.group_leaves.member_leaves`), and keeping one
checks its weights against the shapes its genome compiles to
(:mod:`~galapagos_nao.core.record_checks`). Both used to build the whole
network on the ``meta`` device: about 0.8 ms of module construction each, so
at a generation of 1,024 children three such builds per child cost seconds of
a GPU generation that trains in a few.

A compiled network is its blocks in order (:func:`~galapagos_nao.core.network.build`):
the input block, one block per genome layer, the head. What a block computes
depends only on its own definition and the shape coming in, so its summary is
built once on ``meta`` and kept (:func:`_layer_block`); a genome's answer is
its blocks' summaries, renamed to its layer positions. Children share most of
their layers with their parent, so a generation builds few blocks.

Only the library's own layer types are kept: a user's builder may be replaced
or may build differently each call, so a genome holding one is built whole,
as before. Whatever the fast path cannot answer (an invalid genome, an
unbatchable block) is also answered by building the whole network, so errors
and their messages stay those of :func:`~galapagos_nao.core.network.build`.
"""

from __future__ import annotations

import functools
import math
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from galapagos_nao.core import genome
from galapagos_nao.core.group_leaves import Leaf, Unbatchable, fold_leaves, leaf_modules
from galapagos_nao.core.group_leaves import member_leaves as read_leaves
from galapagos_nao.core.inheritance import layer_prefix
from galapagos_nao.core.layer_spec import LayerType
from galapagos_nao.core.network import (
    build,
    checked_genome,
    classification_head,
    count_parameters,
    input_block,
)
from galapagos_nao.core.transform import IDENTITY
from galapagos_nao.core.typing import Genome

__all__ = ["member_leaves", "state_shapes"]

#: Block summaries kept (each a few hundred bytes): far more than a run's distinct layers.
KEPT_BLOCKS = 8192
#: Genomes whose leaves are kept: a few generations of children.
KEPT_GENOMES = 4096

Shape = tuple[int, ...]


@dataclass(frozen=True)
class _Block:
    """One block of a compiled network, its names relative to the block.

    Attributes:
        entry: ``(width, spatial)`` its leaves were read receiving.
        exit: ``(width, spatial)`` its leaves give out.
        modules: Modules it runs (its leaves' ordinals count them).
        leaves: Its leaves, numbered from 0; None when it is unbatchable.
        state: ``(name, shape)`` of each state-dict entry.
        n_params: Trainable scalars.
    """

    entry: tuple[int, Shape]
    exit: tuple[int, Shape]
    modules: int
    leaves: tuple[Leaf, ...] | None
    state: tuple[tuple[str, Shape], ...]
    n_params: int


def member_leaves(layers: Genome, input_shape: Sequence[int], n_classes: int) -> list[Leaf]:
    """The leaves ``layers`` compiles to, without building its network.

    The same as :func:`~galapagos_nao.core.group_leaves.member_leaves` of the
    network :func:`~galapagos_nao.core.network.build` gives.

    Raises:
        Unbatchable: naming the module that has no batched form.
        ValueError: If the genome is invalid (as ``build``).
    """
    key = _genome_key(layers, input_shape, n_classes)
    if key is None:
        return _member_leaves(layers, input_shape, n_classes)
    return list(_kept_leaves(*key))


@functools.lru_cache(maxsize=KEPT_GENOMES)
def _kept_leaves(
    kinds: tuple[LayerType, ...],
    params: tuple[tuple[tuple[type, Any], ...], ...],
    input_shape: Shape,
    n_classes: int,
) -> tuple[Leaf, ...]:
    """A genome's leaves, kept: grouping reads each child's, and so does its group's set-up."""
    layers = [
        (kind.name, [value for _, value in own]) for kind, own in zip(kinds, params, strict=True)
    ]
    return tuple(_member_leaves(layers, input_shape, n_classes))


def _genome_key(layers: Any, input_shape: Any, n_classes: Any) -> tuple[Any, ...] | None:
    """What :func:`_kept_leaves` is kept by; None for anything but built-in layers and ints."""
    try:
        names, params = zip(*layers, strict=True) if layers else ((), ())
        if not all(isinstance(own, (list, tuple)) for own in params):
            return None  # a str would pass as a sequence of its characters
        kinds = tuple(genome.layer_type(name) for name in names)
        key = (kinds, tuple(_params_key(own) for own in params), tuple(input_shape), n_classes)
    except (TypeError, ValueError, KeyError):
        return None  # not a genome: the uncached path says why
    ints = all(type(size) is int for size in key[2]) and type(n_classes) is int
    return key if ints and all(genome.is_builtin(kind) for kind in kinds) else None


def _member_leaves(layers: Genome, input_shape: Sequence[int], n_classes: int) -> list[Leaf]:
    blocks = _blocks(layers, input_shape, n_classes)
    if blocks is None or not _leaves_meet(block for _, block in blocks):
        return read_leaves(_on_meta(layers, input_shape, n_classes), _features(input_shape))
    found: list[Leaf] = []
    ordinal = 0
    for prefix, block in blocks:
        assert block.leaves is not None
        found.extend(_moved(leaf, prefix, ordinal) for leaf in block.leaves)
        ordinal += block.modules
    if not found or found[-1].kind != "head":
        raise Unbatchable("a network that does not end in its linear head")
    return found


def state_shapes(
    layers: Genome, input_shape: Sequence[int], n_classes: int
) -> tuple[dict[str, Shape], int]:
    """The state-dict shapes ``layers`` compiles to, and its trainable parameter count.

    Raises:
        ValueError: As :func:`~galapagos_nao.core.network.build` (so do TypeError,
            RuntimeError and OverflowError from a user's builder).
    """
    blocks = _blocks(layers, input_shape, n_classes)
    if blocks is None:
        model = _on_meta(layers, input_shape, n_classes)
        shapes = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
        return shapes, count_parameters(model)
    found = {
        _joined(prefix, name): shape for prefix, block in blocks for name, shape in block.state
    }
    return found, sum(block.n_params for _, block in blocks)


def _blocks(
    layers: Genome, input_shape: Sequence[int], n_classes: int
) -> list[tuple[str, _Block]] | None:
    """Each block's prefix and summary; None where the network must be built whole."""
    try:
        checked, entry = checked_genome(layers, input_shape, n_classes)
    except ValueError:
        return None  # building raises it again, with its own message
    kinds = [genome.layer_type(name) for name, _ in checked]
    if not all(genome.is_builtin(kind) for kind in kinds):
        return None
    found = [("input", _input_block(entry, _features(input_shape)))]
    shape = entry
    for index, (kind, (_, params)) in enumerate(zip(kinds, checked, strict=True)):
        block, shape = _layer_block(kind, _params_key(params), shape)
        found.append((layer_prefix(index), block))
    found.append(("", _head_block(shape, n_classes)))
    return found


def _leaves_meet(blocks: Iterable[_Block]) -> bool:
    """Whether every block has leaves, each block's taking what the one before gives."""
    given = None
    for block in blocks:
        if block.leaves is None or (given is not None and block.entry != given):
            return False
        given = block.exit
    return True


def _on_meta(layers: Genome, input_shape: Sequence[int], n_classes: int) -> nn.Module:
    with torch.device("meta"):
        return build(layers, input_shape, n_classes)


def _features(shape: Sequence[int]) -> int:
    return math.prod(int(size) for size in shape)


def _moved(leaf: Leaf, prefix: str, ordinal: int) -> Leaf:
    """``leaf`` named and numbered as in the whole network (``dataclasses.replace``, faster)."""
    return Leaf(
        leaf.kind,
        _joined(prefix, leaf.name) if leaf.name else "",
        ordinal + leaf.ordinal,
        leaf.width_in,
        leaf.width_out,
        leaf.detail,
        leaf.spatial_in,
        leaf.spatial_out,
    )


def _joined(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _params_key(params: Sequence[Any]) -> tuple[tuple[type, Any], ...]:
    """Hashable params that tell 1, 1.0 and True apart (they hash alike)."""
    return tuple((type(value), value) for value in params)


def _incoming(shape: Shape) -> tuple[int, Shape]:
    """``(width, spatial)`` of leaves receiving ``shape``: channels and pixels, or features."""
    if len(shape) == 3:
        return shape[0], shape[1:]
    return _features(shape), ()


@functools.lru_cache(maxsize=KEPT_BLOCKS)
def _layer_block(
    kind: LayerType, params: tuple[tuple[type, Any], ...], shape: Shape
) -> tuple[_Block, Shape]:
    """The summary of a built-in layer receiving ``shape``, and the shape it gives out."""
    with torch.device("meta"):
        modules, out = kind.build_for([value for _, value in params], shape)
        block = nn.Sequential(*modules)
    return _summary(block, _incoming(shape)), tuple(out)


@functools.lru_cache(maxsize=64)
def _input_block(entry: Shape, features: int) -> _Block:
    with torch.device("meta"):
        block = input_block(entry, IDENTITY)
    return _summary(block, (features, ()))


@functools.lru_cache(maxsize=256)
def _head_block(shape: Shape, n_classes: int) -> _Block:
    with torch.device("meta"):
        block = nn.Sequential(OrderedDict(head=classification_head(shape, n_classes)))
    return _summary(block, _incoming(shape))


def _summary(block: nn.Module, entry: tuple[int, Shape]) -> _Block:
    state = tuple((name, tuple(t.shape)) for name, t in block.state_dict().items())
    n_params = count_parameters(block)
    try:
        named = list(leaf_modules(block))
        leaves, width, spatial = fold_leaves(named, 0, *entry)
    except Unbatchable:
        return _Block(entry, entry, 0, None, state, n_params)
    return _Block(entry, (width, spatial), len(named), tuple(leaves), state, n_params)
