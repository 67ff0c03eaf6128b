"""Memory: peak resident set of a 20-generation run, and bytes kept per elite.

Run in a fresh process (``python -m benchmarks.memory``) so that the peak belongs
to the run alone; it prints one JSON object. The run is the user's: the seed
genome through ``gn.evolve`` with default settings and a fixed seed, so genomes
mutate, grow and inherit weights as they would at the prompt.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from benchmarks import REPO

__all__ = ["measure_memory", "run_in_subprocess"]


def _rss_bytes() -> int:
    # /proc/self/statm: sizes in pages; the second field is the resident set.
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure_memory(
    root: str, generations: int, n_train: int | None, n_test: int | None, seed: int
) -> dict[str, Any]:
    """Runs ``generations`` generations and returns the memory figures.

    Args:
        root: Dataset root holding ``MNIST/raw``.
        generations: Generations to run.
        n_train: Training samples (a class-balanced subset), or None for all.
        n_test: Test samples, or None for all.
        seed: The run's seed.
    """
    import galapagos_nao as gn

    task = gn.datasets.mnist(root, download=False)
    if n_train is not None and n_test is not None:
        task = gn.datasets.subset(task, n_train, n_test, seed=0)
    after_load = _rss_bytes()
    per_generation: list[int] = []

    started = time.perf_counter()
    run = gn.evolve(
        gn.example.seed_layers(),
        generations,
        task,
        seed=seed,
        hooks=[lambda report: per_generation.append(_rss_bytes())],
    )
    elites = run.result()
    seconds = time.perf_counter() - started
    weight_bytes = [
        sum(t.nbytes for t in net.weights.values()) for net in elites.values() if net.weights
    ]
    return {
        "generations": generations,
        "n_train": task.n_train,
        "n_test": task.n_test,
        "seconds": seconds,
        "peak_rss_bytes": _peak_rss_bytes(),
        "rss_after_task_load_bytes": after_load,
        "rss_per_generation_bytes": per_generation,
        "elites": len(elites),
        "bytes_per_elite": sum(weight_bytes) / max(1, len(weight_bytes)),
        "params_per_elite": [net.n_params for net in elites.values()],
    }


def run_in_subprocess(
    root: str, generations: int, n_train: int | None, n_test: int | None, seed: int
) -> dict[str, Any]:
    """:func:`measure_memory` in a fresh interpreter, so its peak is the run's alone."""
    command = [
        sys.executable,
        "-m",
        "benchmarks.memory",
        "--data",
        root,
        "--generations",
        str(generations),
    ]
    command += ["--seed", str(seed)]
    if n_train is not None and n_test is not None:
        command += ["--train", str(n_train), "--test", str(n_test)]
    # Its own workspace: the caller's is locked for writing by the caller.
    environment = {**os.environ, "GN_HOME": tempfile.mkdtemp(prefix="gn-bench-memory-")}
    done = subprocess.run(
        command, cwd=REPO, env=environment, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"the memory run failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: prints the figures of one run as a JSON object."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory")
    parser.add_argument("--data", required=True, help="dataset root holding MNIST/raw")
    parser.add_argument("--generations", type=int, default=20)
    parser.add_argument("--train", type=int, default=None, help="training samples (default: all)")
    parser.add_argument("--test", type=int, default=None, help="test samples (default: all)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    figures = measure_memory(args.data, args.generations, args.train, args.test, args.seed)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
