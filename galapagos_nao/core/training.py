"""Fast fit and evaluation of one candidate on device-resident tensors.

The task's splits are copied to each device once per run
(:class:`~galapagos_nao.core.device_data.DeviceDataCache`, re-exported here with
``DeviceData`` and ``resolve_device``); batches are index slices of a shuffled
permutation, so there is no DataLoader and no per-sample Python work. Fitness is
validation accuracy on a split carved from the training data with a fixed seed
(the same split for every candidate of a run); test accuracy is reported, never
selected on.

A candidate alone trains as a group of one
(:func:`~galapagos_nao.core.grouped.fit_group`), so it computes exactly what it
computes in any group. Only a network holding a module with no batched form (a
user's layer type) trains as its own ``nn.Sequential`` here; its random draws
come from the same :mod:`~galapagos_nao.core.counter_rng` streams.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from galapagos_nao.core import counter_rng
from galapagos_nao.core.device_data import DeviceData, DeviceDataCache, resolve_device
from galapagos_nao.core.fit_records import (
    AUTO_BATCH_MAX,
    AUTO_BATCH_MIN,
    AUTO_MIN_STEPS,
    EVAL_BATCH,
    FINITE_CHECK_EVERY,
    PARAMETER_SECTION,
    CandidateFailure,
    CandidateStopped,
    CandidateTimeout,
    FitResult,
    NonFiniteLoss,
    TrainSettings,
    accuracy,
    autocast_for,
    batch_size_for,
    estimated_macs,
    make_optimizer,
    never,
)
from galapagos_nao.core.genome import SeededDropout
from galapagos_nao.core.grouped import GroupMember, Unbatchable, fit_group, single_thread_on_cpu
from galapagos_nao.core.inheritance import inherit_weights
from galapagos_nao.core.network import build, count_parameters
from galapagos_nao.core.stacked_dropout import kept_scales
from galapagos_nao.core.typing import Genome

__all__ = [
    "AUTO_BATCH_MAX",
    "AUTO_BATCH_MIN",
    "AUTO_MIN_STEPS",
    "EVAL_BATCH",
    "FINITE_CHECK_EVERY",
    "PARAMETER_SECTION",
    "CandidateFailure",
    "CandidateStopped",
    "CandidateTimeout",
    "DeviceData",
    "DeviceDataCache",
    "FitResult",
    "NonFiniteLoss",
    "TrainSettings",
    "accuracy",
    "autocast_for",
    "batch_size_for",
    "counter_init",
    "estimated_macs",
    "fit",
    "leaf_ordinals",
    "make_optimizer",
    "never",
    "resolve_device",
]


def fit(
    layers: Genome,
    data: DeviceData,
    settings: TrainSettings,
    *,
    seed: int,
    parent_weights: Mapping[str, torch.Tensor] | None = None,
    origins: Sequence[int | None] | None = None,
    should_stop: Callable[[], bool] = never,
    deadline: float | None = None,
) -> FitResult:
    """Trains one genome and measures it.

    Args:
        layers: The genome (validated by :func:`~galapagos_nao.core.network.build`).
        data: The task's splits on the training device.
        settings: Training settings.
        seed: Keys init, shuffling and dropout, so the same seed trains the same.
        parent_weights: A parent's state dict to inherit from (with ``origins``).
        origins: Parent-layer index of each layer (see ``evolution.Offspring``).
        should_stop: Polled every batch; True ends training with CandidateStopped.
        deadline: ``time.monotonic()`` after which training ends with CandidateTimeout.

    Returns:
        The trained weights (CPU) and metrics.

    Raises:
        CandidateFailure: on stop, timeout or a non-finite loss.
    """
    member = GroupMember(layers, seed, parent_weights, origins)
    try:
        (result,) = fit_group([member], data, settings, should_stop=should_stop, deadline=deadline)
    except Unbatchable:
        with single_thread_on_cpu(data.device):
            return _fit_module(member, data, settings, should_stop, deadline)
    if isinstance(result, CandidateFailure):
        raise result
    return result


def counter_init(model: nn.Module, seed: int) -> None:
    """Initialises every linear and convolutional layer from ``seed``'s counter streams.

    torch's default distribution, ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, for
    weights and biases; each value is the hash of the seed, the module's place
    and the value's index (:mod:`~galapagos_nao.core.counter_rng`). A module's
    place is the one the stacked model gives it (:func:`leaf_ordinals`), so a
    network initialised here starts with the values it starts with in a group.
    """
    keys = counter_rng.member_keys([seed])
    with torch.no_grad():
        for module, ordinal in leaf_ordinals(model).items():
            if not isinstance(module, (nn.Linear, nn.Conv2d)):
                continue
            limit = torch.tensor(1.0 / math.sqrt(module.weight[0].numel()), dtype=torch.float32)
            for tag, tensor in (
                (counter_rng.INIT_WEIGHT, module.weight),
                (counter_rng.INIT_BIAS, module.bias),
            ):
                if tensor is None:
                    continue
                counters = torch.arange(tensor.numel()).view(1, *tensor.shape)
                draw = counter_rng.uniform(counter_rng.stream_keys(keys, tag, ordinal), counters)
                tensor.copy_(((draw * 2.0 - 1.0) * limit)[0])


class _CountedDropout(nn.Module):
    """Dropout whose masks are the counter streams' (a stand-in for ``SeededDropout``)."""

    def __init__(self, rate: float, keys: torch.Tensor, ordinal: int, steps: list[int]) -> None:
        super().__init__()
        self.rate = rate
        self.stream = counter_rng.stream_keys(keys, counter_rng.DROPOUT, ordinal)
        self.steps = steps  # shared with the trainer: [training steps so far]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if not self.training or self.rate == 0.0:
            return x
        keys = counter_rng.stream_keys(self.stream.to(x.device), self.steps[0])
        counters = torch.arange(x.numel(), device=x.device).view(1, *x.shape)
        thresholds = counter_rng.keep_thresholds([self.rate], x.device)[0]
        keep = counter_rng.keep_mask(keys, counters, thresholds)
        scale = kept_scales(torch.tensor(self.rate, dtype=torch.float32)).to(x.device, x.dtype)
        return x * torch.where(keep[0], scale, 0.0)  # as a stacked dropout slot scales


def leaf_ordinals(model: nn.Module) -> dict[nn.Module, int]:
    """Each module that holds no others (containers aside), by its place among them.

    For a network of ``nn.Sequential`` blocks these are the leaves'
    :attr:`~galapagos_nao.core.group_leaves.Leaf.ordinal`: the word that keys
    the module's random streams alone and in a group.
    """
    found = [
        m
        for m in model.modules()
        if next(m.children(), None) is None and not isinstance(m, nn.Sequential)
    ]
    return {module: ordinal for ordinal, module in enumerate(found)}


def _counted_dropouts(model: nn.Module, seed: int, steps: list[int]) -> None:
    keys = counter_rng.member_keys([seed])
    ordinals = leaf_ordinals(model)
    for name, module in list(model.named_modules()):
        if isinstance(module, SeededDropout):
            ordinal = ordinals[module]
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, _CountedDropout(module.p, keys, ordinal, steps))


def _fit_module(
    member: GroupMember,
    data: DeviceData,
    settings: TrainSettings,
    should_stop: Callable[[], bool],
    deadline: float | None,
) -> FitResult:
    """One network with a module the stacked model cannot run, trained as ``nn.Sequential``."""
    started = time.monotonic()
    device = data.device
    model = build(member.layers, data.input_shape, data.n_classes)
    counter_init(model, member.seed)
    inherited = 0
    if member.parent_weights is not None and member.origins is not None:
        inherited = inherit_weights(model, member.parent_weights, member.origins)
    steps = [0]
    _counted_dropouts(model, member.seed, steps)
    model.to(device)
    optimizer = make_optimizer(settings, model)
    loss_fn = nn.CrossEntropyLoss()
    keys = counter_rng.member_keys([member.seed], device)
    n_train = data.x_train.shape[0]
    batch_size = batch_size_for(settings.batch_size, n_train)
    x_rows = data.x_train.reshape(n_train, -1)
    n_batched = n_train - 1 if n_train > 1 and n_train % batch_size == 1 else n_train
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    for epoch in range(settings.epochs):
        model.train()
        loss_sum.zero_()
        correct.zero_()
        order_keys = counter_rng.stream_keys(keys, counter_rng.ORDER, epoch)
        order = counter_rng.permutations(order_keys, n_train)[0]
        for step, start in enumerate(range(0, n_batched, batch_size)):
            if should_stop():
                raise CandidateStopped("the run was stopped")
            if deadline is not None and time.monotonic() > deadline:
                raise CandidateTimeout(
                    f"training exceeded its timeout after {time.monotonic() - started:.1f}s"
                )
            index = order[start : min(start + batch_size, n_batched)]
            x, y = x_rows.index_select(0, index), data.y_train.index_select(0, index)
            steps[0] += 1
            with autocast_for(device, settings.precision):
                logits = model(x)
                loss = loss_fn(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum.add_(loss.detach(), alpha=y.shape[0])
            correct += (logits.detach().argmax(dim=1) == y).sum()
            if step % FINITE_CHECK_EVERY == 0 and not torch.isfinite(loss_sum).item():
                raise NonFiniteLoss(f"training loss became {loss_sum.item()} at step {step}")
    mean_loss = loss_sum.item() / n_batched
    if not math.isfinite(mean_loss):
        raise NonFiniteLoss(f"training loss became {mean_loss}")
    val_acc = accuracy(
        model, data.x_val, data.y_val, precision=settings.precision, groups=data.val_groups
    )
    test_acc = accuracy(
        model, data.x_test, data.y_test, precision=settings.precision, groups=data.test_groups
    )
    weights = {
        name: tensor.detach().to("cpu", copy=True) for name, tensor in model.state_dict().items()
    }
    return FitResult(
        weights=weights,
        loss=mean_loss,
        train_acc=correct.item() / n_batched,
        val_acc=val_acc,
        test_acc=test_acc,
        n_params=count_parameters(model),
        inherited=inherited,
        seconds=time.monotonic() - started,
    )
