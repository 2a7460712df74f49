#!/usr/bin/env bash
# Install robotrl into ./.venv on a fresh Debian machine: system packages, then pinned Python packages.
# Idempotent: a second run with an unchanged pyproject.toml returns in a second.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
EXTRAS=${ROBOTRL_EXTRAS:-robotics,ros,dev}

# System packages: EGL/GL for headless MuJoCo rendering (present on this image; installed if not).
if ! ldconfig -p 2>/dev/null | grep -q 'libEGL.so.1'; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "[install] apt: libegl1 libgl1 libglib2.0-0"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends libegl1 libgl1 libglib2.0-0 >/dev/null
  else
    echo "[install] warning: libEGL not found and no apt-get; offscreen rendering may fail" >&2
  fi
fi

# ROS 1 (Debian's ros-core + rospy) for robotrl.hw and its tests.
if [ -f scripts/install_ros.sh ] && [ "${ROBOTRL_SKIP_ROS:-0}" != 1 ]; then
  bash scripts/install_ros.sh
fi

if [ ! -x .venv/bin/python ]; then
  echo "[install] creating .venv with $($PY --version)"
  $PY -m venv .venv
fi
stamp=".venv/.robotrl-install-$(cat pyproject.toml | sha1sum | cut -c1-12)-${EXTRAS//,/_}"
if [ ! -f "$stamp" ]; then
  echo "[install] pip install -e .[$EXTRAS] (torch pinned to its CPU build 2.13.0)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q 'torch==2.13.0'
  .venv/bin/python -m pip install -q -e ".[$EXTRAS]"
  rm -f .venv/.robotrl-install-*
  touch "$stamp"
fi
.venv/bin/python -c "import torch, mujoco, robotrl; print(f'[install] ok: torch {torch.__version__}, mujoco {mujoco.__version__}')"
