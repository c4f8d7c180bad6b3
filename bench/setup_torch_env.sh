#!/usr/bin/env bash
# The benchmarks' own torch environment (bench/.venv-torch): CPU torch 2.13.0 (a wheel on this machine's
# disk), torchcodec 0.13.0 (the newest CPU build on PyPI; 0.14+ Linux wheels are CUDA-13 builds) and avsets
# itself, editable.  avsets never requires torch: only bench_training and bench_torchcodec run in here.
# torchcodec links the system FFmpeg (not PyAV's bundled copy): install it first when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=bench/.venv-torch
if ! command -v ffmpeg >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg
fi
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "torch==2.13.0" "torchcodec==0.13.0"
"$VENV/bin/python" -m pip install -q -e .
"$VENV/bin/python" -c "import torch, torchcodec.decoders, avsets; print('torch', torch.__version__, 'torchcodec', torchcodec.__version__)"
