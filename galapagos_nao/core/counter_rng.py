"""Randomness that batches: every draw is a hash of (member seed, stream, counter).

A candidate's random numbers (its initial weights, its data order each epoch,
its dropout masks) are not read from a stateful generator but computed: each
value is a 32-bit hash of the member's key, the purpose and step of the draw
(the *stream*) and the value's position (the *counter*). So the draws of a
whole group come from one sequence of integer tensor operations whatever the
group size, on any device, and a member trained alone computes exactly the
numbers it computes in a group: alone is a group of one.

The hash is our own: a multiply–xorshift mixer on 32-bit words. The words of a
draw are held in int32 tensors (half the memory traffic of int64, and the
CPU's vector units multiply 32-bit lanes natively): a product wraps modulo
2**32 as two's complement integers do on every device torch runs on, and a
right shift by ``k`` is made logical by masking off the ``k`` copies of the
sign bit. The keys, a handful per member, are mixed in int64 with every
product masked back to 32 bits. Both compute the same function of the same
words. Quality is what dropout masks, data orders and initial weights need
(each output bit flips with about half of the input bits), not cryptographic.

Callers reach the hash through this module (``counter_rng.bits``), so a test
can count its evaluations, each a fixed handful of kernels, and check that a
group step makes as many as a single candidate's step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = [
    "DROPOUT",
    "INIT_BIAS",
    "INIT_WEIGHT",
    "ORDER",
    "bits",
    "keep_mask",
    "keep_thresholds",
    "member_keys",
    "permutations",
    "step_keys",
    "stream_keys",
    "uniform",
]

_MASK = 0xFFFFFFFF
# Odd multipliers below 2**31: a 32-bit word times one stays below 2**63.
_MULTIPLY_1 = 0x7FEB352D
_MULTIPLY_2 = 0x2C1B3C6D
_MULTIPLY_3 = 0x297A2D39
_GOLDEN = 0x61C88647

#: Stream tags: what a draw is for. A new kind of draw takes a new tag.
INIT_WEIGHT = 1
INIT_BIAS = 2
ORDER = 3
DROPOUT = 4


def _avalanche(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit mixer on int64 words below 2**32: every output bit depends on every input bit."""
    x = x ^ (x >> 16)
    x = (x * _MULTIPLY_1) & _MASK
    x = x ^ (x >> 15)
    x = (x * _MULTIPLY_2) & _MASK
    x = x ^ (x >> 16)
    x = (x * _MULTIPLY_3) & _MASK
    return x ^ (x >> 15)


def _avalanche_in_place(x: torch.Tensor) -> torch.Tensor:
    """:func:`_avalanche` on int32 words (their two's complement bits), overwriting ``x``.

    ``(x >> k) & (2**(32 - k) - 1)`` is the logical shift of the word; the
    products wrap modulo 2**32. In place: a draw's words are its own, and each
    step then writes over memory already in the cache.
    """
    x.bitwise_xor_((x >> 16).bitwise_and_(0xFFFF))
    x.mul_(_MULTIPLY_1)
    x.bitwise_xor_((x >> 15).bitwise_and_(0x1FFFF))
    x.mul_(_MULTIPLY_2)
    x.bitwise_xor_((x >> 16).bitwise_and_(0xFFFF))
    x.mul_(_MULTIPLY_3)
    return x.bitwise_xor_((x >> 15).bitwise_and_(0x1FFFF))


def _as_int32(word: int) -> int:
    """The int32 whose two's complement bits are the 32-bit ``word``."""
    word &= _MASK
    return word - (1 << 32) if word >> 31 else word


def _avalanche_int(x: int) -> int:
    """:func:`_avalanche` on a Python int, for keys made once per member."""
    return int(_avalanche(torch.tensor(x & _MASK, dtype=torch.int64)))


def member_keys(seeds: Sequence[int], device: torch.device | str = "cpu") -> torch.Tensor:
    """``(P,)`` int64 32-bit keys of the members' seeds (any int, folded to 32 bits)."""
    keys = []
    for seed in seeds:
        seed = int(seed)
        low, high = seed & _MASK, (seed >> 32) & _MASK
        keys.append(_avalanche_int(_avalanche_int(low) ^ high ^ (_GOLDEN if seed < 0 else 0)))
    return torch.tensor(keys, dtype=torch.int64, device=device)


def stream_keys(keys: torch.Tensor, *words: int | torch.Tensor) -> torch.Tensor:
    """The members' keys for one stream: ``keys`` mixed with each word in turn.

    Args:
        keys: ``(P,)`` member keys (or any shape the words broadcast against).
        words: The stream's tag, step, position...: ints, or ``(P,)`` int64
            tensors where the word differs per member (a layer's position in
            each member's own network).

    Returns:
        int64 keys in ``[0, 2**32)``, of the keys' and words' broadcast shape.
    """
    x = keys
    for word in words:
        if isinstance(word, torch.Tensor):
            word = word.to(device=keys.device, dtype=torch.int64) & _MASK
        else:
            word = int(word) & _MASK
        x = _avalanche(((x * _GOLDEN) & _MASK) ^ word)
    return x


def step_keys(keys: torch.Tensor, first: int, count: int) -> torch.Tensor:
    """``(P, count)`` int32 words: column ``j`` is ``stream_keys(keys, first + j)``.

    The keys of many steps in one evaluation, for a caller that draws every step
    (a dropout slot), instead of a few small kernels per step.
    """
    steps = torch.arange(first, first + count, device=keys.device, dtype=torch.int64)
    return _int32_words(stream_keys(keys.view(-1, 1), steps.view(1, -1)))


def bits(keys: torch.Tensor, counters: torch.Tensor) -> torch.Tensor:
    """32 random bits for each (member, counter): ``keys`` ``(P,)`` broadcast over ``counters``.

    Args:
        keys: ``(P,)`` stream keys (:func:`stream_keys`), or their int32 words
            (:func:`step_keys`).
        counters: Non-negative int32 or int64 positions below ``2**32``, of a
            shape that broadcasts against ``(P, 1, ..., 1)``; the same counter
            gives the same bits for the same key whatever else is drawn.

    Returns:
        int32 tensor of ``broadcast(P, counters)``: each value's two's complement
        bits are the hash (``& 0xFFFFFFFF`` in int64 reads it as ``[0, 2**32)``).
    """
    shape = (-1, *([1] * max(0, counters.dim() - 1))) if counters.dim() else (-1,)
    # counter * golden modulo 2**32: wrapping int32 arithmetic, exact for any counter below 2**32
    words = counters.to(torch.int32) * _GOLDEN
    key = (keys if keys.dtype == torch.int32 else _int32_words(keys)).view(shape)
    # key is (P, 1, ..., 1): the result has the counters' shape when they lead with P (or P is 1)
    if words.dim() == key.dim() and key.shape[0] in (1, words.shape[0]):
        words.bitwise_xor_(key)  # counters of the full shape: no second tensor
    else:
        words = torch.bitwise_xor(words, key)
    return _avalanche_in_place(words)


def _int32_words(words: torch.Tensor) -> torch.Tensor:
    """int32 holding the same 32 bits as int64 ``words`` in ``[0, 2**32)``."""
    return torch.where(words >= 1 << 31, words - (1 << 32), words).to(torch.int32)


def uniform(keys: torch.Tensor, counters: torch.Tensor) -> torch.Tensor:
    """float32 uniforms in ``[0, 1)`` on a 2**-24 grid (exact in float32)."""
    top = (bits(keys, counters) >> 8).bitwise_and_(0xFFFFFF)  # the top 24 bits, unsigned
    return top.to(torch.float32).mul_(1.0 / (1 << 24))


def keep_thresholds(rates: Sequence[float], device: torch.device | str = "cpu") -> torch.Tensor:
    """``(P, 1, 1)`` int32 thresholds of :func:`keep_mask` for dropout ``rates`` in ``[0, 1)``.

    An element is kept when its 24-bit uniform ``u / 2**24`` is at least the
    rate, that is when ``u >= ceil(rate * 2**24)``: integers, so the comparison
    is exact on every device.
    """
    found = [math.ceil(float(rate) * (1 << 24)) for rate in rates]
    return torch.tensor(found, dtype=torch.int32, device=device).view(-1, 1, 1)


def keep_mask(keys: torch.Tensor, counters: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """Dropout keep masks: True where an element's 24-bit uniform reaches its member's threshold.

    Args:
        keys: ``(P,)`` stream keys.
        counters: Positions of the elements (see :func:`bits`).
        thresholds: :func:`keep_thresholds`, broadcastable like the result (0 keeps all).
    """
    top = (bits(keys, counters) >> 8).bitwise_and_(0xFFFFFF)
    return top >= thresholds


def permutations(keys: torch.Tensor, n: int) -> torch.Tensor:
    """``(P, n)`` int64: one permutation of ``range(n)`` per member key.

    The order sorts the members' hashes of ``0..n-1`` read as unsigned; a
    stable sort settles equal hashes by index, so the result is the same on
    every device.
    """
    counters = torch.arange(n, device=keys.device, dtype=torch.int32).unsqueeze(0)
    # flipping the sign bit orders int32 words as their unsigned values
    ordered = bits(keys, counters).bitwise_xor_(_as_int32(1 << 31))
    return torch.argsort(ordered, dim=1, stable=True)
