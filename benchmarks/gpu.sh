#!/usr/bin/env bash
# The GPU rows of `make bench`, from a bare machine with Python, in < 5 minutes.
#
# Usage, from anywhere:  benchmarks/gpu.sh [extra arguments for `python -m benchmarks`]
# Try it without a GPU:  BENCH_DEVICE=cpu benchmarks/gpu.sh --quick
# Environment:
#   PYTHON        interpreter to use (default: python3)
#   GN_DATA_DIR   dataset root holding MNIST/raw (default: ../shared/data beside the repository)
#   MNIST_GZ      else, a folder holding the four MNIST .gz files (train-images-idx3-ubyte.gz, ...),
#                 unpacked into a temporary root (default: .gpudata in the repository root, where
#                 benchmarks/gpu_data.sh packs them); without either, torchvision downloads MNIST
#
# On a lent machine (no ../shared, no internet): run benchmarks/gpu_data.sh here first, then
# through the device tool: run(command="benchmarks/gpu.sh", carry=[".gpudata"]).
#   OUT           folder for the JSON and the log (default: benchmarks/results)
#   BENCH_DEVICE  device to benchmark (default: cuda; "cpu" only to try this script without a GPU)
#   SECTIONS      sections to run (default: overhead,population,grouped; the rows of issue 3
#                 are throughput,policy: add them when there is time)
#
# It installs what is missing (torch, torchvision, numpy, safetensors) with pip, checks that torch
# sees a GPU, runs `python -m benchmarks --device cuda --sections overhead,population,grouped`
# (overhead: the host CPU's seconds for a generation of 1,024 besides training), then the GPU
# tests when pytest is there: tests/run/test_engine.py, the grouped-vs-alone equivalence of
# tests/core/test_grouped.py, the full-MNIST equivalence of homogeneous and mutated groups of 8
# (tests/core/test_group_equivalence_mnist.py) and the device-independence of the random streams
# (tests/core/test_batched_randomness.py) and CUDA-graph against eager training
# (tests/core/test_cuda_graphs.py), each on the GPU. The benchmark gives candidate-epochs/min
# of the seed genome at generation_size 16, 64, 256 and 1,024 with mutation off and on, the share
# of the float32 matmul peak, the mean group size, the padded share of the groups' multiply-adds,
# the ratio to the per-candidate path measured in the same run and the overhead (breeding,
# selection, checkpointing and group planning as a share of the generation). Record the table
# with the device name in benchmarks/RESULTS.md.
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
OUT=${OUT:-benchmarks/results}
DEVICE=${BENCH_DEVICE:-cuda}
SECTIONS=${SECTIONS:-overhead,population,grouped}
mkdir -p "$OUT"

missing=$("$PYTHON" -c '
import importlib.util
wanted = ["torch", "torchvision", "numpy", "safetensors"]
print(" ".join(name for name in wanted if importlib.util.find_spec(name) is None))
')
if [ -n "$missing" ]; then
    echo "installing: $missing"
    "$PYTHON" -m pip install --quiet $missing
fi
if [[ $DEVICE == cuda* ]]; then
    "$PYTHON" -c '
import sys, torch
if not torch.cuda.is_available():
    sys.exit("gpu.sh: torch sees no CUDA GPU")
print(f"torch {torch.__version__}, {torch.cuda.device_count()} GPU(s): {torch.cuda.get_device_name(0)}")
'
fi

data=${GN_DATA_DIR:-$(cd .. && pwd)/shared/data}
if [ ! -f "$data/MNIST/raw/train-images-idx3-ubyte" ]; then
    data=$(mktemp -d)
    if [ -z "${MNIST_GZ:-}" ] && [ -f .gpudata/train-images-idx3-ubyte.gz ]; then
        MNIST_GZ=.gpudata
    fi
    if [ -n "${MNIST_GZ:-}" ]; then
        mkdir -p "$data/MNIST/raw"
        for file in "$MNIST_GZ"/*-ubyte.gz; do
            gunzip -c "$file" > "$data/MNIST/raw/$(basename "$file" .gz)"
        done
    else
        "$PYTHON" -c "import sys, torchvision; torchvision.datasets.MNIST(sys.argv[1], download=True)" "$data"
    fi
fi
export GN_DATA_DIR=$data PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1

set -o pipefail
# The figures first: on a lease that may end, the tests after them are the cheaper loss.
"$PYTHON" -m benchmarks --device "$DEVICE" --sections "$SECTIONS" --data "$data" --out "$OUT" \
    "$@" 2>&1 | tee "$OUT/gpu-bench.log"
if [[ $DEVICE == cuda* ]] && "$PYTHON" -c "import pytest" 2>/dev/null; then
    "$PYTHON" -m pytest tests/run/test_engine.py tests/core/test_grouped.py \
        tests/core/test_batched_randomness.py tests/core/test_group_equivalence_mnist.py \
        tests/core/test_cuda_graphs.py \
        -q -k "gpu or cuda" -p no:cacheprovider 2>&1 | tee "$OUT/gpu-tests.log"
fi
