"""``make bench`` (``python -m benchmarks``): one table of how fast candidates train, and why.

Sections, in the order they run (each is a module of this package):

- the machine's limit, the peak float32 matmul rate (:mod:`benchmarks.peak`);
- candidate throughput of our engine on the fixed genomes through ``evolve``
  (:mod:`benchmarks.engine`, :mod:`benchmarks.genomes`), against the seed's
  pipeline on the same genomes in the same run (:mod:`benchmarks.seed_pipeline`),
  with the share of the peak reached and the overhead;
- the thread policy against its alternatives, and the batch size against the
  previous default;
- responsiveness of the shared singletons while a run trains
  (:mod:`benchmarks.responsiveness`);
- grouped training against the per-candidate path, seed genome, 4 and 8
  candidates a generation (:mod:`benchmarks.grouped`);
- memory of a 20-generation run (:mod:`benchmarks.memory`);
- the Ray backend against the thread backend on this machine, and Ray's
  per-task overhead (:mod:`benchmarks.ray_bench`; skipped without the ``ray`` extra);
- only when named in ``--sections``: the population rows of issue 12, grouped
  training at 16 to 1,024 candidates a generation (:mod:`benchmarks.population`,
  what ``benchmarks/gpu.sh`` runs; ``--quick`` tries it on a CPU in seconds).

The table is printed last; every figure also goes to
``benchmarks/results/<host>-<date>.json``. ``--device cuda`` runs the
throughput part on a GPU (what ``benchmarks/gpu.sh`` does).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import REPO, default_data_root

#: Sections ``--sections`` may name.
SECTIONS = (
    "throughput",
    "conv",
    "policy",
    "grouped",
    "responsiveness",
    "memory",
    "ray",
    "population",
    "overhead",
)
#: Sections run without ``--sections``: the population rows need a GPU to finish in minutes.
DEFAULT_SECTIONS = tuple(name for name in SECTIONS if name != "population")
#: Training samples of ``--quick``: a smoke test of the sections, not a measurement.
QUICK_TRAIN = 6000


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parses the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--data", default=default_data_root(), help="dataset root holding MNIST/raw"
    )
    parser.add_argument(
        "--out", default=str(REPO / "benchmarks" / "results"), help="folder of the JSON"
    )
    parser.add_argument("--device", default="cpu", help="'cpu' (default) or 'cuda'")
    parser.add_argument("--seed", type=int, default=1, help="seed of every run (default 1)")
    parser.add_argument(
        "--backend",
        default="threads",
        choices=["threads", "processes"],
        help="our engine's orchestration.backend in the throughput section (default threads)",
    )
    parser.add_argument(
        "--sections",
        default=",".join(DEFAULT_SECTIONS),
        help=f"comma-separated subset of {','.join(SECTIONS)}",
    )
    parser.add_argument(
        "--generations", type=int, default=1, help="measured generations per genome"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_TRAIN} training samples and small generations: checks the sections run",
    )
    parser.add_argument("--memory-generations", type=int, default=20)
    parser.add_argument(
        "--memory-train",
        type=int,
        default=0,
        help="training samples of the memory run (0: all)",
    )
    args = parser.parse_args(argv)
    unknown = set(args.sections.split(",")) - set(SECTIONS)
    if unknown:
        parser.error(f"--sections: unknown {sorted(unknown)}; known: {list(SECTIONS)}")
    return args


def _say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _load() -> str:
    # Other processes on the machine slow every figure: the table shows how busy it was.
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine_info(device: str) -> dict[str, Any]:
    """What the figures were measured on."""
    import torch

    from galapagos_nao.run.devices import usable_cores

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(
                line.split(":", 1)[1].strip() for line in info if line.startswith("model name")
            )
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") else None
    cores = usable_cores()
    summary = f"{platform.node()}: {cpu}, {cores} cores" + (f", {gpu}" if gpu else "")
    return {
        "host": platform.node(),
        "cpu": cpu,
        "cores": cores,
        "gpu": gpu,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "summary": f"{summary}, torch {torch.__version__}",
        "load_start": _load(),
    }


def _ray_row(root: str) -> dict[str, Any] | None:
    """The Ray row: both backends on a 20,000-sample MNIST subset; None without Ray."""
    try:
        import ray  # noqa: F401 - only checks that the extra is installed
    except ImportError:
        _say("ray is not installed (pip install 'galapagos-nao[ray]'): no Ray row")
        return None
    from benchmarks import ray_bench

    return ray_bench.measure(root=root, n_train=20000, generations=3, generation_size=8)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the chosen sections, prints the table and writes the JSON."""
    args = parse_args(argv)
    # Runs through the shared singletons checkpoint into the workspace: keep it out of the user's.
    os.environ["GN_HOME"] = tempfile.mkdtemp(prefix="gn-bench-")
    from benchmarks import conv_bench, generation_overhead, grouped, population, report, sections

    started = time.perf_counter()
    wanted = args.sections.split(",")
    figures: dict[str, Any] = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": machine_info(args.device),
        "device": args.device,
        "seed": args.seed,
        "command": " ".join(
            ["python -m benchmarks", *(argv if argv is not None else sys.argv[1:])]
        ),
    }
    task = sections.load_task(args.data)
    if args.quick:
        from galapagos_nao.core import datasets

        task = datasets.subset(task, QUICK_TRAIN, 1000, seed=args.seed)
    steps = {
        "throughput": (
            "peak matmul rate, then our engine and the seed pipeline on each genome",
            lambda: sections.throughput(
                task, args.data, args.device, args.seed, args.generations, args.backend
            ),
        ),
        "conv": (
            "the conv seed: ours against a plain PyTorch loop, CPU ms per candidate-epoch",
            lambda: conv_bench.conv_row(task, args.seed),
        ),
        "policy": (
            "thread policy and batch size",
            lambda: sections.policy(task, args.device, args.seed),
        ),
        "responsiveness": (
            "responsiveness while a run trains",
            lambda: sections.responsiveness(task, args.device, args.seed),
        ),
        "grouped": (
            "grouped training against the per-candidate path, seed genome",
            lambda: grouped.grouped_rows(task, args.device, args.seed),
        ),
        "population": (
            "population rows: grouped training at large generation sizes",
            lambda: population.population_rows(
                task,
                args.device,
                args.seed,
                sections.peak_rate(args.device),
                population.QUICK_SIZES if args.quick else population.GPU_SIZES,
            ),
        ),
        "memory": (
            f"memory of a {args.memory_generations}-generation run",
            lambda: sections.memory(
                args.data, args.memory_generations, args.memory_train, args.seed
            ),
        ),
        "overhead": (
            "the CPU-side work of a generation of 1,024 mutated children, besides training",
            lambda: generation_overhead.generation_overhead(1024, 256, args.seed),
        ),
        "ray": (
            "the Ray backend against threads",
            lambda: _ray_row(args.data),
        ),
    }
    failed = False
    for name in wanted:
        what, measure = steps[name]
        _say(what)
        try:
            figures[name] = measure()
        except Exception:  # one broken section must not lose the others' figures
            traceback.print_exc()
            figures[name] = None
            failed = True
    figures["machine"]["load_end"] = _load()
    figures["targets"] = sections.targets(figures)
    figures["seconds"] = time.perf_counter() - started
    path = report.write_json(report.result_path(Path(args.out), args.device), figures)
    print(report.format_table(figures))
    print(f"\n{figures['seconds']:.0f} s; figures in {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
