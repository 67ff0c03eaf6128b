"""The layer table of a network: each layer's output shape and parameter count.

Owns :class:`LayerRow` and :func:`layer_rows`, which the text and HTML views of
:mod:`~galapagos_nao.ui.display` and the network plot of
:mod:`~galapagos_nao.ui.plot` draw from. The table is built from the layer
registry's builders on the meta device, so it needs no forward pass and no
weights. :mod:`~galapagos_nao.ui.display` re-exports both names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from galapagos_nao.core import genome
from galapagos_nao.core.network import Network

__all__ = ["LayerRow", "layer_rows"]


@dataclass(frozen=True)
class LayerRow:
    """One row of a network's layer table.

    Attributes:
        index: Genome index of the layer; None for the input adapter and the head.
        name: Layer type (``input`` and ``head`` for the added ends).
        params: The layer's genome params, as text.
        out_shape: Shape of one sample after the layer: ``(features,)`` or ``(C, H, W)``.
        n_params: Trainable parameters of the layer.
    """

    index: int | None
    name: str
    params: str
    out_shape: tuple[int, ...]
    n_params: int

    @property
    def features(self) -> int:
        """Numbers per sample after the layer."""
        return math.prod(self.out_shape)

    @property
    def shape(self) -> str:
        """The output shape as text: ``(batch, 64)`` or ``(batch, 16, 14, 14)``."""
        return f"(batch, {', '.join(map(str, self.out_shape))})"


def layer_rows(net: Network) -> list[LayerRow]:
    """The layer table of ``net``: input adapter, each genome layer, head.

    Built from the layer registry's builders, so it needs no forward pass and
    no weights.
    """
    shapes = genome.layer_shapes(net.layers, net.input_shape)
    shape = ", ".join(map(str, net.input_shape))
    transform = net.input_transform
    adapter = f"{'flatten' if len(shapes[0]) == 1 else 'image'} ({shape})"
    if not transform.is_identity:
        adapter = f"standardize (mean {transform.mean:g}, std {transform.std:g}), {adapter}"
    rows = [LayerRow(None, "input", adapter, shapes[0], 0)]
    for index, layer in enumerate(net.layers):
        # Built on the meta device: the counts need shapes, not memory.
        with torch.device("meta"):
            modules, _ = genome.build_layer(layer, shapes[index])
        count = sum(p.numel() for m in modules for p in m.parameters() if p.requires_grad)
        params = ", ".join(map(str, layer[1]))
        rows.append(LayerRow(index, layer[0], params, shapes[index + 1], count))
    features = math.prod(shapes[-1])
    head = features * net.n_classes + net.n_classes  # Linear(features, n_classes) with bias
    rows.append(LayerRow(None, "head", "linear", (net.n_classes,), head))
    return rows
