"""Training options: device selection, the wall-clock bound, ending evaluation episodes at success."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from robotrl.cli import CONF_DIR
from robotrl.engine.evaluation import evaluate
from robotrl.engine.policy_trainer import resolve_device, train_policy
from robotrl.policies import load_policy


def _cfg(tmp: Path, extra: list[str], policy: list[str] = ("policy.hidden_dims=[32,32]",)):
    overrides = [
        "env=twopaths", f"run_dir={tmp / 'run'}", f"dataset.path={tmp / 'demos.hdf5'}", "dataset.collect.n_episodes=4",
        "train.batch_size=16", "train.warmup_steps=5", "train.log_every=10",
        "train.ckpt_every=1000", "train.eval_every=0", "eval.n_episodes=2", "eval.num_envs=2", "eval.video=false",
        "num_threads=1", "progress=false", "train.tensorboard=false", *policy, *extra,
    ]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def test_resolve_device():
    assert resolve_device(None).type == "cpu"
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            resolve_device("cuda")


def test_time_limit_stops_training_checkpoints_and_evaluates(tmp_path):
    out = train_policy(_cfg(tmp_path, ["train.steps=100000", "train.time_limit_s=0"]))
    # a zero limit stops after the first step, still saves last.pt and the policy, and evaluates
    assert out["stopped_by_time_limit"] is True
    assert out["steps"] == 1
    blob = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    assert blob["state"]["global_step"] == 1
    metrics = json.loads((tmp_path / "run" / "eval" / "metrics.json").read_text())
    assert metrics["n_episodes"] == 2 and len(metrics["successes"]) == 2
    # running again resumes from that step instead of starting over
    out2 = train_policy(_cfg(tmp_path, ["train.steps=100000", "train.time_limit_s=0"]))
    assert out2["steps"] == 2
    blob2 = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    assert blob2["state"]["train_seconds"] >= blob["state"]["train_seconds"] > 0  # wall-clock adds up over resumes


def test_stop_on_success_keeps_success_and_shortens_episodes():
    from robotrl.envs.experts import make_expert
    from robotrl.envs.vector import evaluate_policy

    expert = make_expert("robotrl/TwoPaths-v0", seed=0)

    def act(obs):
        return expert.act({k: v[0, -1] for k, v in obs.items()})[None]

    env_cfg = {"id": "robotrl/TwoPaths-v0", "kwargs": {"terminate_on_success": False}}
    kw = dict(n_episodes=2, num_envs=1, seed=0, max_episode_steps=150, progress=False,
              reset_fn=lambda rows: expert.reset(seed=0))
    full = evaluate_policy(act, env_cfg, **kw)
    short = evaluate_policy(act, env_cfg, stop_on_success=True, **kw)
    assert full["successes"] == short["successes"] == [True, True]
    assert full["lengths"] == [150, 150]
    assert all(s < 150 for s in short["lengths"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_train_and_evaluate_on_cuda(tmp_path):
    out = train_policy(_cfg(tmp_path, ["train.steps=20", "device=cuda"],
                            policy=["policy=diffusion_unet", "policy.down_dims=[16,32]", "policy.num_inference_steps=2"]))
    assert out["device"].startswith("cuda") and out["steps"] == 20
    # the saved policy is device-independent: it loads and acts on the CPU
    policy = load_policy(tmp_path / "run" / "checkpoints" / "policy")
    assert policy.device.type == "cpu"
    m = evaluate(policy, {"id": "robotrl/TwoPaths-v0"}, n_episodes=1, num_envs=1, progress=False)
    assert len(m["successes"]) == 1
