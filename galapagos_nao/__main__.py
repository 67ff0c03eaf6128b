"""Command line: ``python -m galapagos_nao`` (or ``galapagos-nao``) runs the seed's example.

Prints the elites after every generation and when the run ends; ``--continual``
runs until Ctrl-C. (A script may print; the library itself only logs.)

Both take ``--workspace PATH`` and ``--experiment NAME``: the run is one
experiment of the workspace (``default`` unless named), and one process writes
each experiment, so the command line can run experiment ``b`` while IPython
trains ``a`` in the same file.

``python -m galapagos_nao watch [--workspace PATH] [--experiment NAME]`` instead
draws a live, read-only dashboard of that experiment (the ``watch`` extra), for
a second terminal beside the one that steers the run.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import galapagos_nao as gn
from galapagos_nao.core import datasets
from galapagos_nao.core.network import Network
from galapagos_nao.example import seed_layers
from galapagos_nao.run.loop import GenerationReport
from galapagos_nao.store.persistence import CorruptFileError
from galapagos_nao.store.workspace import WorkspaceLocked
from galapagos_nao.ui.logs import LEVELS, log_level


def _add_place(parser: argparse.ArgumentParser) -> None:
    """``--workspace`` and ``--experiment``: where a command reads or writes."""
    parser.add_argument(
        "--workspace", default=None, help="the workspace file (default: the default workspace)"
    )
    parser.add_argument(
        "--experiment",
        default="default",
        help="the experiment of the workspace (default: 'default'); made if new",
    )


def _check_place(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    try:
        gn.workspace.check_experiment_name("--experiment", args.experiment)
    except ValueError as error:
        parser.error(str(error))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parses the command line."""
    parser = argparse.ArgumentParser(
        prog="galapagos-nao",
        description="Evolve networks from the seed genome on MNIST and print the elites.",
    )
    _add_place(parser)
    parser.add_argument("--generations", type=int, default=2, help="generations to run (default 2)")
    parser.add_argument("--continual", action="store_true", help="run until interrupted (Ctrl-C)")
    parser.add_argument(
        "--resume", action="store_true", help="with --continual: resume the workspace's last run"
    )
    parser.add_argument(
        "--device", default=None, help="'auto', 'cpu', 'cuda' or 'cuda:N' (default: auto)"
    )
    parser.add_argument(
        "--data-dir", default=None, help="folder holding MNIST/raw (default: GN_DATA_DIR, cache)"
    )
    parser.add_argument("--seed", type=int, default=None, help="seed of the run's generator")
    parser.add_argument(
        "--log",
        choices=LEVELS,
        default="generation",
        help="what the run says: a line per generation (default), per candidate, or warnings only",
    )
    args = parser.parse_args(argv)
    _check_place(parser, args)
    if args.generations < 1:
        parser.error(f"--generations must be >= 1, got {args.generations}")
    if args.resume and not args.continual:
        parser.error("--resume needs --continual")
    if args.resume and args.seed is not None:
        parser.error("--resume continues the saved generator: it takes no --seed")
    return args


def parse_watch_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parses the arguments of ``watch`` (those after the word)."""
    parser = argparse.ArgumentParser(
        prog="galapagos-nao watch",
        description="A live dashboard of an experiment of a workspace (read-only; Ctrl-C ends it).",
    )
    _add_place(parser)
    parser.add_argument(
        "--interval", type=float, default=1.0, help="seconds between polls (default 1)"
    )
    parser.add_argument("--once", action="store_true", help="draw one frame and exit")
    args = parser.parse_args(argv)
    _check_place(parser, args)
    if not args.interval > 0:
        parser.error(f"--interval must be > 0, got {args.interval}")
    return args


def watch_main(argv: Sequence[str]) -> int:
    """``watch``: draws the dashboard until Ctrl-C; returns the exit status."""
    args = parse_watch_args(argv)
    # Damage the reader finds is on the dashboard; log records would tear the drawing.
    logging.getLogger("galapagos_nao").addHandler(logging.NullHandler())
    try:
        from galapagos_nao.ui import watch

        path = args.workspace or gn.workspace.default_path()
        return watch.watch(
            path,
            experiment=args.experiment,
            interval=args.interval,
            polls=1 if args.once else None,
        )
    except ImportError as error:
        print(f"galapagos-nao: error: {error}", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the example and prints the final elites; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["watch"]:  # a first word, not a subparser: the run's flags stay as they were
        return watch_main(argv[1:])
    args = parse_args(argv)
    log_level(args.log)
    try:
        if args.device is not None:
            gn.Parameters.put(gn.training, {"device": args.device})
        task = datasets.mnist(args.data_dir) if args.data_dir else None
    except (ValueError, FileNotFoundError) as error:
        print(f"galapagos-nao: error: {error}", file=sys.stderr)
        return 2
    try:
        gn.workspace.open(args.workspace, experiment=args.experiment)
        gn.experiment(args.experiment)
        run = _start(args, task)
    except WorkspaceLocked as error:
        print(f"galapagos-nao: error: {_locked(error, args)}", file=sys.stderr)
        return 2
    except (ValueError, RuntimeError, CorruptFileError) as error:
        print(f"galapagos-nao: error: {error}", file=sys.stderr)
        return 2
    try:
        while not run.done():
            time.sleep(0.2)  # not run.join: it answers Ctrl-C itself, and here it stops the run
    except KeyboardInterrupt:
        print("Stopping after the current candidates…", file=sys.stderr)
        run.stop()
        while not run.join():
            pass
    print(run)
    try:
        elites = run.result()
    except Exception as error:  # noqa: BLE001 - the run's log already has the details
        print(f"galapagos-nao: error: {error}", file=sys.stderr)
        return 1
    _print_elites(elites)
    return 0


def _locked(error: WorkspaceLocked, args: argparse.Namespace) -> str:
    """The refusal in the command line's words: who writes, and the flag that avoids it."""
    holder = error.holder or "another process"
    where = gn.workspace.current()
    path = "" if where is None else f" of {where.path}"
    return (
        f"experiment {args.experiment!r}{path} is being written by {holder}; "
        "run this one in another experiment with --experiment NAME "
        "(or wait for that process to finish)"
    )


def _print_elites(elites: Mapping[Any, Network]) -> None:
    for level, net in elites.items():
        print(f"{level}: {net!r}")


def _print_generation(report: GenerationReport) -> None:
    """A generation hook printing the archive after each generation."""
    # Counted from 1, as the log line "Generation 1/2: …" that precedes it.
    print(f"Elites after generation {report.generation + 1}:", flush=True)
    _print_elites(report.elites)
    sys.stdout.flush()


def _start(args: argparse.Namespace, task: datasets.Task | None) -> gn.Run:
    """Starts the run the flags ask for."""
    hooks = [_print_generation]
    if args.resume:
        return gn.evolve_continual(task=task, resume=True, hooks=hooks)
    if args.continual:
        return gn.evolve_continual(seed_layers(), task, seed=args.seed, hooks=hooks)
    return gn.evolve(seed_layers(), args.generations, task, seed=args.seed, hooks=hooks)


if __name__ == "__main__":
    sys.exit(main())
