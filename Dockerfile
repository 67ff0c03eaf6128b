# An IPython shell with galapagos_nao installed and imported as `gn`, on the CPU build
# of torch, with the workspace on a volume:
#   docker build -t galapagos-nao .
#   docker run -it --rm -v gn-home:/gn-home galapagos-nao
# With your MNIST (a folder holding MNIST/raw/) mounted read-only:
#   docker run -it --rm -v gn-home:/gn-home -v /path/to/data:/data:ro -e GN_DATA_DIR=/data galapagos-nao
# A CUDA image: take torch from a CUDA index instead, and give the container the GPUs:
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu124 -t galapagos-nao:cuda .
#   docker run -it --rm --gpus all -v gn-home:/gn-home galapagos-nao:cuda
FROM python:3.11-slim

# Where torch and torchvision come from: the CPU-only wheels by default (about a tenth
# of the size of the CUDA ones PyPI serves for Linux).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# The extras the session uses: IPython, tqdm bars and plots, the watch dashboard, ONNX.
ARG EXTRAS=ipython,plot,watch,onnx

# Unbuffered output so log lines from the background run show up at once.
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /opt/galapagos-nao

# Dependencies first, read from pyproject.toml alone, in layers of their own: editing
# the source does not reinstall torch. torch and torchvision come from TORCH_INDEX_URL
# with pyproject's version ranges; everything else from PyPI (pip then keeps that torch).
COPY pyproject.toml ./
RUN python -c "import sys, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; extras = [d for e in sys.argv[1].split(',') for d in p['optional-dependencies'][e]]; print('\n'.join(p['dependencies'] + extras))" "$EXTRAS" > requirements.txt \
    && pip install --index-url "$TORCH_INDEX_URL" $(grep -E '^(torch|torchvision)[^a-z_-]' requirements.txt) \
    && pip install -r requirements.txt

# The package itself; its dependencies are all in place.
COPY . .
RUN pip install --no-deps .

# The workspace (the Library, checkpoints, history, the journal) lives in GN_HOME, on a
# volume so that it outlives the container; a downloaded MNIST is cached there too.
RUN useradd --create-home --uid 1000 gn && mkdir -p /gn-home /data && chown gn /gn-home
ENV GN_HOME=/gn-home \
    XDG_CACHE_HOME=/gn-home/cache
VOLUME /gn-home

# Run from a neutral directory so the installed package, not the source tree, is imported.
USER gn
WORKDIR /home/gn
CMD ["ipython", "-i", "-c", "import galapagos_nao as gn"]
