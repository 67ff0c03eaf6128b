"""A compiled network read as the records a stacked model computes: its *leaves*.

A compiled network is read as a list of :class:`Leaf` records, one per module
that computes something: a product (linear, the head), a batch norm, an
activation, a dropout. :mod:`~galapagos_nao.core.group_plan` aligns members'
leaves into the slots of a group.

Every flat width is rounded up to a multiple of :data:`CANONICAL`, alone too
(see :mod:`~galapagos_nao.core.group_plan` for why).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from torch import nn

from galapagos_nao.core.genome import SeededDropout
from galapagos_nao.core.transform import IDENTITY, Standardize

__all__ = [
    "CANONICAL",
    "ZERO_PRESERVING",
    "Leaf",
    "Unbatchable",
    "canonical",
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
        kind: ``linear``, ``head``, ``batch_norm``, ``act`` or ``dropout``.
        name: State-dict prefix of its tensors (``layer0.0``); ``""`` without any.
        ordinal: Its position among the member's leaves: the word that makes its
            random stream differ from the member's other layers'.
        width_in: Real features coming in.
        width_out: Real features going out.
        detail: What varies per member: ``(kind, slope)`` for an activation,
            ``(rate,)`` for dropout, ``(eps, momentum)`` for batch norm.
    """

    kind: str
    name: str
    ordinal: int
    width_in: int
    width_out: int
    detail: tuple[Any, ...] = ()

    @property
    def token(self) -> tuple[Any, ...]:
        """What two members' leaves must share to sit in one slot."""
        if self.kind == "batch_norm":
            return (self.kind, *self.detail)  # eps and momentum are the slot's
        return (self.kind,)


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


def _leaf(name: str, module: nn.Module, ordinal: int, width: int) -> Leaf | None:
    """The leaf of ``module`` receiving ``width`` features; None for a no-op."""
    kind = type(module)
    if kind is nn.Linear:
        assert isinstance(module, nn.Linear)
        if module.bias is None:
            raise Unbatchable("a Linear without a bias")
        role = "head" if name == "head" else "linear"
        return Leaf(role, name, ordinal, module.in_features, module.out_features)
    if kind is nn.BatchNorm1d:
        assert isinstance(module, nn.BatchNorm1d)
        if not (module.affine and module.track_running_stats and module.momentum is not None):
            raise Unbatchable("a BatchNorm1d without affine weights or running statistics")
        detail = (float(module.eps), float(module.momentum))
        return Leaf("batch_norm", name, ordinal, width, width, detail)
    if kind is SeededDropout:
        assert isinstance(module, SeededDropout)
        return Leaf("dropout", name, ordinal, width, width, (float(module.p),))
    activation = _activation(module)
    if activation is not None:
        return Leaf("act", name, ordinal, width, width, activation)
    if kind is nn.Flatten:
        assert isinstance(module, nn.Flatten)
        if (module.start_dim, module.end_dim) != (1, -1):
            raise Unbatchable(f"a Flatten over dims {module.start_dim}..{module.end_dim}")
        return None  # the rows are flat already
    if kind is Standardize:
        assert isinstance(module, Standardize)
        # Training feeds data transformed once, up front, so its models carry the
        # identity: nothing to compute. A real transform only appears in model().
        if module.transform != IDENTITY:
            raise Unbatchable("an input transform other than the identity")
        return None
    # nn.Dropout draws from torch's global generator: its masks cannot be computed.
    raise Unbatchable(f"{kind.__name__} has no batched form")


def member_leaves(model: nn.Module, input_features: int) -> list[Leaf]:
    """The leaves of a compiled network (built on any device, ``meta`` included).

    Raises:
        Unbatchable: naming the first module that cannot be stacked.
    """
    leaves: list[Leaf] = []
    width = input_features
    for ordinal, (name, module) in enumerate(leaf_modules(model)):
        try:
            leaf = _leaf(name, module, ordinal, width)
        except Unbatchable as error:
            raise Unbatchable(f"{name}: {error}") from None
        if leaf is not None:
            if leaf.width_in != width:
                raise Unbatchable(f"{name}: expects {leaf.width_in} features, gets {width}")
            leaves.append(leaf)
            width = leaf.width_out
    if not leaves or leaves[-1].kind != "head":
        raise Unbatchable("a network that does not end in its linear head")
    return leaves


def canonical(width: int) -> int:
    """``width`` rounded up to a multiple of :data:`CANONICAL`."""
    return -(-width // CANONICAL) * CANONICAL
