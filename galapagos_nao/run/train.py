"""Training one candidate into a Network record, shared by every evaluator.

Local threads and Ray workers both call :func:`train_candidate` and
:func:`failed_outcome`, so records and log lines are the same whatever the backend.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch

from galapagos_nao.core.budget import (
    MemoryEstimate,
    OverBudget,
    estimate_training_memory,
    format_bytes,
)
from galapagos_nao.core.network import Network
from galapagos_nao.core.training import (
    CandidateFailure,
    CandidateStopped,
    FitResult,
    TrainSettings,
    batch_size_for,
    fit,
)
from galapagos_nao.run.records import CANDIDATE_LOGGER, Candidate, Outcome

__all__ = ["failed_outcome", "fitted_outcome", "train_candidate", "training_memory"]

logger = logging.getLogger("galapagos_nao.run")
candidate_logger = logging.getLogger(CANDIDATE_LOGGER)


def train_candidate(
    candidate: Candidate,
    data: Any,
    settings: TrainSettings,
    should_stop: Callable[[], bool],
    deadline: float | None,
    budget: int | None = None,
) -> Outcome:
    """Trains one candidate and wraps the result as a Network record.

    Shared by every evaluator so that records and log lines are the same
    whatever the backend. Failures raise; callers turn them into outcomes.

    Args:
        candidate: The candidate.
        data: The task's splits on its device.
        settings: Training settings.
        should_stop: Polled every batch.
        deadline: ``time.monotonic()`` after which it times out.
        budget: Bytes it may need to train (``training.max_memory`` resolved);
            None: no budget.

    Raises:
        OverBudget: before anything is allocated, when its estimated memory
            (:func:`training_memory`) is over ``budget``.
        CandidateFailure: on stop, timeout or a non-finite loss.
    """
    if budget is not None:
        estimate = training_memory(candidate.layers, data, settings)
        if estimate.total > budget:
            raise OverBudget(
                f"needs {estimate.describe()} to train, "
                f"over training.max_memory {format_bytes(budget)}"
            )
    parent_weights = candidate.inherited_weights
    result = fit(
        candidate.layers,
        data,
        settings,
        seed=candidate.seed,
        parent_weights=parent_weights,
        origins=None if parent_weights is None else candidate.origins,
        should_stop=should_stop,
        deadline=deadline,
    )
    return fitted_outcome(candidate, data, settings, result)


def training_memory(layers: Any, data: Any, settings: TrainSettings) -> MemoryEstimate:
    """The estimated memory training ``layers`` on ``data`` with ``settings`` takes."""
    n_train = data.x_train.shape[0]
    batch = max(1, min(batch_size_for(settings.batch_size, n_train), n_train))
    return estimate_training_memory(layers, data.input_shape, data.n_classes, batch)


def fitted_outcome(
    candidate: Candidate, data: Any, settings: TrainSettings, result: FitResult, group_size: int = 1
) -> Outcome:
    """The outcome of a candidate that trained: its log line and its Network record.

    Args:
        candidate: The candidate.
        data: The device data it trained on (gives the input shape and classes).
        settings: The training settings (the log line names the last epoch).
        result: What :func:`fit` (or a group's fit) returned for it.
        group_size: Candidates it trained together with, itself included.
    """
    parent = candidate.parent
    candidate_logger.info(
        "Epoch %d. Loss: %.4f, Train_acc %.4f, Val_acc %.4f, Test_acc %.4f",
        settings.epochs - 1,
        result.loss,
        result.train_acc,
        result.val_acc,
        result.test_acc,
    )
    network = Network(
        candidate.layers,
        input_shape=data.input_shape,
        n_classes=data.n_classes,
        input_transform=data.input_transform,
        parent_id=None if parent is None else parent.id,
        generation=candidate.generation,
        mutations=candidate.mutations,
        **result.record_fields(),
    )
    return Outcome(candidate, network=network, seconds=result.seconds, group_size=group_size)


def failed_outcome(candidate: Candidate, error: BaseException, seconds: float) -> Outcome:
    """The outcome of a candidate that raised: stopped, or failed with its reason.

    The reason is logged here at DEBUG only: the generation's summary reports
    failures once, with a count per reason, so a burst of identical failures
    is one line.
    """
    if isinstance(error, CandidateStopped):
        return Outcome(candidate, stopped=True, seconds=seconds)
    if isinstance(error, torch.OutOfMemoryError):
        reason = "out of memory"
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    elif isinstance(error, CandidateFailure):
        reason = str(error)
    else:
        reason = f"{type(error).__name__}: {error}"
    logger.debug(
        "Candidate %d of generation %d dropped: %s", candidate.index, candidate.generation, reason
    )
    return Outcome(candidate, failure=reason, seconds=seconds)
