"""The benchmark's sections: each measures one part of the table and returns plain figures.

Every function returns a JSON-ready dict; :mod:`benchmarks.report` prints them.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from benchmarks.conv_bench import OVERHEAD_TARGET
from benchmarks.engine import EngineMeasure, measure_engine
from benchmarks.genomes import BENCH_GENOMES, training_flops
from benchmarks.memory import run_in_subprocess
from benchmarks.peak import cpu_matmul_peak, cuda_matmul_peak
from benchmarks.responsiveness import measure_latency
from benchmarks.seed_pipeline import run_concurrently
from galapagos_nao.config.settings import TrainingSettings
from galapagos_nao.core import datasets
from galapagos_nao.core.datasets import Task
from galapagos_nao.core.device_data import split_validation
from galapagos_nao.example import seed_layers
from galapagos_nao.run.devices import STREAMS_PER_GPU, plan_cpu_workers, usable_cores

__all__ = [
    "load_task",
    "memory",
    "peak_rate",
    "policy",
    "responsiveness",
    "targets",
    "throughput",
]

#: Candidates per generation in the throughput and policy runs (the seed's default).
CPU_GENERATION = 4
#: On a GPU, enough candidates per generation for the streams to overlap.
GPU_GENERATION = 8
SEED_GENOME = "8 layers (seed)"
#: Measured generations per policy row: one is too few to rise above a shared machine's noise.
POLICY_GENERATIONS = 2


def load_task(root: str) -> Task:
    """Full MNIST from ``root`` (never downloaded)."""
    return datasets.mnist(root, download=False)


def _train_samples(task: Task) -> int:
    fraction = TrainingSettings().validation_fraction
    return int(split_validation(task, fraction)[0].numel())


def _peak(device: str) -> tuple[float, str]:
    if device.startswith("cuda"):
        return cuda_matmul_peak(torch.device(device)), "CUDA, TF32 off"
    cores = usable_cores()
    readings = {
        f"{cores} threads × 1": cpu_matmul_peak(cores, 1),
        f"1 thread × {cores}": cpu_matmul_peak(1, cores),
    }
    layout = max(readings, key=lambda k: readings[k])
    return readings[layout], f"best of {', '.join(readings)} intra-op threads: {layout}"


def peak_rate(device: str) -> float:
    """The float32 matmul peak of ``device`` in FLOP/s (the best CPU layout on a CPU)."""
    return _peak(device)[0]


def _layout(measure: EngineMeasure) -> str:
    return f"{measure.workers} × {measure.threads}"


def throughput(
    task: Task, root: str, device: str, seed: int, generations: int, backend: str = "threads"
) -> dict[str, Any]:
    """Ours against the seed pipeline on every genome, with the share of the matmul peak.

    ``backend`` is ours' ``orchestration.backend`` (``"threads"`` or ``"processes"``).

    Ours is one run whose generations hold clones of all four genomes (as a
    generation of varied children does); the seed pipeline trains each genome in
    its own process, as many at once as we train candidates.
    """
    peak, peak_layout = _peak(device)
    on_gpu = device.startswith("cuda")
    n_train = _train_samples(task)
    genomes = list(BENCH_GENOMES.values())
    ours = measure_engine(
        genomes,
        task,
        seed=seed,
        generation_size=(2 if on_gpu else 1) * len(genomes),
        generations=generations,
        training={"device": device},
        backend=backend,
    )
    processes = min(len(genomes), ours.workers)
    threads = 1 if on_gpu else max(1, usable_cores() // processes)
    seeds = run_concurrently(
        BENCH_GENOMES, root, processes=processes, threads=threads, seed=seed, device=device
    )
    rows: dict[str, dict[str, Any]] = {}
    for name, layers in BENCH_GENOMES.items():
        flops = training_flops(layers)
        seconds, test_acc = ours.genome_figures(layers)
        per_minute = ours.genome_per_minute(layers)
        theirs = seeds[name]
        seed_per_minute = 60.0 * processes / theirs.seconds
        rows[name] = {
            "layers": len(layers),
            "genome": [list(layer) for layer in layers],
            "train_mflop_per_sample": flops / 1e6,
            "ours_per_minute": per_minute,
            "ours_seconds": seconds,
            "ours_test_acc": test_acc,
            "seed_per_minute": seed_per_minute,
            "seed_seconds": theirs.seconds,
            "seed_train_seconds": theirs.train_seconds,
            "seed_test_acc": theirs.test_acc,
            "seed_train_acc": theirs.train_acc,
            "ratio": per_minute / seed_per_minute,
            "fraction_of_peak": flops * n_train * per_minute / 60.0 / peak,
        }
    seed_per_minute = 60.0 * len(seeds) * processes / sum(s.seconds for s in seeds.values())
    # The seed's script as written: one candidate at a time, torch's default threads.
    alone = run_concurrently(
        {SEED_GENOME: BENCH_GENOMES[SEED_GENOME]},
        root,
        processes=1,
        threads=1 if on_gpu else usable_cores(),
        seed=seed,
        device=device,
    )[SEED_GENOME]
    return {
        "n_train": task.n_train,
        "n_test": task.n_test,
        "train_split": n_train,
        "policy": f"{_layout(ours)} workers × threads, batch {_batch_label(task)}",
        "backend": backend,
        "seed_policy": f"{processes} processes × {threads} thread, batch 64, SGD 0.01",
        "peak_gflops": peak / 1e9,
        "peak_layout": peak_layout,
        "overhead": ours.overhead,
        "idle_share": ours.idle_share,
        "cpu_per_candidate": ours.cpu_per_candidate,
        "candidates": ours.candidates,
        "seconds": ours.seconds,
        "failures": ours.failures,
        "genomes": rows,
        "seed_alone": {
            "layout": f"1 process × {1 if on_gpu else usable_cores()} threads",
            "seconds": alone.seconds,
            "per_minute": 60.0 / alone.seconds,
            "test_acc": alone.test_acc,
            "ratio": rows[SEED_GENOME]["ours_per_minute"] * alone.seconds / 60.0,
        },
        "total": {
            "ours_per_minute": ours.per_minute,
            "seed_per_minute": seed_per_minute,
            "ratio": ours.per_minute / seed_per_minute,
        },
    }


def _batch_label(task: Task) -> str:
    from galapagos_nao.core.training import batch_size_for

    setting = TrainingSettings().batch_size
    return f"{setting} = {batch_size_for(setting, _train_samples(task))}"


def policy(task: Task, device: str, seed: int) -> dict[str, Any]:
    """The default workers × threads (and batch size) against the alternatives, seed genome."""
    base: dict[str, Any] = {"device": device}
    if device.startswith("cuda"):
        size = GPU_GENERATION
        layouts = [(w, 1) for w in (1, 2, STREAMS_PER_GPU, GPU_GENERATION)]
        chosen = (min(size, STREAMS_PER_GPU), 1)
        extra = [({**base, "precision": "bf16"}, chosen)]
    else:
        size = CPU_GENERATION
        cores = usable_cores()
        chosen = plan_cpu_workers(size)
        layouts = [chosen] + [
            shape for shape in [(1, cores), (cores, cores), (2 * cores, 1)] if shape != chosen
        ]
        extra = [({**base, "batch_size": 128, "learning_rate": 1e-3}, chosen)]
    runs = [(base, shape) for shape in layouts] + extra
    rows = []
    for training, (workers, threads) in runs:
        measure = measure_engine(
            [seed_layers()],
            task,
            seed=seed,
            workers=workers,
            threads=threads,
            generation_size=size,
            generations=POLICY_GENERATIONS,
            training=training,
        )
        section = TrainingSettings(**training)
        rows.append(
            {
                "layout": _layout(measure),
                "batch_size": section.batch_size,
                "learning_rate": section.learning_rate,
                "precision": section.precision,
                "per_minute": measure.per_minute,
                "test_acc": measure.test_acc,
                "overhead": measure.overhead,
                "cpu_per_candidate": measure.cpu_per_candidate,
                "cores_used": measure.cpu_seconds / measure.seconds / usable_cores(),
                "chosen": training is base and (workers, threads) == chosen,
            }
        )
    return {"genome": SEED_GENOME, "candidates": size, "rows": rows}


def responsiveness(task: Task, device: str, seed: int) -> dict[str, Any]:
    """p50/p99 of ``get_all`` and ``Parameters.get`` while the seed genome evolves."""
    import galapagos_nao as gn

    gn.Parameters.put("training", {"device": device})
    try:
        latencies = measure_latency(seed_layers(), task, seed=seed)
    finally:
        gn.Parameters.reset()
    return latencies.summary()


def memory(root: str, generations: int, n_train: int, seed: int) -> dict[str, Any]:
    """Peak RSS of a ``generations``-generation run in a fresh process, bytes per elite."""
    if n_train:
        return run_in_subprocess(root, generations, n_train, max(1000, n_train // 6), seed)
    return run_in_subprocess(root, generations, None, None, seed)


def _target(what: str, met: bool, reached: str) -> dict[str, Any]:
    return {"what": what, "met": bool(met), "reached": reached}


def targets(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of issues 3 and 18 with whether it was met and by how much."""
    found = []
    throughput = figures.get("throughput")
    if throughput:
        total = throughput["total"]["ratio"]
        found.append(
            _target("≥ 25× the seed pipeline (all four genomes)", total >= 25, f"{total:.1f}×")
        )
        worse = [
            name
            for name, g in throughput["genomes"].items()
            if g["ours_test_acc"] < g["seed_test_acc"]
        ]
        found.append(
            _target(
                "accuracy after one epoch ≥ the seed pipeline's on the same genome",
                not worse,
                "on every genome" if not worse else f"lower on {', '.join(worse)}",
            )
        )
        seed = throughput["genomes"][SEED_GENOME]["fraction_of_peak"]
        found.append(
            _target("≥ 40% of the matmul peak, 8-layer genome", seed >= 0.40, f"{100 * seed:.1f}%")
        )
        overhead = throughput["overhead"]
        found.append(
            _target("overhead ≤ 3% of generation time", overhead <= 0.03, f"{100 * overhead:.1f}%")
        )
    overhead = figures.get("overhead")
    if overhead:
        share = overhead[-1]["share_of_target_generation"]
        found.append(
            _target(
                "CPU-side work of a generation of 1,024 ≤ 10% of it at 15,000/min",
                share <= 0.10,
                f"{100 * share:.0f}%",
            )
        )
    conv = figures.get("conv")
    if conv:
        overhead = conv["overhead"]
        found.append(
            _target(
                "conv seed: ≤ 10% more CPU per candidate-epoch than a plain PyTorch loop (fit)",
                overhead <= OVERHEAD_TARGET,
                f"{100 * overhead:+.1f}%",
            )
        )
    latency = figures.get("responsiveness")
    if latency:
        p99 = latency["get_all_p99_ms"]
        found.append(_target("get_all p99 ≤ 5 ms while training", p99 <= 5.0, f"{p99:.2f} ms"))
    return [t for t in found if not (isinstance(t["reached"], float) and math.isnan(t["reached"]))]
