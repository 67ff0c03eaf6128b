"""A compiled network read as the records a stacked model computes: its *leaves*.

A compiled network is read as a list of :class:`Leaf` records, one per module
that computes something: a product (linear, the head, a convolution), a batch
norm, an activation, a dropout, a pool, and where an image becomes features a
flatten (the input block's reshape and the flatten inside a dense layer or
head after an image are leaves too: they change the shape).
:mod:`~galapagos_nao.core.group_plan` aligns members' leaves into the slots of a group.

Every flat width is rounded up to a multiple of :data:`CANONICAL`, alone too
(see :mod:`~galapagos_nao.core.group_plan` for why).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from torch import nn

from galapagos_nao.core.builtin_layers import FlatLinear
from galapagos_nao.core.genome import SeededDropout
from galapagos_nao.core.network import InputReshape
from galapagos_nao.core.transform import IDENTITY, Standardize

__all__ = [
    "CANONICAL",
    "ZERO_PRESERVING",
    "Leaf",
    "Unbatchable",
    "bucket",
    "canonical",
    "fold_leaves",
    "leaf_modules",
    "member_leaves",
]

#: Flat widths are rounded up to a multiple of this, alone and in a group (see ``group_plan``).
CANONICAL = 16
#: Activation kinds a slot can mix per member, and whether each maps 0 to 0.
ZERO_PRESERVING = {"relu": True, "tanh": True, "leaky_relu": True, "sigmoid": False}
ZERO_PRESERVING["softplus"] = False


class Unbatchable(ValueError):
    """A network holds a module the stacked model cannot run; the message says which."""


@dataclass(frozen=True)
class Leaf:
    """One module of one member that the stacked model computes.

    Attributes:
        kind: ``linear``, ``head``, ``batch_norm``, ``act``, ``dropout``, or on
            images ``reshape`` (the input block giving rows their image shape),
            ``conv``, ``max_pool``, ``avg_pool`` and ``flatten``.
        name: State-dict prefix of its tensors (``layer0.0``); ``""`` without any.
        ordinal: Its position among the member's leaves: the word that makes its
            random stream differ from the member's other layers'.
        width_in: Real features coming in; on an image, its channels.
        width_out: Real features going out; on an image, its channels.
        detail: What varies per member: ``(kind, slope)`` for an activation,
            ``(rate,)`` for dropout, ``(eps, momentum)`` for batch norm; what a
            slot shares: ``(kernel_size,)`` of a convolution, ``(size,)`` of a pool.
        spatial_in: ``(height, width)`` of an image coming in; ``()`` when flat.
        spatial_out: ``(height, width)`` of an image going out; ``()`` when flat.
    """

    kind: str
    name: str
    ordinal: int
    width_in: int
    width_out: int
    detail: tuple[Any, ...] = ()
    spatial_in: tuple[int, ...] = ()
    spatial_out: tuple[int, ...] = ()

    @property
    def token(self) -> tuple[Any, ...]:
        """What two members' leaves must share to sit in one slot.

        On images the spatial size too (so pools line up), and a convolution's
        kernel size: a kernel padded from 3 to 5 would cost 2.8 times the
        multiply-adds, and its padded taps would need masking to stay zero.
        """
        shared: tuple[Any, ...] = (self.kind,)
        if self.kind in _SHARED_DETAIL:
            shared += self.detail  # eps and momentum, a kernel or a pool size
        if self.kind == "reshape":
            shared += (self.width_out, self.spatial_out)
        return shared + ((self.spatial_in,) if self.spatial_in else ())

    @property
    def area_in(self) -> int:
        """Pixels per channel coming in (1 when flat)."""
        return math.prod(self.spatial_in)

    @property
    def bucket_in(self) -> int:
        """The padded width of :attr:`width_in` alone (see :func:`bucket`)."""
        return bucket(self.width_in, bool(self.spatial_in))

    @property
    def bucket_out(self) -> int:
        """The padded width of :attr:`width_out` alone (see :func:`bucket`)."""
        return bucket(self.width_out, bool(self.spatial_out))


#: Kinds whose ``detail`` every leaf of a slot shares (part of the token).
_SHARED_DETAIL = frozenset({"batch_norm", "conv", "max_pool", "avg_pool"})


def leaf_modules(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """The modules ``model`` runs, in order, with their state-dict prefixes.

    Raises:
        Unbatchable: On a container other than ``nn.Sequential`` (its order of
            execution is its own ``forward``, which cannot be read from outside).
    """
    for name, module in model.named_children():
        if isinstance(module, nn.Sequential):
            for inner, leaf in leaf_modules(module):
                yield f"{name}.{inner}", leaf
        elif next(module.children(), None) is not None:
            raise Unbatchable(f"{name} is a {type(module).__name__} holding other modules")
        else:
            yield name, module


def _activation(module: nn.Module) -> tuple[str, float] | None:
    kind = type(module)
    if kind is nn.ReLU:
        return ("relu", 0.0)
    if kind is nn.Tanh:
        return ("tanh", 0.0)
    if kind is nn.Sigmoid:
        return ("sigmoid", 0.0)
    if kind is nn.LeakyReLU:
        assert isinstance(module, nn.LeakyReLU)
        return ("leaky_relu", float(module.negative_slope))
    if kind is nn.Softplus:
        assert isinstance(module, nn.Softplus)
        if (module.beta, module.threshold) != (1.0, 20.0):
            raise Unbatchable("a Softplus with another beta or threshold than 1 and 20")
        return ("softplus", 0.0)
    return None


def _product(name: str, module: nn.Module, ordinal: int) -> Leaf:
    """The leaf of a linear layer or the head (a flattening one comes after its flatten)."""
    assert isinstance(module, nn.Linear)
    if module.bias is None:
        raise Unbatchable("a Linear without a bias")
    role = "head" if name == "head" else "linear"
    return Leaf(role, name, ordinal, module.in_features, module.out_features)


def _image_leaf(
    name: str, module: nn.Module, ordinal: int, width: int, spatial: tuple[int, ...]
) -> Leaf | None:
    """The leaf of a convolution or a pool on ``width`` channels of ``spatial`` pixels."""
    kind = type(module)
    if kind is nn.Conv2d:
        assert isinstance(module, nn.Conv2d)
        k = module.kernel_size[0]
        same = (k, k) == module.kernel_size and module.padding == (k // 2, k // 2)
        plain = module.stride == (1, 1) and module.dilation == (1, 1) and module.groups == 1
        if not (same and plain and k % 2 and module.bias is not None):
            raise Unbatchable("a Conv2d other than square, odd, stride 1, same padding, biased")
        detail = (k,)
        return Leaf(
            "conv", name, ordinal, module.in_channels, module.out_channels, detail, *2 * (spatial,)
        )
    if kind in (nn.MaxPool2d, nn.AvgPool2d):
        size = module.kernel_size
        if not (
            isinstance(size, int) and module.stride in (size, (size, size)) and module.padding == 0
        ):
            raise Unbatchable(f"a {kind.__name__} whose stride is not its window")
        if isinstance(module, nn.MaxPool2d) and (module.dilation != 1 or module.ceil_mode):
            raise Unbatchable("a MaxPool2d with dilation or ceil_mode")
        if isinstance(module, nn.AvgPool2d) and (
            module.ceil_mode or not module.count_include_pad or module.divisor_override
        ):
            raise Unbatchable("an AvgPool2d with ceil_mode or a divisor override")
        pool = "max_pool" if kind is nn.MaxPool2d else "avg_pool"
        out = tuple(side // size for side in spatial)
        return Leaf(pool, name, ordinal, width, width, (size,), spatial, out)
    return None


def _flatten(name: str, ordinal: int, width: int, spatial: tuple[int, ...]) -> Leaf:
    """An image becoming features: channels first, so a member's real features are a prefix."""
    return Leaf("flatten", name, ordinal, width, width * math.prod(spatial), (), spatial, ())


def _leaves(
    name: str, module: nn.Module, ordinal: int, width: int, spatial: tuple[int, ...]
) -> list[Leaf]:
    """The leaves of ``module`` receiving ``width`` features or channels of ``spatial``."""
    kind = type(module)
    image = bool(spatial)
    if kind is nn.Linear or kind is FlatLinear:
        before = [_flatten("", ordinal, width, spatial)] if image else []
        return [*before, _product(name, module, ordinal)]
    if kind is InputReshape:
        assert isinstance(module, InputReshape)
        if len(module.shape) != 3 or image:
            raise Unbatchable(f"an input reshaped to {module.shape}")
        channels, *pixels = module.shape
        return [Leaf("reshape", "", ordinal, width, channels, (), (), tuple(pixels))]
    if kind is (nn.BatchNorm2d if image else nn.BatchNorm1d):
        assert isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d))
        if not (module.affine and module.track_running_stats and module.momentum is not None):
            raise Unbatchable(f"a {kind.__name__} without affine weights or running statistics")
        detail = (float(module.eps), float(module.momentum))
        return [Leaf("batch_norm", name, ordinal, width, width, detail, spatial, spatial)]
    if kind is SeededDropout:
        assert isinstance(module, SeededDropout)
        return [Leaf("dropout", name, ordinal, width, width, (float(module.p),), spatial, spatial)]
    activation = _activation(module)
    if activation is not None:
        return [Leaf("act", name, ordinal, width, width, activation, spatial, spatial)]
    found = _image_leaf(name, module, ordinal, width, spatial) if image else None
    if found is not None:
        return [found]
    if kind is nn.Flatten:
        assert isinstance(module, nn.Flatten)
        if (module.start_dim, module.end_dim) != (1, -1):
            raise Unbatchable(f"a Flatten over dims {module.start_dim}..{module.end_dim}")
        return [_flatten(name, ordinal, width, spatial)] if image else []  # flat rows stay
    if kind is Standardize:
        assert isinstance(module, Standardize)
        # Training feeds data transformed once, up front, so its models carry the
        # identity: nothing to compute. A real transform only appears in model().
        if module.transform != IDENTITY:
            raise Unbatchable("an input transform other than the identity")
        return []
    # nn.Dropout draws from torch's global generator: its masks cannot be computed.
    raise Unbatchable(f"{kind.__name__} has no batched form")


def member_leaves(model: nn.Module, input_features: int) -> list[Leaf]:
    """The leaves of a compiled network (built on any device, ``meta`` included).

    Raises:
        Unbatchable: naming the first module that cannot be stacked.
    """
    leaves, _, _ = fold_leaves(leaf_modules(model), 0, input_features, ())
    if not leaves or leaves[-1].kind != "head":
        raise Unbatchable("a network that does not end in its linear head")
    return leaves


def fold_leaves(
    modules: Iterable[tuple[str, nn.Module]], ordinal: int, width: int, spatial: tuple[int, ...]
) -> tuple[list[Leaf], int, tuple[int, ...]]:
    """The leaves of ``modules`` run in order, the first numbered ``ordinal``.

    Args:
        modules: ``(state-dict prefix, module)`` pairs, as :func:`leaf_modules` gives them.
        ordinal: The first module's position among the network's modules.
        width: Features, or an image's channels, coming in.
        spatial: ``(height, width)`` of an image coming in; ``()`` when flat.

    Returns:
        The leaves, and the width and spatial size going out.

    Raises:
        Unbatchable: naming the first module that cannot be stacked.
    """
    leaves: list[Leaf] = []
    for position, (name, module) in enumerate(modules, start=ordinal):
        try:
            found = _leaves(name, module, position, width, spatial)
        except Unbatchable as error:
            raise Unbatchable(f"{name}: {error}") from None
        for leaf in found:
            if leaf.width_in != width:
                raise Unbatchable(f"{name}: expects {leaf.width_in} features, gets {width}")
            leaves.append(leaf)
            width, spatial = leaf.width_out, leaf.spatial_out
    return leaves, width, spatial


def bucket(width: int, image: bool) -> int:
    """How wide a stacked model holds ``width`` alone.

    Features are rounded up to a multiple of :data:`CANONICAL`; an image's
    channels stay as they are.

    Channels are not rounded: a convolution costs its channels times its pixels,
    and a member alone would pay for the rounding in every step. Members of an
    exact group therefore share each convolution's channels (its lanes are
    aligned in the stacked weights instead, see ``stacked_conv``).
    """
    return width if image else canonical(width)


def canonical(width: int) -> int:
    """``width`` rounded up to a multiple of :data:`CANONICAL`."""
    return -(-width // CANONICAL) * CANONICAL
