"""Hydra entry points: robotrl-train, robotrl-eval, robotrl-collect."""
from pathlib import Path

#: the repository's conf/ folder (robotrl is installed editable: `pip install -e .`)
CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")
