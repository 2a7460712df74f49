#!/usr/bin/env bash
# Install ROS 1 from Debian (ros_comm 1.15-era roscore + rospy + the messages robotrl.hw uses).
# Called by scripts/install.sh. Idempotent: returns at once when everything is installed.
# Skip with ROBOTRL_SKIP_ROS=1 (robotrl.hw's ROS tests then skip with a clear reason).
set -euo pipefail

PKGS=(ros-core python3-rospy python3-rosmsg python3-std-msgs python3-sensor-msgs python3-trajectory-msgs)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ] && command -v roscore >/dev/null 2>&1; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "[install_ros] warning: no apt-get; ROS 1 not installed (robotrl.hw ROS tests will skip)" >&2
  exit 0
fi
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
echo "[install_ros] apt: ${missing[*]}"
# Refresh the package lists when they are missing or do not know ros-core yet.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
quiet() { "$@" >"$log" 2>&1 || { cat "$log" >&2; return 1; }; }
if ! apt-cache show ros-core >/dev/null 2>&1; then
  quiet $SUDO apt-get update -qq
fi
if ! quiet $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
  echo "[install_ros] retrying after apt-get update" >&2  # stale lists (a package moved)
  quiet $SUDO apt-get update -qq
  quiet $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
command -v roscore >/dev/null 2>&1 || { echo "[install_ros] error: roscore missing after install" >&2; exit 1; }
echo "[install_ros] ok: $(command -v roscore)"
