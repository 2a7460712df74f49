"""``robotrl-train verifier=...`` entry point: configs, outputs in robotrl-eval's layout, evaluation."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from robotrl.cli.train_verifier import run_train_verifier
from robotrl.data import EpisodeStore, save_dataset
from robotrl.policies import load_policy, make_policy
from robotrl.verifiers import CFNConfig, ValueConfig, VerifiedPolicy
from robotrl.utils.config import dataclass_from_dict as _from_dict
from robotrl.verifiers.train import CFNTrainConfig, ValueTrainConfig

CONF = Path(__file__).resolve().parents[2] / "conf" / "verifier"
ENV = {"name": "armlift", "id": "robotrl/ArmLift-v0", "image": False, "image_size": 84, "reward_type": "sparse",
       "max_episode_steps": None, "kwargs": {}}


def test_verifier_configs_match_the_dataclasses():
    taco = yaml.safe_load((CONF / "taco.yaml").read_text())
    value = yaml.safe_load((CONF / "value.yaml").read_text())
    CFNConfig.from_dict({**taco["model"], "feature_dim": 8})
    _from_dict(CFNTrainConfig, taco["train"])
    ValueConfig.from_dict({**value["model"], "obs_dims": [5], "action_dim": 2})
    _from_dict(ValueTrainConfig, value["train"])
    assert taco["type"] == "taco" and value["type"] == "value" and taco["num_samples"] == 32


@pytest.fixture(scope="module")
def policy_run(tmp_path_factory):
    """A tiny diffusion policy saved in robotrl-train's run layout, with its (random) ArmLift-shaped data."""
    root = tmp_path_factory.mktemp("run")
    rng = np.random.default_rng(0)
    eps = [{"obs/state": rng.normal(size=(12, 22)).astype(np.float32),
            "action": rng.uniform(-1, 1, (12, 4)).astype(np.float32),
            "reward": (np.arange(12) == 11).astype(np.float32) * (i % 2),
            "terminated": (np.arange(12) == 11) & bool(i % 2), "truncated": (np.arange(12) == 11) & (i % 2 == 0)}
           for i in range(4)]
    store = EpisodeStore.from_episodes(eps)
    save_dataset(store, root / "demos.hdf5", format="robomimic")
    torch.manual_seed(0)
    p = make_policy({"type": "diffusion", "down_dims": [16, 32], "diffusion_step_embed_dim": 16, "n_groups": 4,
                     "horizon": 8, "n_obs_steps": 2, "n_action_steps": 4, "num_inference_steps": 2},
                    {"obs": {"state": [22]}, "action": [4]})
    p.fit_normalizer(store)
    run = root / "armlift-diffusion-s0"
    p.save_pretrained(run / "checkpoints" / "policy")
    (run / "config.json").write_text(json.dumps({"env": ENV, "dataset": {"path": str(root / "demos.hdf5"), "format": None}}))
    return run


def _cfg(run, verifier):
    return {"policy_checkpoint": str(run), "seed": 0, "num_threads": 1, "progress": False, "env": None,
            "dataset": {"path": "unused.hdf5"}, "verifier": verifier,
            "eval": {"n_episodes": 2, "num_envs": 2, "seed": 100000, "video": False, "max_episode_steps": 8}}


def test_taco_cli_writes_an_evaluable_verified_policy(policy_run):
    v = {"type": "taco", "num_samples": 4, "evaluate": True, "model": {"hidden_dim": 32, "num_blocks": 1},
         "train": {"num_candidates": 3, "max_samples": 16, "epochs": 1}}
    out = run_train_verifier(_cfg(policy_run, v))
    run = Path(out["run_dir"])
    assert run == policy_run.parent / "armlift-diffusion-s0-taco"
    vp = load_policy(run / "checkpoints" / "policy")
    assert isinstance(vp, VerifiedPolicy) and vp.config.num_samples == 4
    assert (run / "checkpoints" / "verifier" / "verifier.json").is_file()
    assert out["feature_samples"] == 16 and out["n_episodes"] == 2 and 0.0 <= out["success_rate"] <= 1.0
    assert json.loads((run / "config.json").read_text())["env"]["id"] == "robotrl/ArmLift-v0"


def test_value_cli_and_bad_configs(policy_run, tmp_path):
    v = {"type": "value", "num_samples": 4, "evaluate": False, "run_dir": str(tmp_path / "val"),
         "model": {"hidden_dims": [16]}, "train": {"steps": 20, "batch_size": 8}}
    out = run_train_verifier(_cfg(policy_run, v))
    assert load_policy(tmp_path / "val" / "checkpoints" / "policy").verifier.name == "value"
    assert "success_rate" not in out
    with pytest.raises(ValueError, match="unknown key"):
        run_train_verifier(_cfg(policy_run, {**v, "num_sample": 3}))
    with pytest.raises(ValueError, match="unknown key"):
        run_train_verifier(_cfg(policy_run, {**v, "train": {"stepz": 3}}))
    with pytest.raises(ValueError, match="policy_checkpoint"):
        run_train_verifier({**_cfg(policy_run, v), "policy_checkpoint": None})
