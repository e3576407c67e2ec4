# syntax=docker/dockerfile:1
# gemma-3-api: the service and its playground in one image.
#
#   docker build --build-arg UID=$(id -u) --build-arg GID=$(id -g) -t gemma-3-api .
#   docker build --target cuda --build-arg UID=$(id -u) --build-arg GID=$(id -g) -t gemma-3-api:cuda .
#
# Stages: `build` compiles TypeScript, the playground and whisper.cpp; `runtime` (the default,
# CPU) and `cuda` (for `--gpus all` hosts) run it as the non-root `appuser`.

ARG NODE_VERSION=26

# ---------------------------------------------------------------------------- build
FROM node:${NODE_VERSION}-bookworm-slim AS build
# whisper.cpp (smart-whisper) compiles at install time
RUN apt-get update \
 && apt-get install -y --no-install-recommends g++ make python3 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
COPY frontend/package.json frontend/
COPY scripts/build-whisper.mjs scripts/whisper-patches.mjs scripts/
# whisper.cpp is rebuilt for x86-64-v3 (AVX2/FMA/F16C, every server CPU since ~2015; 8x faster than
# the generic build) when the build host has it; --build-arg SKIP_WHISPER_REBUILD=1 keeps the generic one.
# Pinned to v3 because an image runs on CPUs other than the build host's; on AVX-512 hosts only,
# --build-arg WHISPER_MARCH=x86-64-v4 is ~13 % faster per window (docs/benchmarks.md)
ARG SKIP_WHISPER_REBUILD=
ARG WHISPER_MARCH=x86-64-v3
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build \
 && npm run build -w frontend \
 && npm prune --omit=dev --no-audit --no-fund

# ---------------------------------------------------------------------------- runtime (CPU)
FROM node:${NODE_VERSION}-bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# appuser gets the host user's UID/GID so the mounted Hugging Face cache keeps its permissions
ARG UID=1000
ARG GID=1000
RUN userdel -r node 2>/dev/null || true \
 && groupadd --gid "${GID}" appuser \
 && useradd --uid "${UID}" --gid "${GID}" --create-home --shell /usr/sbin/nologin appuser \
 && mkdir -p /home/appuser/.cache/huggingface \
 && chown -R appuser:appuser /home/appuser \
 && mkdir -p /var/lib/gemma-3-api/jobs \
 && chown -R appuser:appuser /var/lib/gemma-3-api
WORKDIR /app
COPY --from=build --chown=appuser:appuser /app/package.json ./
COPY --from=build --chown=appuser:appuser /app/node_modules ./node_modules
COPY --from=build --chown=appuser:appuser /app/dist ./dist
COPY --from=build --chown=appuser:appuser /app/frontend/dist ./frontend/dist
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=6666 \
    BROWSER_PORT=6680 \
    HF_HOME=/home/appuser/.cache/huggingface \
    PLAYGROUND_DIR=/app/frontend/dist \
    JOB_STORAGE_DIR=/var/lib/gemma-3-api/jobs
# HUGGING_FACE_HUB_TOKEN (or HF_TOKEN) is read at run time: pass it with -e, never bake it in
USER appuser
# 6666 for API clients; 6680 for browsers (they refuse 6666): the playground and /docs
EXPOSE 6666 6680
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||6666)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "dist/main.js"]

# ---------------------------------------------------------------------------- cuda
# For `docker run --gpus all`: node-llama-cpp's prebuilt CUDA 12 binaries need the CUDA runtime
# and cuBLAS, which nvidia/cuda's *runtime* image provides (the driver comes from the host through
# the NVIDIA Container Toolkit). Node is copied from the official node image of the same version.
FROM node:${NODE_VERSION}-bookworm-slim AS node-binary
FROM nvidia/cuda:12.6.3-runtime-ubuntu24.04 AS cuda
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=node-binary /usr/local/bin/node /usr/local/bin/node
ARG UID=1000
ARG GID=1000
RUN userdel -r ubuntu 2>/dev/null || true \
 && groupadd --gid "${GID}" appuser \
 && useradd --uid "${UID}" --gid "${GID}" --create-home --shell /usr/sbin/nologin appuser \
 && mkdir -p /home/appuser/.cache/huggingface \
 && chown -R appuser:appuser /home/appuser \
 && mkdir -p /var/lib/gemma-3-api/jobs \
 && chown -R appuser:appuser /var/lib/gemma-3-api
WORKDIR /app
COPY --from=build --chown=appuser:appuser /app/package.json ./
COPY --from=build --chown=appuser:appuser /app/node_modules ./node_modules
COPY --from=build --chown=appuser:appuser /app/dist ./dist
COPY --from=build --chown=appuser:appuser /app/frontend/dist ./frontend/dist
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=6666 \
    BROWSER_PORT=6680 \
    HF_HOME=/home/appuser/.cache/huggingface \
    PLAYGROUND_DIR=/app/frontend/dist \
    JOB_STORAGE_DIR=/var/lib/gemma-3-api/jobs \
    LLM_DEVICE=cuda \
    LLM_GPU_LAYERS=max \
    STT_DEVICE=cuda
USER appuser
# 6666 for API clients; 6680 for browsers (they refuse 6666): the playground and /docs
EXPOSE 6666 6680
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||6666)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "dist/main.js"]

# the default target
FROM runtime
