#!/usr/bin/env bash
# GPU smoke test: one PASS/FAIL/SKIP line per check (bench/gpu_smoke.py lists them), under 5 minutes
# on one or two NVIDIA GPUs. Run from a checkout:
#
#   bash bench/gpu_smoke.sh                 # the GPU; installs gpttui into a venv that sees the machine's torch
#   bash bench/gpu_smoke.sh --wheels DIR    # the same with no package index: textual, plotext, tomli-w, their
#                                           # dependencies and the build backend from DIR, made beforehand with
#   pip download -d DIR --python-version 3.12 --only-binary=:all: textual plotext tomli-w "setuptools>=68" wheel
#   bash bench/gpu_smoke.sh --cpu           # dry run on the CPU in the current environment (CI runs this)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
wheels="" cpu=""
while [ $# -gt 0 ]; do
  case "$1" in
    --wheels) wheels="$(cd "$2" && pwd)"; shift 2 ;;
    --cpu) cpu="--cpu"; shift ;;
    *) echo "usage: bash bench/gpu_smoke.sh [--wheels DIR] [--cpu]" >&2; exit 2 ;;
  esac
done
if [ -z "$cpu" ]; then
  venv="${TMPDIR:-/tmp}/gpttui-smoke-venv"
  if [ ! -x "$venv/bin/gpttui" ]; then
    python3 -m venv --system-site-packages "$venv"   # the machine's CUDA build of torch stays in use
    if [ -n "$wheels" ]; then
      "$venv/bin/pip" install -q --no-index --find-links "$wheels" -e "$repo"
    else
      "$venv/bin/pip" install -q -e "$repo"
    fi
  fi
  python="$venv/bin/python"
  "$python" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.device_count(), 'GPU(s)')"
else
  python="$(command -v python3 || command -v python)"
  "$python" -c "import gpttui, torch" || { echo "FAIL setup: gpttui is not installed here (pip install -e .)"; exit 1; }
fi
exec "$python" "$repo/bench/gpu_smoke.py" $cpu
