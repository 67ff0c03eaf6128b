"""Fast fit and evaluation of one candidate on device-resident tensors.

The task's splits are copied to each device once per run
(:class:`~galapagos_nao.core.device_data.DeviceDataCache`, re-exported here with
``DeviceData`` and ``resolve_device``); batches are index slices of a shuffled
permutation, so there is no DataLoader and no per-sample Python work. Fitness is
validation accuracy on a split carved from the training data with a fixed seed
(the same split for every candidate of a run); test accuracy is reported, never
selected on.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from galapagos_nao.core import genome
from galapagos_nao.core.device_data import DeviceData, DeviceDataCache, resolve_device
from galapagos_nao.core.genome import SeededDropout
from galapagos_nao.core.network import build, count_parameters, inherit_weights, seed_init
from galapagos_nao.core.typing import Genome

__all__ = [
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
    "estimated_macs",
    "fit",
    "make_optimizer",
    "never",
    "resolve_device",
]

#: Name of this module's section in :mod:`galapagos_nao.config.parameters`.
PARAMETER_SECTION = "training"

logger = logging.getLogger("galapagos_nao.core.training")

#: Samples per forward pass when measuring accuracy (no gradients, so large is cheap).
EVAL_BATCH = 8192
#: Batches between checks of the loss for NaN/inf (each check may sync a GPU).
FINITE_CHECK_EVERY = 50
#: Largest batch ``batch_size="auto"`` picks, and the fewest steps per epoch it keeps.
AUTO_BATCH_MAX = 512
AUTO_BATCH_MIN = 32
AUTO_MIN_STEPS = 100


class CandidateFailure(RuntimeError):
    """A candidate could not be trained; the run drops it and goes on."""


class CandidateTimeout(CandidateFailure):
    """The candidate trained past its ``timeout``."""


class CandidateStopped(CandidateFailure):
    """The run was stopped while the candidate trained."""


class NonFiniteLoss(CandidateFailure):
    """The training loss became NaN or infinite."""


@dataclass(frozen=True, kw_only=True)
class TrainSettings:
    """How one candidate is trained: the record :func:`fit` takes.

    It has no defaults of its own: the ``training`` section of Parameters is
    the one source (``TrainingSettings().train_settings()`` in
    :mod:`galapagos_nao.config.settings` builds one, checked).

    Attributes:
        epochs: Passes over the training split.
        batch_size: Samples per optimizer step, or ``"auto"`` (see :func:`batch_size_for`).
        optimizer: ``"adam"``, ``"adamw"`` or ``"sgd"`` (momentum 0.9).
        learning_rate: The optimizer's learning rate.
        validation_fraction: Share of the training data held out for fitness.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        precision: ``"float32"``, or ``"bf16"`` for autocast on CUDA.
        group_size: Candidates trained together as one stacked model (``"auto"``
            or an int; 1 trains each alone); read by the evaluators, not by :func:`fit`.
    """

    epochs: int
    batch_size: int | str
    optimizer: str
    learning_rate: float
    validation_fraction: float
    device: str
    precision: str
    group_size: int | str


@dataclass(frozen=True)
class FitResult:
    """What training one candidate produced.

    Attributes:
        weights: Trained state dict, as CPU tensors.
        loss: Mean training loss over the last epoch.
        train_acc: Accuracy over the last epoch, measured while training.
        val_acc: Validation accuracy (the fitness).
        test_acc: Test accuracy.
        n_params: Trainable parameters.
        inherited: Tensors copied from the parent before training.
        seconds: Wall time of fit + evaluation.
    """

    weights: dict[str, torch.Tensor]
    loss: float
    train_acc: float
    val_acc: float
    test_acc: float
    n_params: int
    inherited: int
    seconds: float

    def record_fields(self) -> dict[str, Any]:
        """The metrics and weights as ``Network`` keyword arguments."""
        return {
            "test_acc": self.test_acc,
            "val_acc": self.val_acc,
            "train_acc": self.train_acc,
            "loss": self.loss,
            "n_params": self.n_params,
            "weights": self.weights,
        }


def batch_size_for(setting: int | str, n_train: int) -> int:
    """The batch size to train ``n_train`` samples with.

    ``"auto"`` is the largest power of two up to :data:`AUTO_BATCH_MAX` that still
    gives :data:`AUTO_MIN_STEPS` optimizer steps per epoch (never below
    :data:`AUTO_BATCH_MIN`): 512 on full MNIST, 32 on a 3,000-sample subset. Why:
    every step pays a fixed cost in operator dispatch and Python that, for the
    small networks evolution makes, exceeds the arithmetic of a batch of 128; at
    512 an epoch takes about half the time (``make bench``), and with Adam at
    3e-3 one epoch reaches the same accuracy. On small data, large batches would
    leave too few steps to learn anything in one epoch.
    """
    if setting != "auto":
        return int(setting)
    batch = AUTO_BATCH_MAX
    while batch > AUTO_BATCH_MIN and n_train < AUTO_MIN_STEPS * batch:
        batch //= 2
    return batch


def estimated_macs(layers: Genome, input_shape: Sequence[int] | int, n_classes: int) -> int:
    """Multiply-adds per sample of a genome's forward pass, to schedule big ones first.

    Reads shapes and the types' rules instead of building the model, which
    keeps it at microseconds per genome. A genome that does not fit its input
    costs 0: its worker reports the precise error.
    """
    shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
    try:
        return genome.macs(layers, shape, n_classes)
    except (KeyError, TypeError, ValueError):
        return 0


def autocast_for(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """The context a forward pass runs in: bf16 autocast on CUDA when asked, else none.

    bf16 stays off on the CPU: without native bf16 matrix units it is slower
    there, and the networks are too small for memory to matter.
    """
    if precision == "bf16" and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def accuracy(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    precision: str = "float32",
    groups: torch.Tensor | None = None,
) -> float:
    """Share of ``x`` that ``model`` classifies as ``y``, in large no-grad batches.

    With ``groups`` (``(n,)`` int64, e.g. the task of each sample in a stream) it
    is the mean of the per-group accuracies, so every group weighs the same.
    """
    was_training = model.training
    model.eval()
    hits = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    with torch.inference_mode(), autocast_for(x.device, precision):
        for start in range(0, x.shape[0], EVAL_BATCH):
            logits = model(x[start : start + EVAL_BATCH])
            hits[start : start + EVAL_BATCH] = logits.argmax(dim=1) == y[start : start + EVAL_BATCH]
    model.train(was_training)
    if groups is None:
        return hits.sum().item() / max(1, x.shape[0])
    totals = torch.bincount(groups)
    correct = torch.bincount(groups[hits], minlength=len(totals))
    present = totals > 0
    return (correct[present] / totals[present]).mean().item()


def make_optimizer(settings: TrainSettings, model: nn.Module) -> torch.optim.Optimizer:
    """The optimizer ``settings`` name over ``model``'s parameters (fused where it can be)."""
    params = list(model.parameters())
    # The fused kernels update every tensor in one call: on the CPU the per-tensor
    # loop of the default Adam costs more than the forward pass of a small network.
    fused = all(p.is_floating_point() for p in params)
    if settings.optimizer == "sgd":
        return torch.optim.SGD(params, lr=settings.learning_rate, momentum=0.9, fused=fused)
    if settings.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=settings.learning_rate, fused=fused)
    return torch.optim.Adam(params, lr=settings.learning_rate, fused=fused)


def _attach_generator(model: nn.Module, generator: torch.Generator) -> None:
    for module in model.modules():
        if isinstance(module, SeededDropout):
            module.generator = generator


def never() -> bool:
    """A ``should_stop`` that never asks to stop."""
    return False


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
        seed: Seeds init, shuffling and dropout, so the same seed trains the same.
        parent_weights: A parent's state dict to inherit from (with ``origins``).
        origins: Parent-layer index of each layer (see ``evolution.Offspring``).
        should_stop: Polled every batch; True ends training with CandidateStopped.
        deadline: ``time.monotonic()`` after which training ends with CandidateTimeout.

    Returns:
        The trained weights (CPU) and metrics.

    Raises:
        CandidateFailure: on stop, timeout or a non-finite loss.
    """
    started = time.monotonic()
    device = data.device
    cpu_generator = torch.Generator().manual_seed(seed)
    model = build(layers, data.input_shape, data.n_classes)
    seed_init(model, cpu_generator)
    inherited = 0
    if parent_weights is not None and origins is not None:
        inherited = inherit_weights(model, parent_weights, origins)
    model.to(device)
    device_generator = (
        cpu_generator if device.type == "cpu" else torch.Generator(device).manual_seed(seed)
    )
    _attach_generator(model, device_generator)
    optimizer = make_optimizer(settings, model)
    loss_fn = nn.CrossEntropyLoss()

    n_train = data.x_train.shape[0]
    batch_size = batch_size_for(settings.batch_size, n_train)
    # index_select on a (n, features) view is several times faster than advanced
    # indexing of the (n, *input_shape) tensor; the model flattens its input anyway.
    x_rows = data.x_train.reshape(n_train, -1)
    # A last batch of one sample cannot train batch_norm (no variance to normalize
    # by); it is left out of that epoch, and the next epoch's order trains it.
    n_batched = n_train - 1 if n_train > 1 and n_train % batch_size == 1 else n_train
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    for _ in range(settings.epochs):
        model.train()
        loss_sum.zero_()
        correct.zero_()
        order = torch.randperm(n_train, generator=cpu_generator).to(device)
        for step, start in enumerate(range(0, n_batched, batch_size)):
            if should_stop():
                raise CandidateStopped("the run was stopped")
            if deadline is not None and time.monotonic() > deadline:
                raise CandidateTimeout(
                    f"training exceeded its timeout after {time.monotonic() - started:.1f}s"
                )
            index = order[start : min(start + batch_size, n_batched)]
            x, y = x_rows.index_select(0, index), data.y_train.index_select(0, index)
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
