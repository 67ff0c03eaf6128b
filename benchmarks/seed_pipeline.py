"""The seed's training pipeline, rewritten in PyTorch: the baseline every ratio is taken against.

The seed (an Elixir/MXNet library) trained each candidate the textbook way: the
MNIST files through a data loader that converts every sample to a tensor on its
own (``ToTensor``), mini-batches of 64, plain SGD with learning rate 0.01 for one
epoch, then one accuracy pass over the whole test set and one over the whole
training set. :func:`train_like_seed` does exactly that with torchvision and a
``DataLoader``, on the network our compiler builds from the same genome, so the
only difference from our engine is the pipeline, not the model.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from benchmarks import REPO
from galapagos_nao.core.network import build
from galapagos_nao.core.typing import Genome

__all__ = [
    "SEED_BATCH",
    "SEED_LEARNING_RATE",
    "SeedDatasets",
    "SeedResult",
    "run_concurrently",
    "train_like_seed",
]

#: The seed's mini-batch size.
SEED_BATCH = 64
#: The seed's SGD learning rate (no momentum).
SEED_LEARNING_RATE = 0.01


@dataclass(frozen=True)
class SeedDatasets:
    """torchvision's MNIST datasets with the per-sample ``ToTensor`` transform.

    Opened once per benchmark (reading the files is not part of a candidate's cost
    in either pipeline).
    """

    train: torch.utils.data.Dataset
    test: torch.utils.data.Dataset

    @classmethod
    def open(cls, root: str | Path) -> SeedDatasets:
        """Opens ``root/MNIST/raw`` without downloading anything."""
        from torchvision import datasets, transforms

        to_tensor = transforms.ToTensor()
        return cls(
            train=datasets.MNIST(str(root), train=True, transform=to_tensor, download=False),
            test=datasets.MNIST(str(root), train=False, transform=to_tensor, download=False),
        )


@dataclass(frozen=True)
class SeedResult:
    """One candidate-epoch of the seed pipeline.

    Attributes:
        seconds: Wall time of training plus both accuracy passes.
        train_seconds: Wall time of the training epoch alone.
        test_acc: Accuracy over the full test set.
        train_acc: Accuracy over the full training set, measured after training.
    """

    seconds: float
    train_seconds: float
    test_acc: float
    train_acc: float


def _accuracy(model: nn.Module, dataset: torch.utils.data.Dataset, device: torch.device) -> float:
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in DataLoader(dataset, batch_size=SEED_BATCH):
            x, y = x.to(device), y.to(device)
            correct += int((model(x).argmax(dim=1) == y).sum())
            total += int(y.shape[0])
    model.train()
    return correct / max(1, total)


def train_like_seed(
    layers: Genome, data: SeedDatasets, *, seed: int, device: str = "cpu"
) -> SeedResult:
    """Trains ``layers`` for one epoch the way the seed did, and measures it.

    Args:
        layers: The genome, compiled with our :func:`~galapagos_nao.core.network.build`.
        data: The opened datasets.
        seed: Seeds torch's global generator (init, shuffling and dropout).
        device: Where the model runs; batches are moved there one by one, as
            a data loader feeding a GPU does.

    Returns:
        Timings and both accuracies.
    """
    torch.manual_seed(seed)
    target = torch.device(device)
    started = time.perf_counter()
    model = build(layers, (1, 28, 28), 10).to(target)
    optimizer = torch.optim.SGD(model.parameters(), lr=SEED_LEARNING_RATE)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for x, y in DataLoader(data.train, batch_size=SEED_BATCH, shuffle=True):
        x, y = x.to(target), y.to(target)
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()
    if target.type == "cuda":
        torch.cuda.synchronize(target)
    trained = time.perf_counter()
    test_acc = _accuracy(model, data.test, target)
    train_acc = _accuracy(model, data.train, target)
    return SeedResult(
        seconds=time.perf_counter() - started,
        train_seconds=trained - started,
        test_acc=test_acc,
        train_acc=train_acc,
    )


def run_concurrently(
    genomes: Mapping[str, Genome],
    root: str | Path,
    *,
    processes: int,
    threads: int,
    seed: int,
    device: str = "cpu",
) -> dict[str, SeedResult]:
    """Runs the seed pipeline on each genome, ``processes`` at a time, in fresh interpreters.

    Separate processes give the seed its best throughput on several cores (no
    interpreter lock shared, as the seed trained its candidates concurrently);
    each reports its own timings, so start-up and file reading are not counted.
    Results travel as JSON on stdout.

    Args:
        genomes: Name → genome.
        root: Dataset root holding ``MNIST/raw``.
        processes: Candidates trained at once.
        threads: Intra-op threads of each process.
        seed: Seed of every candidate.
        device: Where the models run.

    Returns:
        Name → result, in the order of ``genomes``.
    """
    waiting = list(genomes.items())
    running: list[tuple[str, subprocess.Popen[str]]] = []
    results: dict[str, SeedResult] = {}
    while waiting or running:
        while waiting and len(running) < processes:
            name, layers = waiting.pop(0)
            command = [sys.executable, "-m", "benchmarks.seed_pipeline", "--data", str(root)]
            command += ["--genome", json.dumps(layers), "--seed", str(seed)]
            command += ["--threads", str(threads), "--device", device]
            running.append(
                (name, subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True))
            )
        name, process = running.pop(0)
        output, _ = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"the seed pipeline failed on {name!r} (exit {process.returncode})")
        results[name] = SeedResult(**json.loads(output.strip().splitlines()[-1]))
    return {name: results[name] for name in genomes}


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: trains one genome the seed's way and prints the result as JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.seed_pipeline")
    parser.add_argument("--data", required=True, help="dataset root holding MNIST/raw")
    parser.add_argument("--genome", required=True, help="the genome as JSON")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    layers: Any = [tuple(layer) for layer in json.loads(args.genome)]
    result = train_like_seed(
        layers, SeedDatasets.open(args.data), seed=args.seed, device=args.device
    )
    print(json.dumps(dataclasses.asdict(result)))


if __name__ == "__main__":
    main()
