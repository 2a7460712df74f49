"""End to end through the real console scripts: collect -> train -> kill -> resume -> eval."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

BIN = Path(sys.executable).parent
ENV = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"), "OMP_NUM_THREADS": "1"}


def _train_cmd(tmp: Path, steps: int, extra: list[str] = ()) -> list[str]:
    return [
        str(BIN / "robotrl-train"),
        "env=twopaths",
        f"run_dir={tmp / 'run'}",
        f"dataset.path={tmp / 'demos.hdf5'}",
        "dataset.collect.n_episodes=4",
        "policy.hidden_dims=[32,32]",
        f"train.steps={steps}",
        "train.batch_size=16",
        "train.warmup_steps=10",
        "train.log_every=10",
        "train.ckpt_every=25",
        "train.eval_every=0",
        "eval.n_episodes=2",
        "eval.num_envs=2",
        "num_threads=1",
        "progress=false",
        *extra,
    ]


def _step(ckpt: Path) -> int:
    return int(torch.load(ckpt, map_location="cpu", weights_only=False)["state"]["global_step"])


def test_train_kill_resume_eval(tmp_path):
    steps = 4000
    ckpt = tmp_path / "run" / "checkpoints" / "last.pt"
    proc = subprocess.Popen(_train_cmd(tmp_path, steps), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 240
        killed_at = None
        while time.time() < deadline and proc.poll() is None:
            if ckpt.exists():
                try:
                    s = _step(ckpt)
                except Exception:  # being replaced right now; atomic rename means the next read works
                    s = 0
                if s >= 50:
                    proc.send_signal(signal.SIGKILL)
                    killed_at = s
                    break
            time.sleep(0.05)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = proc.stdout.read().decode()
    assert killed_at is not None, f"no checkpoint before the deadline / run ended early:\n{out[-3000:]}"
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "run" / "checkpoints" / "policy").exists()  # the run never finished
    assert _step(ckpt) >= killed_at  # the checkpoint on disk is complete and readable
    assert (tmp_path / "demos.hdf5").exists()  # demos were collected by the first run

    res = subprocess.run(_train_cmd(tmp_path, steps), env=ENV, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "resuming" in res.stdout and "from step" in res.stdout
    resumed_from = int(res.stdout.split("from step")[1].split()[0])
    assert resumed_from >= killed_at and resumed_from > 0
    assert "collecting" not in res.stdout  # the dataset was reused, not re-collected
    assert _step(ckpt) == steps
    run = tmp_path / "run"
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert 0.0 <= metrics["success_rate"] <= 1.0 and metrics["steps"] == steps
    assert (run / "eval" / "video.mp4").stat().st_size > 1000
    assert (run / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any(p.name.startswith("events.out.tfevents") for p in (run / "tb").iterdir())
    assert (run / "checkpoints" / "policy" / "model.safetensors").exists()

    ev = subprocess.run(
        [str(BIN / "robotrl-eval"), f"checkpoint={run}", "n_episodes=2", "num_envs=2", "video=false",
         f"out_dir={tmp_path / 'ev'}", "progress=false"],
        env=ENV, capture_output=True, text=True, timeout=300,
    )
    assert ev.returncode == 0, ev.stdout[-2000:] + ev.stderr[-2000:]
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert m["policy"] == "bc" and len(m["successes"]) == 2


def test_unknown_config_key_fails_at_start(tmp_path):
    res = subprocess.run([str(BIN / "robotrl-train"), "trian.steps=3", f"run_dir={tmp_path}"], env=ENV,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode != 0
    assert "trian.steps" in res.stderr + res.stdout
    res = subprocess.run([str(BIN / "robotrl-train"), "policy.hiden_dims=[3]", f"run_dir={tmp_path}"], env=ENV,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "hiden_dims" in res.stderr + res.stdout


def test_missing_dataset_without_collection_is_a_clear_error(tmp_path):
    res = subprocess.run(
        _train_cmd(tmp_path, 10, ["dataset.collect.enabled=false"]), env=ENV, capture_output=True, text=True, timeout=120
    )
    assert res.returncode != 0
    assert "demos.hdf5 does not exist" in res.stderr + res.stdout


def test_eval_of_missing_checkpoint_is_a_clear_error(tmp_path):
    res = subprocess.run([str(BIN / "robotrl-eval"), f"checkpoint={tmp_path / 'nope'}"], env=ENV,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "no policy checkpoint" in res.stderr + res.stdout


@pytest.mark.parametrize("env,n", [("twopaths", 3), ("metaworld", 2)])
def test_collect_cli_writes_robomimic_demos(tmp_path, env, n):
    from robotrl.data import load_dataset

    out = tmp_path / "demos.hdf5"
    res = subprocess.run([str(BIN / "robotrl-collect"), f"env={env}", f"n_episodes={n}", f"output={out}", "progress=false"],
                         env=ENV, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    summary = json.loads(res.stdout[res.stdout.index("{"):])
    assert summary["episodes"] == n and summary["expert_success_rate"] > 0
    store = load_dataset(out)
    assert store.num_episodes == n and store.num_steps == summary["steps"]
    assert store["obs/state"].shape[0] == store["action"].shape[0] == store["next_obs/state"].shape[0]
    assert store.attrs["env_args"]["env_name"] == summary["env"]
    assert store.attrs["expert"]["noise"] == 0.0
