"""Hydra entry points: robotrl-train, robotrl-eval, robotrl-collect."""
import logging
from pathlib import Path

# PyOpenGL announces a missing optional accelerator at INFO through Hydra's root logger: keep it quiet.
logging.getLogger("OpenGL").setLevel(logging.WARNING)

#: the repository's conf/ folder (robotrl is installed editable: `pip install -e .`)
CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")
