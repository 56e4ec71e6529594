# One image for every loupe executor and the gateway; `loupe export` points each of them at
# its folder under /app/executors. Models are not in the image: they download at start from
# the Hugging Face hub into $HF_HOME (mount a volume there to keep them), or mount checkpoint
# folders and select them with LOUPE_CLIP_MODEL / LOUPE_OWL_MODEL / ... (see README).
#
#   docker build -t loupe:0.1.0 .                                    # CPU
#   docker build -t loupe:0.1.0-cuda --build-arg VARIANT=cuda .      # NVIDIA GPU (CUDA 12.8)
ARG PYTHON=3.11
FROM python:${PYTHON}-slim

ARG VARIANT=cpu
ARG TORCH=2.13.0
ENV PYTHONUNBUFFERED=1 \
    HF_HOME=/models \
    LOUPE_WORKSPACE=/data \
    LOUPE_FLOWS=/app/flows \
    JINA_HIDE_SURVEY=1 \
    JINA_OPTOUT_TELEMETRY=1

WORKDIR /app
COPY constraints.txt pyproject.toml setup.py README.md ./
# torch first, from the index of the variant: the CPU wheel is ~200 MB, the CUDA one ~2.5 GB.
RUN pip install --no-cache-dir torch==${TORCH} \
        --index-url https://download.pytorch.org/whl/$([ "$VARIANT" = cuda ] && echo cu128 || echo cpu)
COPY loupe ./loupe
COPY executors ./executors
COPY flows ./flows
RUN grep -v '^torch==' constraints.txt > /tmp/constraints.txt \
    && pip install --no-cache-dir -c /tmp/constraints.txt . \
    && mkdir -p /data /models

VOLUME ["/data", "/models"]
EXPOSE 54000 54001
# `loupe serve` by default (one container, every executor); the exported manifests run
# `jina executor ...` / `jina gateway ...` per container instead.
CMD ["loupe", "serve", "--host", "0.0.0.0"]
