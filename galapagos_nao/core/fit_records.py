"""What training one candidate takes and gives: settings, results, failures and helpers.

Shared by :mod:`~galapagos_nao.core.grouped` (a group's fit) and
:mod:`~galapagos_nao.core.training` (one candidate's, which re-exports all of
this module): the settings record, the result record, the failures a run
drops a candidate for, the batch size rule, the optimizer and accuracy.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from galapagos_nao.core import genome
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
    "FitResult",
    "NonFiniteLoss",
    "TrainSettings",
    "accuracy",
    "autocast_for",
    "batch_size_for",
    "estimated_macs",
    "hit_rates",
    "make_optimizer",
    "never",
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
        max_memory: Bytes one candidate (or group) may need to train, or ``"auto"``;
            read by the evaluators, which drop candidates over it before training.
        cuda_graphs: ``"auto"``, True or False: whether a group training on CUDA
            replays its full-batch step as a CUDA graph (:mod:`~galapagos_nao.core.graph_step`).
    """

    epochs: int
    batch_size: int | str
    optimizer: str
    learning_rate: float
    validation_fraction: float
    device: str
    precision: str
    group_size: int | str
    max_memory: int | str
    cuda_graphs: bool | str


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


def autocast_for(
    device: torch.device, precision: str, *, cache: bool = True
) -> contextlib.AbstractContextManager[Any]:
    """The context a forward pass runs in: bf16 autocast on CUDA when asked, else none.

    bf16 stays off on the CPU: without native bf16 matrix units it is slower
    there, and the networks are too small for memory to matter. ``cache=False``
    under CUDA graph capture (torch's cache of cast weights must not be captured).
    """
    if precision == "bf16" and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=cache)
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
    return hit_rates(hits.unsqueeze(0), groups)[0]


def hit_rates(hits: torch.Tensor, groups: torch.Tensor | None = None) -> list[float]:
    """Each row's accuracy from its ``(rows, n)`` bool hits.

    With ``groups`` (``(n,)`` int64, e.g. the task of each sample in a stream) a
    row's accuracy is the mean of its per-group accuracies, so every group
    weighs the same.
    """
    n = hits.shape[1]
    if groups is None:
        return [count / max(1, n) for count in hits.sum(dim=1).tolist()]
    totals = torch.bincount(groups)
    present = totals > 0
    rates = []
    for row in hits:
        correct = torch.bincount(groups[row], minlength=len(totals))
        rates.append((correct[present] / totals[present]).mean().item())
    return rates


def make_optimizer(
    settings: TrainSettings, model: nn.Module, *, capturable: bool = False
) -> torch.optim.Optimizer:
    """The optimizer ``settings`` name over ``model``'s parameters (fused where it can be).

    ``capturable``: Adam's and AdamW's step count on the device, for a CUDA graph
    (SGD's update has no step count, and captures as it is).
    """
    params = list(model.parameters())
    # The fused kernels update every tensor in one call: on the CPU the per-tensor
    # loop of the default Adam costs more than the forward pass of a small network.
    fused = all(p.is_floating_point() for p in params)
    if settings.optimizer == "sgd":
        return torch.optim.SGD(params, lr=settings.learning_rate, momentum=0.9, fused=fused)
    if settings.optimizer == "adamw":
        optimizer: torch.optim.Optimizer = torch.optim.AdamW(
            params, lr=settings.learning_rate, fused=fused, capturable=capturable
        )
    else:
        optimizer = torch.optim.Adam(
            params, lr=settings.learning_rate, fused=fused, capturable=capturable
        )
    if capturable:  # its first step and an epoch's last, smaller batch run uncaptured,
        # by design: torch's warning that this is slow would only repeat the caller's choice
        optimizer._warned_capturable_if_run_uncaptured = True
    return optimizer


def never() -> bool:
    """A ``should_stop`` that never asks to stop."""
    return False
