# An IPython shell with galapagos_nao installed and imported as `gn`:
#   docker build -t galapagos-nao .
#   docker run -it --rm galapagos-nao
FROM python:3.11-slim

# Unbuffered output so log lines from the background run show up at once.
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/galapagos-nao
COPY . .
RUN pip install --no-cache-dir ".[ipython]"

# Run from a neutral directory so the installed package, not the source tree, is imported.
WORKDIR /workspace
CMD ["ipython", "-i", "-c", "import galapagos_nao as gn"]
