"""A group's training step, and on CUDA the same step captured once as a CUDA graph.

:func:`train_step` is one optimizer step of a stacked group: the forward, each
member's loss, the backward, the optimizer's update and the epoch's loss and
accuracy sums. Eagerly it launches a few dozen small kernels, each paying
Python and dispatch time; on a GPU a small network's step is bound by those
launches, not by arithmetic. :class:`Stepper` runs it eagerly, and on CUDA
(``training.cuda_graphs``) captures the full-batch step once as a CUDA graph
and replays it: one launch for all the step's kernels.

What the graph needs, and how it gets it:

- static inputs: the batch's ``(P, batch)`` sample indices are copied into one
  device buffer before each replay (the rows are gathered inside the graph from
  the data already on the device); each dropout slot reads its step's
  counter-RNG keys from a buffer filled before each step
  (:meth:`~galapagos_nao.core.stacked_dropout.DropoutMasks.hold_keys`), so the
  masks change every step as they do eagerly;
- a capturable optimizer (Adam's step count on the device);
- warm-up on a side stream before capture, as torch requires. Warm-up really
  trains, so the model, optimizer and sums are copied before it and copied back
  (in place: the graph reads those addresses) after the capture.

The first step runs eagerly (it creates the optimizer's state), so does a
batch of another size (an epoch's last, smaller one). Any exception during
warm-up or capture logs one warning and the group goes on eagerly from the
state copied before: a half-done capture never shows in the results. Stop and
deadline polling and the non-finite check stay with the caller, outside the graph.

Status: the graph path has not yet run on a GPU (no GPU was lent to the
session that wrote it); its tests are CUDA-only (``tests/core/test_cuda_graphs.py``).
"""

from __future__ import annotations

import logging
import threading

import torch
from torch.nn import functional

from galapagos_nao.core.fit_records import autocast_for
from galapagos_nao.core.stacked import StackedModel

__all__ = ["AUTO_MIN_REPLAYS", "Stepper", "graphs_wanted", "train_step"]

logger = logging.getLogger("galapagos_nao.core.graph_step")

#: Under ``"auto"``, a graph is captured only if this many full-batch steps
#: could replay it: warm-up and capture cost a few steps' time.
AUTO_MIN_REPLAYS = 8
#: Warm-up steps on the side stream before the capture.
_WARMUP_STEPS = 3
#: Torch supports one capture underway at a time in a process: groups training
#: in other threads take turns here (their eager steps and replays go on meanwhile).
_ONE_CAPTURE = threading.Lock()


def graphs_wanted(setting: bool | str, device: torch.device, full_steps: int) -> bool:
    """Whether a group on ``device`` with ``full_steps`` full-batch steps uses a CUDA graph.

    Never on the CPU (there are no CUDA graphs there: the eager step is unchanged).
    """
    if device.type != "cuda" or setting is False or full_steps < 2:
        return False
    return setting is True or full_steps > AUTO_MIN_REPLAYS


def train_step(
    stacked: StackedModel,
    optimizer: torch.optim.Optimizer,
    x_rows: torch.Tensor,
    y_rows: torch.Tensor,
    index: torch.Tensor,
    sums: tuple[torch.Tensor, torch.Tensor],
    precision: str,
    *,
    autocast_cache: bool = True,
) -> None:
    """One optimizer step on the ``(P, batch)`` sample indices ``index``.

    Args:
        stacked: The group.
        optimizer: Over ``stacked``'s parameters.
        x_rows: ``(n, width)`` training rows.
        y_rows: ``(n,)`` their labels.
        index: ``(P, batch)`` each member's samples.
        sums: ``(P,)`` float loss sum and int64 correct count, added to in place.
        precision: As ``TrainSettings.precision``.
        autocast_cache: False under graph capture (torch's autocast cache of cast
            weights must not outlive a captured step).
    """
    size, batch = index.shape
    x = x_rows.index_select(0, index.reshape(-1)).view(size, batch, -1)
    y = y_rows.index_select(0, index.reshape(-1)).view(size, batch)
    with autocast_for(x_rows.device, precision, cache=autocast_cache):
        logits = stacked(x)
        losses = functional.cross_entropy(
            logits.float().reshape(size * batch, -1), y.reshape(-1), reduction="none"
        )
        # a row sum per member rounds alike for any P (measured); so does its gradient
        losses = losses.view(size, batch).sum(dim=1) / batch
    optimizer.zero_grad(set_to_none=True)
    # The gradient of a sum reaches each member's own loss with weight 1 whatever
    # the other terms are: a NaN member spoils only its own slice of every tensor.
    losses.sum().backward()
    optimizer.step()
    loss_sum, correct = sums
    loss_sum.add_(losses.detach(), alpha=batch)
    correct += (logits.detach().argmax(dim=2) == y).sum(dim=1)


class Stepper:
    """Runs a group's steps: eagerly, or by replaying a captured CUDA graph (see the module doc).

    Args:
        stacked, optimizer, x_rows, y_rows, sums, precision: As :func:`train_step`.
        capture: Whether to capture the full-batch step (:func:`graphs_wanted`);
            the optimizer must then be capturable.
    """

    def __init__(
        self,
        stacked: StackedModel,
        optimizer: torch.optim.Optimizer,
        x_rows: torch.Tensor,
        y_rows: torch.Tensor,
        sums: tuple[torch.Tensor, torch.Tensor],
        precision: str,
        *,
        capture: bool = False,
    ) -> None:
        self._stacked = stacked
        self._optimizer = optimizer
        self._rows = (x_rows, y_rows)
        self._sums = sums
        self._precision = precision
        self._capture = capture
        self._graph: torch.cuda.CUDAGraph | None = None
        self._index: torch.Tensor | None = None  # the graph's static (P, batch) indices

    def step(self, index: torch.Tensor) -> None:
        """One optimizer step on the ``(P, batch)`` sample indices ``index``."""
        if self._capture and self._graph is None and self._index is not None:
            self._try_capture()  # the first step has run: the optimizer has its state
        if not self._capture:  # never asked, or the capture failed
            self._eager(index)
            return
        self._hold_keys()
        if self._index is None:
            self._index = index.clone()  # the shape to capture, once this step has run
        elif self._graph is not None and self._index.shape == index.shape:
            self._index.copy_(index)
            self._stacked.steps += 1  # what the captured forward's Python would do
            self._graph.replay()
            return
        self._eager(index)

    def _eager(self, index: torch.Tensor) -> None:
        x_rows, y_rows = self._rows
        train_step(
            self._stacked, self._optimizer, x_rows, y_rows, index, self._sums, self._precision
        )

    def _hold_keys(self) -> None:
        """Each dropout slot's keys of the coming step into its buffer (read eager or captured)."""
        for masks in self._stacked.dropout_masks():
            masks.hold_keys(self._stacked.steps + 1)

    def _try_capture(self) -> None:
        saved = self._save()
        try:
            with _ONE_CAPTURE:
                self._graph = self._warm_up_and_capture()
        except Exception as error:  # any failure: train eagerly, as if never tried
            logger.warning(
                "CUDA graph capture of a group of %d failed (%s: %s); training it eagerly",
                self._stacked.size,
                type(error).__name__,
                error,
            )
            self._graph = None
            self._capture = False
            for masks in self._stacked.dropout_masks():
                masks.release_keys()
        finally:
            self._restore(saved)

    def _warm_up_and_capture(self) -> torch.cuda.CUDAGraph:
        assert self._index is not None
        x_rows, y_rows = self._rows
        run = (self._stacked, self._optimizer, x_rows, y_rows, self._index, self._sums)
        with torch.cuda.device(x_rows.device):  # the data's GPU, whichever is current
            # the key buffers made here, on the stream that fills them before every step
            self._hold_keys()  # (warm-up's values are undone: the same keys serve its steps)
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(_WARMUP_STEPS):
                    train_step(*run, self._precision, autocast_cache=False)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            self._optimizer.zero_grad(set_to_none=True)  # gradients from the graph's own pool
            # thread_local: other threads may be training other groups on this GPU meanwhile
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                train_step(*run, self._precision, autocast_cache=False)
        return graph

    def _save(self) -> tuple[int, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Copies of everything warm-up changes, with the tensors to copy them back into.

        (For a moment the group's parameters and optimizer state are held twice.)
        """
        live = [*self._stacked.parameters(), *self._stacked.buffers(), *self._sums]
        for state in self._optimizer.state.values():
            live.extend(t for t in state.values() if isinstance(t, torch.Tensor))
        with torch.no_grad():
            return self._stacked.steps, [(t, t.detach().clone()) for t in live]

    def _restore(self, saved: tuple[int, list[tuple[torch.Tensor, torch.Tensor]]]) -> None:
        steps, copies = saved
        self._stacked.steps = steps
        with torch.no_grad():
            for live, copy in copies:  # on the stream every later step runs on: in order
                live.copy_(copy)
