"""Weight inheritance: a child network starts from what its parent learned.

A compiled network's blocks are named by their place in the genome
(:func:`layer_prefix`), the head ``head``. A child built from a mutated genome
takes, block by block, the parent's tensors for every layer that came from the
parent (``origins``): whole where the shapes match, the shared part where a
layer gained or lost units or channels (kernels centred when their size
changed). :func:`aligned_origins` pairs the layers of two genomes when no
breeding step recorded where each came from (``Network.with_layers``).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from galapagos_nao.core.typing import Genome

__all__ = ["aligned_origins", "inherit_into", "inherit_weights", "layer_prefix"]


def layer_prefix(index: int) -> str:
    """The name of genome layer ``index``'s block in a compiled network."""
    return f"layer{index}"


def inherit_weights(
    model: nn.Module,
    parent_weights: Mapping[str, torch.Tensor],
    origins: Sequence[int | None],
) -> int:
    """Copies a parent's trained weights into a child, layer by layer.

    A layer whose shapes still match takes its parent's tensors whole. A layer
    of the same kind that gained or lost units or channels (or whose input did)
    takes the part the two share: the parent's rows and columns for the units
    both have, its kernels for the channels both have, centred when the kernel
    size changed; what is new keeps its fresh init. So a child continues what
    its parent learned even when a mutation resized it.

    Args:
        model: The freshly built child.
        parent_weights: The parent's state dict.
        origins: For each child layer, the index of the parent layer it came
            from, or None for a new layer. The head always maps to the head.

    Returns:
        How many tensors were copied, whole or in part.
    """
    return inherit_into(model.state_dict(), parent_weights, origins)


def inherit_into(
    child_state: Mapping[str, torch.Tensor],
    parent_weights: Mapping[str, torch.Tensor],
    origins: Sequence[int | None],
) -> int:
    """:func:`inherit_weights` on a child's state dict: its tensors are written in place.

    For a child that is not a module of its own, such as a member of a stacked
    group (its state read out, inherited into, and loaded back).

    Returns:
        How many tensors were copied, whole or in part.
    """
    mapping = {layer_prefix(i): layer_prefix(j) for i, j in enumerate(origins) if j is not None}
    mapping["head"] = "head"
    copied = 0
    with torch.no_grad():
        for block, source in mapping.items():
            child = {k: v for k, v in child_state.items() if k.partition(".")[0] == block}
            parent = {
                name.partition(".")[2]: parent_weights.get(f"{source}.{name.partition('.')[2]}")
                for name in child
            }
            if not _same_kind(child, parent):
                continue
            for name, tensor in child.items():
                copied += _copy_shared(tensor, parent[name.partition(".")[2]])
    return copied


def _same_kind(
    child: Mapping[str, torch.Tensor], parent: Mapping[str, torch.Tensor | None]
) -> bool:
    """Whether a parent block holds the same tensors (by name and rank) as the child's."""
    return bool(child) and all(
        (source := parent[name.partition(".")[2]]) is not None and source.dim() == tensor.dim()
        for name, tensor in child.items()
    )


def _window(size: int, shared: int, centred: bool) -> slice:
    start = (size - shared) // 2 if centred else 0
    return slice(start, start + shared)


def _copy_shared(tensor: torch.Tensor, source: torch.Tensor | None) -> int:
    """Copies the part ``source`` and ``tensor`` share into ``tensor``; 1 if anything was."""
    if source is None or source.dim() != tensor.dim():
        return 0
    if source.shape == tensor.shape:
        tensor.copy_(source)
        return 1
    into, out_of = [], []
    for axis, (mine, theirs) in enumerate(zip(tensor.shape, source.shape, strict=True)):
        # A kernel's spatial axes (a conv weight's last two) line up by their centre.
        centred = tensor.dim() == 4 and axis >= 2
        shared = min(mine, theirs)
        into.append(_window(mine, shared, centred))
        out_of.append(_window(theirs, shared, centred))
    tensor[tuple(into)] = source[tuple(out_of)].to(tensor.dtype)
    return 1


def aligned_origins(old: Genome, new: Genome) -> tuple[int | None, ...]:
    """For each layer of ``new``, the index of the ``old`` layer it most likely is, or None.

    Layers equal in both keep their pairing even when others were inserted or
    removed around them; a layer edited in place pairs with the one it replaced
    (:func:`inherit_weights` then keeps only the tensors whose shapes still match).
    """
    origins: list[int | None] = [None] * len(new)
    matcher = difflib.SequenceMatcher(a=list(old), b=list(new), autojunk=False)
    for tag, old_start, old_stop, new_start, new_stop in matcher.get_opcodes():
        if tag in ("equal", "replace"):
            for offset in range(min(old_stop - old_start, new_stop - new_start)):
                origins[new_start + offset] = old_start + offset
    return tuple(origins)
