"""Training candidates together as one stacked model; a candidate alone is a group of one.

:func:`fit_group` trains any members whose layers line up
(:func:`~galapagos_nao.core.group_forming.plan_group`: widths and channels,
depths, activation kinds and dropout rates may all differ; pools and kernel
sizes line up) with one forward and backward per batch for all of them.
:func:`~galapagos_nao.core.training.fit` trains a candidate alone by calling it
with one member, so "the same as alone" holds by construction:

- every random draw (init, data order, dropout) is a hash of the member's seed,
  the step and the position (:mod:`~galapagos_nao.core.counter_rng`), computed
  for all members at once and the same whatever the group;
- every member's arithmetic is the same kernels on the same numbers: widths
  are padded to a canonical multiple first, and on the CPU each product runs
  on one thread (how a multi-threaded product splits its sums depends on how
  many members share the call). Parallelism on the CPU comes from training
  several candidates or groups at once, as the engine does.

A member keeps its own batch-norm statistics and optimizer state; one whose
loss goes non-finite fails alone, the others go on. On CUDA the full-batch step
is captured once as a CUDA graph and replayed (``training.cuda_graphs``,
:mod:`~galapagos_nao.core.graph_step`; not yet run on a GPU); the CPU steps eagerly.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch.nn import functional

from galapagos_nao.core import compiled_shapes, counter_rng
from galapagos_nao.core.device_data import DeviceData
from galapagos_nao.core.fit_records import (
    FINITE_CHECK_EVERY,
    CandidateFailure,
    CandidateStopped,
    CandidateTimeout,
    FitResult,
    NonFiniteLoss,
    TrainSettings,
    autocast_for,
    batch_size_for,
    hit_rates,
    make_optimizer,
    never,
)
from galapagos_nao.core.graph_step import Stepper, graphs_wanted
from galapagos_nao.core.group_forming import partition, plan_group
from galapagos_nao.core.group_plan import (
    Leaf,
    Unbatchable,
)
from galapagos_nao.core.inheritance import inherit_into
from galapagos_nao.core.stacked import StackedModel
from galapagos_nao.core.typing import Genome

__all__ = [
    "EVAL_CHUNK",
    "GroupMember",
    "Unbatchable",
    "batched_rows",
    "fit_group",
    "member_plan",
    "partition",
    "single_thread_on_cpu",
]

#: Samples per evaluation forward, the same for every group size.
EVAL_CHUNK = 2048


@dataclass(frozen=True)
class GroupMember:
    """One candidate of a group: what :func:`fit` takes for it alone.

    Attributes:
        layers: The genome.
        seed: Keys its init, data order and dropout, exactly as in ``fit``.
        parent_weights: A parent's state dict to inherit from (with ``origins``).
        origins: Parent-layer index of each layer.
    """

    layers: Genome
    seed: int
    parent_weights: Mapping[str, torch.Tensor] | None = None
    origins: Sequence[int | None] | None = None


def member_plan(layers: Genome, input_shape: Sequence[int], n_classes: int) -> list[Leaf]:
    """The leaves a genome's network computes (:mod:`~galapagos_nao.core.compiled_shapes`).

    Raises:
        Unbatchable: naming the module that has no batched form.
        ValueError: If the genome is invalid.
    """
    return compiled_shapes.member_leaves(layers, input_shape, n_classes)


@contextlib.contextmanager
def single_thread_on_cpu(device: torch.device) -> Iterator[None]:
    """One intra-op thread for this thread while it trains on the CPU (see the module doc)."""
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # a per-thread setting: other workers keep theirs
    try:
        yield
    finally:
        torch.set_num_threads(before)


def batched_rows(data: DeviceData, width: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Train, validation and test rows ``(n, width)``, zero-padded to the stacked input width."""
    found = []
    for x in (data.x_train, data.x_val, data.x_test):
        rows = x.reshape(x.shape[0], -1)
        if rows.shape[1] < width:
            rows = functional.pad(rows, (0, width - rows.shape[1]))
        found.append(rows)
    return found[0], found[1], found[2]


def _inherit(stacked: StackedModel, index: int, member: GroupMember) -> int:
    """Copies the member's parent's weights in, as ``inherit_weights`` does for a network."""
    if member.parent_weights is None or member.origins is None:
        return 0
    state = stacked.member_state(index)  # the member's own names and shapes, as a network's
    copied = inherit_into(state, member.parent_weights, member.origins)
    stacked.load_member(index, state)
    return copied


def _hits(model: StackedModel, rows: torch.Tensor, y: torch.Tensor, precision: str) -> torch.Tensor:
    """``(P, n)`` bool: which rows each member classifies right (every member sees all rows)."""
    model.eval()
    hits = torch.zeros(model.size, rows.shape[0], dtype=torch.bool, device=rows.device)
    with torch.inference_mode(), autocast_for(rows.device, precision):
        for start in range(0, rows.shape[0], EVAL_CHUNK):
            part = rows[start : start + EVAL_CHUNK]
            logits = model(part.unsqueeze(0).expand(model.size, -1, -1))
            hits[:, start : start + EVAL_CHUNK] = (
                logits.argmax(dim=2) == y[start : start + EVAL_CHUNK]
            )
    model.train()
    return hits


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
        members: Candidates whose layers line up (see :func:`member_plan`).
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
        ValueError: If a genome is invalid.
        torch.OutOfMemoryError: If the group does not fit; split it and retry.
    """
    started = time.monotonic()
    device = data.device
    features = math.prod(data.input_shape)
    plan = plan_group([member_plan(m.layers, data.input_shape, data.n_classes) for m in members])
    keys = counter_rng.member_keys([m.seed for m in members], device)
    with single_thread_on_cpu(device):
        stacked = StackedModel(plan, features, keys, device)
        inherited = [_inherit(stacked, i, m) for i, m in enumerate(members)]
        trained = _train(stacked, keys, data, settings, should_stop, deadline, started)
        if isinstance(trained, CandidateFailure):
            return [trained] * len(members)
        failures, mean_losses, train_accs = trained
        _, x_val, x_test = batched_rows(data, stacked.input_width)
        val = hit_rates(_hits(stacked, x_val, data.y_val, settings.precision), data.val_groups)
        test = hit_rates(_hits(stacked, x_test, data.y_test, settings.precision), data.test_groups)
    seconds = time.monotonic() - started
    if device.type != "cpu":  # one copy of each stacked tensor, not one per member and tensor
        stacked.to("cpu")
    results: list[FitResult | CandidateFailure] = []
    for member in range(len(members)):
        if member in failures:
            results.append(failures[member])
            continue
        weights = stacked.member_state(member)
        n_params = sum(
            t.numel() for name, t in weights.items() if name.endswith((".weight", ".bias"))
        )
        results.append(
            FitResult(
                weights=weights,
                loss=mean_losses[member],
                train_acc=train_accs[member],
                val_acc=val[member],
                test_acc=test[member],
                n_params=n_params,
                inherited=inherited[member],
                seconds=seconds,
            )
        )
    return results


def _train(
    stacked: StackedModel,
    keys: torch.Tensor,
    data: DeviceData,
    settings: TrainSettings,
    should_stop: Callable[[], bool],
    deadline: float | None,
    started: float,
) -> tuple[dict[int, CandidateFailure], list[float], list[float]] | CandidateFailure:
    """The training epochs: failures by member, mean losses and train accuracies of the last."""
    device = data.device
    size = stacked.size
    failures: dict[int, CandidateFailure] = {}
    x_rows, _, _ = batched_rows(data, stacked.input_width)
    n_train = x_rows.shape[0]
    batch_size = batch_size_for(settings.batch_size, n_train)
    # A last batch of one sample cannot train batch_norm (no variance to normalize
    # by); it is left out of that epoch, and the next epoch's order trains it.
    n_batched = n_train - 1 if n_train > 1 and n_train % batch_size == 1 else n_train
    loss_sum = torch.zeros(size, device=device)
    correct = torch.zeros(size, dtype=torch.int64, device=device)
    graphs = graphs_wanted(
        settings.cuda_graphs, device, settings.epochs * (n_batched // batch_size)
    )
    optimizer = make_optimizer(settings, stacked, capturable=graphs)
    stepper = Stepper(
        stacked,
        optimizer,
        x_rows,
        data.y_train,
        (loss_sum, correct),
        settings.precision,
        capture=graphs,
    )
    for epoch in range(settings.epochs):
        stacked.train()
        loss_sum.zero_()
        correct.zero_()
        # (P, n_train): each member's own order, all drawn at once
        orders = counter_rng.permutations(
            counter_rng.stream_keys(keys, counter_rng.ORDER, epoch), n_train
        )
        for step, start in enumerate(range(0, n_batched, batch_size)):
            failure = _interrupted(should_stop, deadline, started)
            if failure is not None:
                return failure
            stepper.step(orders[:, start : min(start + batch_size, n_batched)])
            if step % FINITE_CHECK_EVERY == 0:
                _note_non_finite(loss_sum, failures, step)
    _note_non_finite(loss_sum, failures, None)
    mean_losses = (loss_sum / n_batched).tolist()
    train_accs = [count / n_batched for count in correct.tolist()]
    return failures, mean_losses, train_accs


def _interrupted(
    should_stop: Callable[[], bool], deadline: float | None, started: float
) -> CandidateFailure | None:
    if should_stop():
        return CandidateStopped("the run was stopped")
    if deadline is not None and time.monotonic() > deadline:
        elapsed = time.monotonic() - started
        return CandidateTimeout(f"training exceeded its timeout after {elapsed:.1f}s")
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
