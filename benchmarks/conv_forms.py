"""How a group's convolutions should run: grouped, vmap or one per member (``stacked_conv``).

``python -m benchmarks.conv_forms`` times the forward and backward of one
"same" convolution for ``P`` members, three ways: one grouped convolution over
the population axis (``groups=P``), ``torch.func.vmap`` of ``conv2d``, and one
``conv2d`` per member (the first and last are the stacked model's own,
:mod:`galapagos_nao.core.stacked_conv`); and says whether each gives every member the bits of its
convolution alone. CPU ms per member, median of the repeats, one intra-op
thread (as training runs on the CPU), the forms taking turns. The figures behind
:data:`galapagos_nao.core.stacked_conv.GROUPED_ON_CPU` came from here.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.nn import functional

from galapagos_nao.core import stacked_conv

__all__ = ["FORMS", "measure"]

Tensors = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _vmapped(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    kernel = w.shape[-1]
    return torch.func.vmap(lambda xx, ww, bb: functional.conv2d(xx, ww, bb, padding=kernel // 2))(
        x, w, b
    )


FORMS: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "grouped": stacked_conv.grouped_conv,
    "vmap": _vmapped,
    "loop": stacked_conv.member_convs,
}


def _run(form: Callable[..., torch.Tensor], tensors: Tensors, grad: torch.Tensor) -> list[Any]:
    """The output and the gradients; a first convolution's input (the data) needs none."""
    first = tensors[0].shape[2] == 1
    leaves = [t.clone().requires_grad_(i > 0 or not first) for i, t in enumerate(tensors)]
    y = form(*leaves)
    y.backward(grad)
    return [y.detach(), *(t.grad for t in leaves if t.grad is not None)]


def measure(
    batch: int, channels: int, out: int, side: int, kernel: int, size: int, repeats: int = 7
) -> dict[str, tuple[float, bool]]:
    """``{form: (CPU ms per member, every member's bits as alone)}`` for one shape."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(size, batch, channels, side, side, generator=generator)
    w = torch.randn(size, out, channels, kernel, kernel, generator=generator) * 0.1
    b = torch.randn(size, out, generator=generator) * 0.1
    grad = torch.randn(size, batch, out, side, side, generator=generator)
    alone = [
        _run(stacked_conv.member_convs, (x[m : m + 1], w[m : m + 1], b[m : m + 1]), grad[m : m + 1])
        for m in range(size)
    ]
    exact = {}
    for name, form in FORMS.items():
        got = _run(form, (x, w, b), grad)
        exact[name] = all(
            torch.equal(mine[m], theirs[0])
            for m in range(size)
            for mine, theirs in zip(got, alone[m], strict=True)
        )
    # The forms take turns: run back to back, one form would inherit the allocator's
    # and the caches' state the other left (seen: a 3x swing on the first shape).
    times: dict[str, list[float]] = {name: [] for name in FORMS}
    for _ in range(repeats):
        for name, form in FORMS.items():
            started = time.thread_time()
            _run(form, (x, w, b), grad)
            times[name].append(time.thread_time() - started)
    found = {name: (1000 * statistics.median(times[name]) / size, exact[name]) for name in FORMS}
    return found


def main(argv: Sequence[str] | None = None) -> None:
    """Prints the table for the seed CNN's convolution shapes at batch 128."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.conv_forms")
    parser.add_argument("--sizes", default="1,4,8", help="group sizes P")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    shapes = [(1, 16, 28, 3), (16, 32, 14, 3), (16, 16, 14, 5)]
    print("shape (Cin->Cout, k, px)   P   " + "   ".join(f"{n:>14}" for n in FORMS))
    for size in (int(s) for s in args.sizes.split(",")):
        for channels, out, side, kernel in shapes:
            row = measure(128, channels, out, side, kernel, size)
            cells = "   ".join(
                f"{ms:7.2f} {'exact' if exact else 'DIFF ':5}" for ms, exact in row.values()
            )
            print(f"{channels:>3}->{out:<3} k{kernel} {side:>2}x{side:<2} {size:>11}   {cells}")


if __name__ == "__main__":
    main()
