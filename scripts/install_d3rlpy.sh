#!/usr/bin/env bash
# Install the d3rlpy benchmark peer into its own virtual environment (default ./.venv-d3rlpy, git-ignored).
# d3rlpy 2.8 pins gymnasium==1.0.0 while robotrl uses 1.4, so it cannot share robotrl's .venv.
# Only bench/d3rlpy_runner.py runs in it (it reads our D4RL HDF5 files with h5py; no robotrl import).
#
#   bash scripts/install_d3rlpy.sh            # -> .venv-d3rlpy/bin/python
#   D3RLPY_VENV=/opt/d3 bash scripts/install_d3rlpy.sh
#
# Idempotent: a second run returns in about a second. torch is installed FIRST and pinned to the
# CPU build 2.13.0 that lies on this machine; any other torch pulls several GB of CUDA packages.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${D3RLPY_VENV:-.venv-d3rlpy}
D3RLPY_VERSION=${D3RLPY_VERSION:-2.8.1}
# numpy <2.5 and mujoco 3.3.0 as in robotrl's venv (same simulator build for the evaluation).
PINS=("torch==2.13.0" "d3rlpy==${D3RLPY_VERSION}" "gymnasium[mujoco]==1.0.0" "mujoco==3.3.0" "numpy>=2.0,<2.5" "h5py")

if [ ! -x "$VENV/bin/python" ]; then
  echo "[install_d3rlpy] creating $VENV with $($PY --version)"
  $PY -m venv "$VENV"
fi
stamp="$VENV/.d3rlpy-install-$(printf '%s\n' "${PINS[@]}" | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  echo "[install_d3rlpy] pip install ${PINS[*]} (torch first)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q "torch==2.13.0"
  "$VENV/bin/python" -m pip install -q "${PINS[@]}"
  rm -f "$VENV"/.d3rlpy-install-*
  touch "$stamp"
fi
"$VENV/bin/python" - <<'EOF'
import d3rlpy, gymnasium, torch
gymnasium.make("Hopper-v5").close()
print(f"[install_d3rlpy] ok: d3rlpy {d3rlpy.__version__}, gymnasium {gymnasium.__version__}, torch {torch.__version__}")
EOF
