"""Several compiled networks of one shape as a single stacked model.

The members' parameters are stacked along a leading population axis ``P`` and
one forward pass runs all of them with batched matmuls: activations are
``(P, batch, features)``. Each member keeps its own dropout generator, dropout
rate, leaky-ReLU slope and batch-norm statistics, so a member computes what its
own ``nn.Sequential`` would.

Dense widths may differ inside a bucket (:data:`WIDTH_BUCKET`): narrower members
are zero-padded to the widest, and the padded units are multiplied by zero after
every operation that could make them non-zero. The padded weights therefore see
zero inputs and zero gradients and stay exactly zero, and the real units compute
exactly what the unpadded network computes (up to float summation order).

Why explicit ``bmm`` rather than ``torch.func.vmap(functional_call)``: vmap's
``randomness="different"`` draws from torch's global generator and cannot replay
each member's own dropout generator, which equivalence with ``fit`` needs. On the
2-core dev VM vmap was 2-10% faster per forward+backward on a dropout-free
five-layer seed-like network (batch 512: 4.5 against 4.5-5.3 ms at P=4, 8.2-8.4
against 9.1-9.7 ms at P=8), a gap worth revisiting on a GPU.

Only modules whose batched form is written here can be stacked; anything else
(a user-registered layer building its own modules) raises :class:`Unbatchable`
and the caller trains that candidate alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional

from galapagos_nao.core.genome import SeededDropout
from galapagos_nao.core.transform import IDENTITY, Standardize

__all__ = ["WIDTH_BUCKET", "StackedModel", "Unbatchable", "leaf_modules", "shape_signature"]

#: Dense widths are grouped by ``ceil(width / WIDTH_BUCKET)``: after mutation exact
#: widths rarely repeat, and padding to the widest of a bucket costs at most 15 units.
WIDTH_BUCKET = 16

#: Element-wise modules that map 0 to 0 and need no per-member parameter.
_ZERO_PRESERVING: dict[type[nn.Module], Any] = {nn.ReLU: torch.relu, nn.Tanh: torch.tanh}


class Unbatchable(ValueError):
    """A network holds a module the stacked model cannot run; the message says which."""


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


def _leaf_key(module: nn.Module) -> tuple[Any, ...]:
    """What must be equal between members for one module to be stacked."""
    kind = type(module)
    if kind is nn.Linear:
        assert isinstance(module, nn.Linear)
        return ("linear", math.ceil(module.out_features / WIDTH_BUCKET), module.bias is not None)
    if kind is nn.BatchNorm1d:
        assert isinstance(module, nn.BatchNorm1d)
        if not (module.affine and module.track_running_stats and module.momentum is not None):
            raise Unbatchable("a BatchNorm1d without affine weights or running statistics")
        return ("batch_norm", module.eps, module.momentum)
    if kind is nn.Flatten:
        assert isinstance(module, nn.Flatten)
        if (module.start_dim, module.end_dim) != (1, -1):
            raise Unbatchable(f"a Flatten over dims {module.start_dim}..{module.end_dim}")
        return ("flatten",)
    if kind is Standardize:
        assert isinstance(module, Standardize)
        # Training feeds data transformed once, up front, so its models carry the
        # identity: nothing to compute. A real transform only appears in model().
        if module.transform != IDENTITY:
            raise Unbatchable("an input transform other than the identity")
        return ("flatten",)
    if kind is nn.Softplus:
        assert isinstance(module, nn.Softplus)
        return ("softplus", module.beta, module.threshold)
    if kind in (SeededDropout, nn.LeakyReLU, nn.Sigmoid) or kind in _ZERO_PRESERVING:
        return (kind.__name__,)  # dropout rate and leaky slope may differ per member
    # nn.Dropout draws from torch's global generator: its masks cannot be replayed.
    raise Unbatchable(f"{kind.__name__} has no batched form")


def shape_signature(model: nn.Module) -> tuple[Any, ...]:
    """The bucketed shape signature: members with equal signatures can be stacked.

    Raises:
        Unbatchable: naming the first module that cannot be stacked.
    """
    keys = []
    for name, module in leaf_modules(model):
        try:
            keys.append((name, *_leaf_key(module)))
        except Unbatchable as error:
            raise Unbatchable(f"{name}: {error}") from None
    return tuple(keys)


@dataclass(frozen=True, eq=False)
class _Op:
    """One stacked module: its kind, its state-dict prefix and what it needs."""

    kind: str
    name: str
    width: int  # padded features coming out
    widths: tuple[int, ...]  # each member's real features coming out
    mask: torch.Tensor | None = None  # (P, 1, width) ones on real units; None if unpadded
    per_member: torch.Tensor | None = None  # (P, 1, 1) dropout keep scale or leaky slope
    rates: tuple[float, ...] = ()  # dropout rates as Python floats (0 skips the draw)
    numbers: tuple[float, ...] = ()  # batch norm (eps, momentum); softplus (beta, threshold)


class StackedModel(nn.Module):
    """``P`` networks of one signature, run as one model on ``(P, batch, features)``.

    Args:
        models: The members' compiled networks (``build()``), already initialised.
        device: Where the stacked parameters live.

    Attributes:
        generators: Each member's dropout generator (set by the trainer).

    Raises:
        Unbatchable: If a module cannot be stacked or the signatures differ.
    """

    def __init__(self, models: Sequence[nn.Module], device: torch.device) -> None:
        super().__init__()
        signatures = {shape_signature(model) for model in models}
        if len(signatures) != 1:
            raise Unbatchable("the members' shape signatures differ")
        self.size = len(models)
        self.generators: list[torch.Generator | None] = [None] * self.size
        self.ops: list[_Op] = []
        self.train_steps = 0  # training forwards: each BatchNorm1d's num_batches_tracked
        members = [dict(leaf_modules(model)) for model in models]
        widths = tuple(_in_features(m) for m in models)
        padded = max(widths)
        with torch.no_grad():
            for name in members[0]:
                modules = [m[name] for m in members]
                widths, padded = self._add(name, modules, widths, padded, device)
        self.to(device)

    def _mask(self, widths: tuple[int, ...], padded: int, device: torch.device) -> torch.Tensor:
        mask = torch.zeros(self.size, 1, padded, device=device)
        for member, width in enumerate(widths):
            mask[member, 0, :width] = 1.0
        return mask

    def _add(
        self,
        name: str,
        modules: list[nn.Module],
        widths: tuple[int, ...],
        padded: int,
        device: torch.device,
    ) -> tuple[tuple[int, ...], int]:
        first = modules[0]
        key = name.replace(".", "_")
        mask = None if len(set(widths)) == 1 else self._mask(widths, padded, device)
        op: _Op
        if isinstance(first, nn.Linear):
            outs: tuple[int, ...] = tuple(_each(modules, "out_features"))
            out = max(outs)
            weight = torch.zeros(self.size, out, padded)
            bias = torch.zeros(self.size, out) if first.bias is not None else None
            for member, module in enumerate(modules):
                assert isinstance(module, nn.Linear)
                weight[member, : module.out_features, : module.in_features] = module.weight
                if bias is not None:
                    bias[member, : module.out_features] = module.bias
            self.register_parameter(f"{key}_weight", nn.Parameter(weight))
            if bias is not None:
                self.register_parameter(f"{key}_bias", nn.Parameter(bias))
            widths, padded = outs, out
            op = _Op("linear", name, out, outs)
        elif isinstance(first, nn.BatchNorm1d):
            # Flattened to (P * width,): F.batch_norm then keeps one channel per
            # member and feature, which is exactly each member's own statistics.
            for part in ("weight", "bias", "running_mean", "running_var"):
                fill = 1.0 if part in ("weight", "running_var") else 0.0
                stacked = torch.full((self.size, padded), fill)
                for member, module in enumerate(modules):
                    stacked[member, : widths[member]] = getattr(module, part)
                flat = stacked.reshape(-1)
                if part in ("weight", "bias"):
                    self.register_parameter(f"{key}_{part}", nn.Parameter(flat))
                else:
                    self.register_buffer(f"{key}_{part}", flat)
            numbers = (first.eps, float(first.momentum or 0.0))
            op = _Op("batch_norm", name, padded, widths, mask, numbers=numbers)
        elif isinstance(first, SeededDropout):
            rates = tuple(map(float, _each(modules, "p")))
            rate = torch.tensor(rates, device=device).view(-1, 1, 1)
            op = _Op("dropout", name, padded, widths, per_member=1.0 - rate, rates=rates)
        elif isinstance(first, nn.LeakyReLU):
            slopes = list(map(float, _each(modules, "negative_slope")))
            slope = torch.tensor(slopes, device=device).view(-1, 1, 1)
            op = _Op("leaky_relu", name, padded, widths, per_member=slope)
        elif isinstance(first, nn.Softplus):
            numbers = (float(first.beta), float(first.threshold))
            op = _Op("softplus", name, padded, widths, mask, numbers=numbers)
        elif isinstance(first, nn.Sigmoid):
            op = _Op("sigmoid", name, padded, widths, mask)
        else:  # Flatten and the zero-preserving activations
            op = _Op(type(first).__name__, name, padded, widths)
        self.ops.append(op)
        return widths, padded

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(P, batch, classes)`` of input ``(P, batch, features)``."""
        if self.training:
            self.train_steps += 1
        for op in self.ops:
            x = self._run(op, x)
            if op.mask is not None:
                x = x * op.mask  # padded units back to exactly zero (and no gradient)
        return x

    def _run(self, op: _Op, x: torch.Tensor) -> torch.Tensor:
        key = op.name.replace(".", "_")
        if op.kind == "linear":
            weight = getattr(self, f"{key}_weight")
            bias = getattr(self, f"{key}_bias", None)
            if bias is None:
                return torch.bmm(x, weight.transpose(1, 2))
            return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))
        if op.kind == "batch_norm":
            size, batch, width = x.shape
            flat = x.transpose(0, 1).reshape(batch, size * width)
            out = functional.batch_norm(
                flat,
                getattr(self, f"{key}_running_mean"),
                getattr(self, f"{key}_running_var"),
                getattr(self, f"{key}_weight"),
                getattr(self, f"{key}_bias"),
                self.training,
                op.numbers[1],
                op.numbers[0],
            )
            return out.view(batch, size, width).transpose(0, 1)
        if op.kind == "dropout":
            if not self.training:
                return x
            assert op.per_member is not None
            return x * self._keep(op, x) / op.per_member
        if op.kind == "leaky_relu":
            assert op.per_member is not None
            return torch.where(x > 0, x, x * op.per_member)
        if op.kind == "softplus":
            return functional.softplus(x, beta=op.numbers[0], threshold=op.numbers[1])
        if op.kind == "sigmoid":
            return torch.sigmoid(x)
        if op.kind in ("ReLU", "Tanh"):
            return _ZERO_PRESERVING[getattr(nn, op.kind)](x)
        return x  # Flatten and the identity transform: rows are flat already

    def _keep(self, op: _Op, x: torch.Tensor) -> torch.Tensor:
        """Each member's keep mask, drawn from its own generator as SeededDropout draws it."""
        widths = op.widths
        size, batch, width = x.shape
        keep = torch.ones(size, batch, width, dtype=torch.bool, device=x.device)
        for member, (rate, generator) in enumerate(zip(op.rates, self.generators, strict=True)):
            if rate == 0.0:
                continue  # SeededDropout returns early without drawing
            draw = torch.rand((batch, widths[member]), generator=generator, device=x.device)
            keep[member, :, : widths[member]] = draw >= rate
        return keep

    def member_state(self, member: int, model: nn.Module) -> None:
        """Copies member ``member``'s trained tensors into its own compiled ``model``."""
        leaves = dict(leaf_modules(model))
        with torch.no_grad():
            for op in self.ops:
                widths = op.widths
                module = leaves[op.name]
                key = op.name.replace(".", "_")
                if isinstance(module, nn.Linear):
                    weight = getattr(self, f"{key}_weight")[member]
                    module.weight.copy_(weight[: module.out_features, : module.in_features])
                    if module.bias is not None:
                        module.bias.copy_(getattr(self, f"{key}_bias")[member, : widths[member]])
                elif isinstance(module, nn.BatchNorm1d):
                    start = member * op.width
                    for part in ("weight", "bias", "running_mean", "running_var"):
                        flat = getattr(self, f"{key}_{part}")
                        getattr(module, part).copy_(flat[start : start + widths[member]])
                    assert module.num_batches_tracked is not None
                    module.num_batches_tracked.add_(
                        self.train_steps
                    )  # on top of any inherited count


def _each(modules: Sequence[nn.Module], attribute: str) -> list[Any]:
    """``attribute`` of every member's module (the modules are of one type)."""
    return [getattr(module, attribute) for module in modules]


def _in_features(model: nn.Module) -> int:
    for _, module in leaf_modules(model):
        if isinstance(module, nn.Linear):
            return module.in_features
    raise Unbatchable("a network without a linear layer")
