"""Turns the figures into the printed table and the JSON file.

The JSON (``benchmarks/results/<host>-<date>.json``) holds every figure the
table shows plus the raw ones behind them; the table is what ``make bench``
prints last.
"""

from __future__ import annotations

import datetime
import json
import math
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["format_table", "result_path", "write_json"]


def result_path(
    directory: Path, device: str = "cpu", when: datetime.datetime | None = None
) -> Path:
    """``directory/<host>-<YYYY-MM-DD>.json``, ``<host>-cuda-<date>.json`` for a GPU run.

    A second run on the same day and device replaces the first.
    """
    when = when or datetime.datetime.now()
    kind = "" if device == "cpu" else f"-{device.replace(':', '')}"
    return directory / f"{socket.gethostname()}{kind}-{when:%Y-%m-%d}.json"


def write_json(path: Path, figures: Mapping[str, Any]) -> Path:
    """Writes ``figures`` as indented JSON (through a temporary file: no half file on a crash)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(".tmp")
    scratch.write_text(json.dumps(figures, indent=2, sort_keys=False) + "\n")
    scratch.replace(path)
    return path


#: The phases ``benchmarks.generation_overhead`` times.
OVERHEAD_PHASES = ("breed", "group", "set_up", "records", "select")


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def _grid(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += [
        "  ".join(
            c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in cells
    ]
    return out


THROUGHPUT_COLUMNS = [
    ("genome", None),
    ("layers", "layers"),
    ("MFLOP/sample", "train_mflop_per_sample"),
    ("ours cand/min", "ours_per_minute"),
    ("ours test acc", "ours_test_acc"),
    ("ours s/cand", "ours_seconds"),
    ("seed cand/min", "seed_per_minute"),
    ("seed s/cand", "seed_seconds"),
    ("seed test acc", "seed_test_acc"),
    ("ratio", "ratio"),
    ("% of peak", "percent_of_peak"),
]
POLICY_COLUMNS = [
    ("workers × threads", "layout"),
    ("batch", "batch_size"),
    ("lr", "learning_rate"),
    ("precision", "precision"),
    ("cand/min", "per_minute"),
    ("CPU s/cand", "cpu_per_candidate"),
    ("cores used %", "percent_cores_used"),
    ("test acc", "test_acc"),
    ("chosen", "mark"),
]


def _table(
    columns: Sequence[tuple[str, str | None]], rows: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """Rows of ``rows`` (name → figures) under ``columns`` (header, key; None: the name)."""
    headers = [header for header, _ in columns]
    cells = [
        [name if key is None else row.get(key, "") for _, key in columns]
        for name, row in rows.items()
    ]
    return _grid(headers, cells)


def _throughput_lines(throughput: Mapping[str, Any], seed: int) -> list[str]:
    rows = {
        name: {**g, "percent_of_peak": 100 * g["fraction_of_peak"]}
        for name, g in throughput["genomes"].items()
    }
    rows["all four"] = {
        key: throughput["total"][key] for key in ("ours_per_minute", "seed_per_minute", "ratio")
    }
    return [
        f"Candidate throughput: 1 epoch on full MNIST ({throughput['n_train']} train / "
        f"{throughput['n_test']} test), through evolve with seed {seed}",
        f"  ours: {throughput['policy']}; seed pipeline: {throughput['seed_policy']}",
        *_table(THROUGHPUT_COLUMNS, rows),
        _alone_line(throughput),
        f"peak float32 matmul: {throughput['peak_gflops']:.1f} GFLOP/s "
        f"({throughput['peak_layout']})",
        f"overhead (no candidate training): {100 * throughput['overhead']:.1f}% of generation wall "
        f"time; worker time not training (incl. waiting for the slowest candidate): "
        f"{100 * throughput['idle_share']:.1f}%",
        "",
    ]


def _alone_line(throughput: Mapping[str, Any]) -> str:
    alone = throughput.get("seed_alone")
    if not alone:
        return "seed pipeline one candidate at a time: not measured"
    return (
        f"seed pipeline one candidate at a time ({alone['layout']}, as its script runs), seed "
        f"genome: {alone['per_minute']:.2f} cand/min, {alone['seconds']:.1f} s, test acc "
        f"{alone['test_acc']:.3f}; ours is {alone['ratio']:.1f}× that"
    )


def _policy_lines(policy: Mapping[str, Any]) -> list[str]:
    rows = {
        str(index): {
            **row,
            "percent_cores_used": 100 * row["cores_used"],
            "mark": "<- default" if row["chosen"] else "",
        }
        for index, row in enumerate(policy["rows"])
    }
    return [
        f"Thread policy: {policy['genome']}, {policy['candidates']} candidates per generation",
        *_table(POLICY_COLUMNS, rows),
        "",
    ]


GROUPED_COLUMNS = [
    ("generation", "generation_size"),
    ("group size", "group_size"),
    ("cand/min", "per_minute"),
    ("CPU s/cand", "cpu_per_candidate"),
    ("test acc", "test_acc"),
    ("vs group 1", "ratio"),
]
POPULATION_COLUMNS = [
    ("generation", "generation_size"),
    ("mutation", "mutation"),
    ("cand/min", "per_minute"),
    ("% of peak", "percent_of_peak"),
    ("mean group", "mean_group_size"),
    ("padded", "padded_share"),
    ("vs per-candidate", "ratio"),
    ("overhead", "overhead"),
    ("test acc", "test_acc"),
    ("failed", "failures"),
]


def _grouped_lines(grouped: Mapping[str, Any]) -> list[str]:
    return [
        f"Grouped training: {grouped['genome']}, group size 1 = the per-candidate path",
        *_grid(
            [header for header, _ in GROUPED_COLUMNS],
            [[row[key] for _, key in GROUPED_COLUMNS] for row in grouped["rows"]],
        ),
        "",
    ]


def _population_lines(population: Mapping[str, Any]) -> list[str]:
    base = population["baseline"]
    return [
        f"Population rows: {population['genome']}; per-candidate path at generation "
        f"{base['generation_size']}: {base['per_minute']:,.0f} cand/min",
        *_grid(
            [header for header, _ in POPULATION_COLUMNS],
            [
                [row.get(key, float("nan")) for _, key in POPULATION_COLUMNS]
                for row in population["rows"]
            ],
        ),
        "",
    ]


def _conv_lines(conv: Mapping[str, Any]) -> list[str]:
    rows = [
        [
            "plain PyTorch loop",
            conv["plain_cpu_ms"],
            conv["plain_wall_s"],
            conv["plain_test_acc"],
            "",
        ],
        [
            "ours: fit",
            conv["fit_cpu_ms"],
            conv["fit_wall_s"],
            conv["fit_test_acc"],
            100 * conv["overhead"],
        ],
    ]
    if "evolve_cpu_ms" in conv:
        rows.append(
            [
                "ours: through evolve",
                conv["evolve_cpu_ms"],
                float("nan"),
                conv["evolve_test_acc"],
                100 * conv["evolve_overhead"],
            ]
        )
    return [
        f"Conv seed (gn.example.conv_layers(), {conv['mmacs_per_sample']:.2f} M multiply-adds "
        f"per sample): {conv['epochs']} epoch on {conv['train_split']} samples, batch "
        f"{conv['batch_size']}, {conv['optimizer']}, 1 thread, median of {conv['repeats']}",
        *_grid(["path", "CPU ms/cand-epoch", "wall s", "test acc", "overhead %"], rows),
        "",
    ]


def _overhead_line(passes: Sequence[Mapping[str, Any]]) -> str:
    """The second pass of ``generation_overhead``: what a run's later generations pay."""
    found = passes[-1]
    phases = ", ".join(f"{p.replace('_', ' ')} {found[p]:.3f} s" for p in OVERHEAD_PHASES)
    return (
        f"\nA generation of {found['size']:,} mutated children besides training "
        f"(one CPU thread): {phases}; "
        f"total {found['total']:.2f} s = {100 * found['share_of_target_generation']:.0f}% "
        "of a generation at 15,000 candidate-epochs/min"
    )


def _latency_line(latency: Mapping[str, Any]) -> str:
    return (
        f"Responsiveness while a run trains ({latency['samples']} samples, "
        f"{latency['elites_seen']} elites): get_all p50 {latency['get_all_p50_ms']:.2f} ms, "
        f"p99 {latency['get_all_p99_ms']:.2f} ms; Parameters.get p50 "
        f"{latency['parameters_get_p50_ms']:.2f} ms, p99 {latency['parameters_get_p99_ms']:.2f} ms"
    )


def _memory_line(memory: Mapping[str, Any]) -> str:
    mib = 2**20
    return (
        f"Memory, {memory['generations']}-generation run ({memory['n_train']} train samples): "
        f"peak RSS {memory['peak_rss_bytes'] / mib:.0f} MiB (after loading the task "
        f"{memory['rss_after_task_load_bytes'] / mib:.0f} MiB); {memory['elites']} elites, "
        f"{memory['bytes_per_elite'] / 1024:.0f} KiB of weights each"
    )


def _ray_line(ray: Mapping[str, Any]) -> str:
    return (
        f"Ray backend on this machine ({ray['n_train']} train samples, {ray['generation_size']} "
        f"candidates a generation): {ray['ray_candidate_epochs_per_min']:.1f} candidate-epochs/min "
        f"vs threads {ray['threads_candidate_epochs_per_min']:.1f} ({ray['ray_vs_threads']:.2f}x); "
        f"per-task overhead {ray['ray_task_overhead_ms']:.1f} ms (threads "
        f"{ray['threads_task_overhead_ms']:.2f} ms); local Ray start {ray['ray_start_s']:.1f} s"
    )


def format_table(figures: Mapping[str, Any]) -> str:
    """The benchmark's table, section by section, from the figures dict."""
    machine = figures["machine"]
    lines = [
        f"Galápagos Nǎo benchmark — {machine['summary']}",
        f"load average at start / end: {machine['load_start']} / {machine.get('load_end')}",
        "",
    ]
    if figures.get("throughput"):
        lines += _throughput_lines(figures["throughput"], figures["seed"])
    if figures.get("conv"):
        lines += _conv_lines(figures["conv"])
    if figures.get("policy"):
        lines += _policy_lines(figures["policy"])
    if figures.get("grouped"):
        lines += _grouped_lines(figures["grouped"])
    if figures.get("population"):
        lines += _population_lines(figures["population"])
    if figures.get("overhead"):
        lines.append(_overhead_line(figures["overhead"]))
    if figures.get("responsiveness"):
        lines.append(_latency_line(figures["responsiveness"]))
    if figures.get("memory"):
        lines.append(_memory_line(figures["memory"]))
    if figures.get("ray"):
        lines.append(_ray_line(figures["ray"]))
    if figures.get("targets"):
        lines += ["", "Targets:"]
        marks = {True: "met ", False: "MISS"}
        lines += [f"  {marks[t['met']]}  {t['what']}: {t['reached']}" for t in figures["targets"]]
    return "\n".join(lines)
