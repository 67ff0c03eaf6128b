"""The machine's limit: the measured peak float32 matrix-product rate.

Measured in the same process and run as the throughput figures, with the same
thread layout as the engine (``workers`` threads, each limited to ``threads``
intra-op threads), on square products large enough to reach the BLAS's best
rate. The best of a few repeats is kept: the peak is a ceiling, and a shared
machine only ever lowers a reading.
"""

from __future__ import annotations

import threading
import time

import torch

__all__ = ["cpu_matmul_peak", "cuda_matmul_peak"]


def _spin_matmuls(size: int, seconds: float, start: threading.Barrier, threads: int) -> int:
    torch.set_num_threads(threads)  # intra-op threads are a per-thread setting
    a = torch.randn(size, size)
    b = torch.randn(size, size)
    a @ b  # warm the BLAS (its buffers and thread pool) before the clock starts
    start.wait()
    count = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        a @ b
        count += 1
    return count


def _one_reading(workers: int, threads: int, size: int, seconds: float) -> float:
    start = threading.Barrier(workers + 1)
    counts = [0] * workers

    def work(slot: int) -> None:
        counts[slot] = _spin_matmuls(size, seconds, start, threads)

    pool = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for thread in pool:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - began
    return 2.0 * size**3 * sum(counts) / elapsed


def cpu_matmul_peak(
    workers: int, threads: int, *, size: int = 1024, seconds: float = 1.0, repeats: int = 3
) -> float:
    """Best float32 matmul rate (FLOP/s) of ``workers`` threads × ``threads`` intra-op threads.

    Args:
        workers: Concurrent Python threads, each multiplying its own matrices.
        threads: Intra-op threads each of them uses.
        size: Side of the square matrices.
        seconds: Length of one reading.
        repeats: Readings; the best is returned.
    """
    return max(_one_reading(workers, threads, size, seconds) for _ in range(repeats))


def cuda_matmul_peak(
    device: torch.device, dtype: torch.dtype = torch.float32, *, size: int = 8192, repeats: int = 10
) -> float:
    """Median matmul rate (FLOP/s) on a GPU, timed with CUDA events.

    float32 is measured with TF32 off: that is the arithmetic the engine does
    unless ``precision`` asks for bf16.
    """
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        a = torch.randn(size, size, device=device, dtype=dtype)
        b = torch.randn(size, size, device=device, dtype=dtype)
        for _ in range(3):
            a @ b
        times = []
        for _ in range(repeats):
            begin = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            begin.record()
            a @ b
            end.record()
            end.synchronize()
            times.append(begin.elapsed_time(end) / 1000.0)
        times.sort()
        return 2.0 * size**3 / times[len(times) // 2]
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
