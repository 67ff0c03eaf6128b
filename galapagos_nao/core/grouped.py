"""Training several candidates together as one stacked model, each as if it trained alone.

:func:`fit_group` is :func:`~galapagos_nao.core.training.fit` for a group of
candidates whose networks share a bucketed shape signature
(:func:`group_signature`): one forward and backward per batch for all of them,
batched matmuls instead of one small kernel sequence each. The contract is
equivalence: every member draws its init, its data order and its dropout masks
from its own seeded generator in the same order as ``fit`` does, keeps its own
batch-norm statistics and optimizer state, and so ends with the same weights
and metrics as when trained alone (within float tolerance). A member whose loss
goes non-finite fails alone; the others go on.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional

from galapagos_nao.core.device_data import DeviceData
from galapagos_nao.core.network import build, count_parameters, inherit_weights, seed_init
from galapagos_nao.core.stacked import StackedModel, Unbatchable, shape_signature
from galapagos_nao.core.training import (
    EVAL_BATCH,
    FINITE_CHECK_EVERY,
    CandidateFailure,
    CandidateStopped,
    CandidateTimeout,
    FitResult,
    NonFiniteLoss,
    TrainSettings,
    autocast_for,
    batch_size_for,
    make_optimizer,
    never,
)
from galapagos_nao.core.typing import Genome

__all__ = ["GroupMember", "Unbatchable", "fit_group", "group_signature", "partition"]


@dataclass(frozen=True)
class GroupMember:
    """One candidate of a group: what :func:`fit` takes for it alone.

    Attributes:
        layers: The genome.
        seed: Seeds its init, data order and dropout, exactly as in ``fit``.
        parent_weights: A parent's state dict to inherit from (with ``origins``).
        origins: Parent-layer index of each layer.
    """

    layers: Genome
    seed: int
    parent_weights: Mapping[str, torch.Tensor] | None = None
    origins: Sequence[int | None] | None = None


def group_signature(layers: Genome, input_shape: Sequence[int], n_classes: int) -> Any:
    """The key that candidates must share to train in one group.

    Built on the meta device: no memory, no random draws.

    Raises:
        Unbatchable: naming the module that has no batched form.
        ValueError: If the genome is invalid.
    """
    with torch.device("meta"):
        model = build(layers, input_shape, n_classes)
    return shape_signature(model)


def partition(signatures: Sequence[Any], group_size: int) -> list[list[int]]:
    """Indices grouped by equal signature, in chunks of at most ``group_size``.

    Chunks of one signature are made as even as possible (9 at size 8 → 5 + 4),
    so that no group is left with a single straggler. ``None`` signatures
    (unbatchable) each get a group of their own.
    """
    by_key: dict[Any, list[int]] = {}
    groups: list[list[int]] = []
    for index, key in enumerate(signatures):
        if key is None:
            groups.append([index])
        else:
            by_key.setdefault(key, []).append(index)
    for indices in by_key.values():
        chunks = math.ceil(len(indices) / group_size)
        groups.extend(indices[chunk::chunks] for chunk in range(chunks))
    return groups


def _member_model(member: GroupMember, data: DeviceData) -> tuple[nn.Module, torch.Generator, int]:
    """The member's network initialised as ``fit`` does, its generator and inherited count."""
    generator = torch.Generator().manual_seed(member.seed)
    model = build(member.layers, data.input_shape, data.n_classes)
    seed_init(model, generator)
    inherited = 0
    if member.parent_weights is not None and member.origins is not None:
        inherited = inherit_weights(model, member.parent_weights, member.origins)
    return model, generator, inherited


def _accuracies(
    model: StackedModel, x: torch.Tensor, y: torch.Tensor, precision: str
) -> list[float]:
    """Each member's share of ``x`` classified as ``y``: every member sees the same rows."""
    model.eval()
    size = model.size
    # The activations are P times a single network's: keep a chunk's memory about constant.
    chunk = max(256, EVAL_BATCH * 8 // size)
    correct = torch.zeros(size, dtype=torch.int64, device=x.device)
    rows = x.reshape(x.shape[0], -1)
    with torch.inference_mode(), autocast_for(x.device, precision):
        for start in range(0, rows.shape[0], chunk):
            part = rows[start : start + chunk]
            logits = model(part.unsqueeze(0).expand(size, -1, -1))
            correct += (logits.argmax(dim=2) == y[start : start + chunk]).sum(dim=1)
    model.train()
    return [count / max(1, x.shape[0]) for count in correct.tolist()]


def fit_group(
    members: Sequence[GroupMember],
    data: DeviceData,
    settings: TrainSettings,
    *,
    should_stop: Callable[[], bool] = never,
    deadline: float | None = None,
) -> list[FitResult | CandidateFailure]:
    """Trains the members together; each result equals what ``fit`` gives it alone.

    Args:
        members: Candidates of one :func:`group_signature`.
        data: The task's splits on the training device.
        settings: Training settings.
        should_stop: Polled every batch; True ends every member with CandidateStopped.
        deadline: ``time.monotonic()`` after which every member still training
            ends with CandidateTimeout.

    Returns:
        One entry per member, in order: its FitResult (``seconds`` is the
        group's wall time), or the CandidateFailure that dropped it.

    Raises:
        Unbatchable: If the members cannot be stacked (train them with ``fit``).
        torch.OutOfMemoryError: If the group does not fit; split it and retry.
    """
    started = time.monotonic()
    device = data.device
    built = [_member_model(member, data) for member in members]
    models = [model for model, _, _ in built]
    generators = [generator for _, generator, _ in built]
    stacked = StackedModel(models, device)
    # fit draws dropout masks from the CPU generator on the CPU, else from a device one.
    stacked.generators = [
        g if device.type == "cpu" else torch.Generator(device).manual_seed(m.seed)
        for g, m in zip(generators, members, strict=True)
    ]
    optimizer = make_optimizer(settings, stacked)
    size = len(members)
    failures: dict[int, CandidateFailure] = {}

    n_train = data.x_train.shape[0]
    batch_size = batch_size_for(settings.batch_size, n_train)
    x_rows = data.x_train.reshape(n_train, -1)
    loss_sum = torch.zeros(size, device=device)
    correct = torch.zeros(size, dtype=torch.int64, device=device)
    for _ in range(settings.epochs):
        stacked.train()
        loss_sum.zero_()
        correct.zero_()
        orders = torch.stack([torch.randperm(n_train, generator=g) for g in generators])
        orders = orders.to(device)  # (P, n_train): each member's own data order
        for step, start in enumerate(range(0, n_train, batch_size)):
            failure = _interrupted(should_stop, deadline, started)
            if failure is not None:
                return [failures.get(i, failure) for i in range(size)]
            index = orders[:, start : start + batch_size]
            batch = index.shape[1]
            x = x_rows.index_select(0, index.reshape(-1)).view(size, batch, -1)
            y = data.y_train.index_select(0, index.reshape(-1)).view(size, batch)
            with autocast_for(device, settings.precision):
                logits = stacked(x)
                losses = functional.cross_entropy(
                    logits.float().reshape(size * batch, -1), y.reshape(-1), reduction="none"
                )
                losses = losses.view(size, batch).mean(dim=1)
            optimizer.zero_grad(set_to_none=True)
            # The gradient of a sum reaches each member's own loss with weight 1 whatever
            # the other terms are: a NaN member spoils only its own slice of every tensor.
            losses.sum().backward()
            optimizer.step()
            loss_sum.add_(losses.detach(), alpha=batch)
            correct += (logits.detach().argmax(dim=2) == y).sum(dim=1)
            if step % FINITE_CHECK_EVERY == 0:
                _note_non_finite(loss_sum, failures, step)
    _note_non_finite(loss_sum, failures, None)
    val_accs = _accuracies(stacked, data.x_val, data.y_val, settings.precision)
    test_accs = _accuracies(stacked, data.x_test, data.y_test, settings.precision)
    mean_losses = (loss_sum / n_train).tolist()
    train_accs = [count / n_train for count in correct.tolist()]
    seconds = time.monotonic() - started
    results: list[FitResult | CandidateFailure] = []
    for member, (model, _, inherited) in enumerate(built):
        if member in failures:
            results.append(failures[member])
            continue
        stacked.member_state(member, model)
        weights = {name: t.detach().to("cpu", copy=True) for name, t in model.state_dict().items()}
        results.append(
            FitResult(
                weights=weights,
                loss=mean_losses[member],
                train_acc=train_accs[member],
                val_acc=val_accs[member],
                test_acc=test_accs[member],
                n_params=count_parameters(model),
                inherited=inherited,
                seconds=seconds,
            )
        )
    return results


def _interrupted(
    should_stop: Callable[[], bool], deadline: float | None, started: float
) -> CandidateFailure | None:
    if should_stop():
        return CandidateStopped("the run was stopped")
    if deadline is not None and time.monotonic() > deadline:
        elapsed = time.monotonic() - started
        return CandidateTimeout(f"its group's training exceeded the timeout after {elapsed:.1f}s")
    return None


def _note_non_finite(
    loss_sum: torch.Tensor, failures: dict[int, CandidateFailure], step: int | None
) -> None:
    """Records members whose summed loss is no longer finite (their first failure only)."""
    finite = torch.isfinite(loss_sum).tolist()
    values = loss_sum.tolist()
    for member, ok in enumerate(finite):
        if not ok and member not in failures:
            where = "" if step is None else f" at step {step}"
            failures[member] = NonFiniteLoss(f"training loss became {values[member]}{where}")
