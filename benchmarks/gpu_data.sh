#!/usr/bin/env bash
# Packs MNIST for a lent GPU machine, which reaches neither ../shared nor the internet.
#
# Usage, from anywhere:  benchmarks/gpu_data.sh
# Writes the four MNIST files, gzipped (about 11 MB), to .gpudata/ in the repository root
# (git-ignored: the dataset is never committed). benchmarks/gpu.sh reads them from there when it
# finds no MNIST/raw, so on the lent machine, through the device tool:
#   run(command="benchmarks/gpu.sh", carry=[".gpudata"])
# Environment:
#   GN_DATA_DIR   dataset root holding MNIST/raw (default: ../shared/data beside the repository)
set -euo pipefail

cd "$(dirname "$0")/.."
data=${GN_DATA_DIR:-$(cd .. && pwd)/shared/data}
mkdir -p .gpudata
for name in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    if [ ! -f "$data/MNIST/raw/$name" ]; then
        echo "gpu_data.sh: $data/MNIST/raw/$name is missing (set GN_DATA_DIR)" >&2
        exit 1
    fi
    gzip -c "$data/MNIST/raw/$name" > ".gpudata/$name.gz"
done
du -sh .gpudata
