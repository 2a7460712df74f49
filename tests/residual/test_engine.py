"""``train_residual`` end to end on ArmLift (tiny budget) and its bad-input errors."""
from __future__ import annotations

import json

import pytest

from helpers import weak_base
from robotrl.residual import ActionSpaceMismatchError

ENV = {"name": "armlift", "id": "robotrl/ArmLift-v0", "reward_type": "sparse"}


def _cfg(tmp_path, base_dir, steps=120):
    return {"base_policy": str(base_dir), "env": dict(ENV), "seed": 0, "progress": False,
            "dataset": {"path": str(tmp_path / "demos.hdf5"), "collect": {"n_episodes": 2}},
            "run_dir": str(tmp_path / "run"),
            "algo": {"name": "residual", "policy": {"hidden_dims": [32, 32]}, "td3": {"critic_hidden_dims": [32, 32]},
                     "train": {"total_env_steps": steps, "warmup_env_steps": 40, "warmup_updates": 5, "utd": 1,
                               "batch_size": 16, "eval_every": 0}},
            "eval": {"n_episodes": 2, "seed": 100000}, "train": {"tensorboard": False}}


def test_base_checkpoint_for_another_action_space_is_refused(tmp_path):
    from robotrl.engine.residual_trainer import train_residual

    _, base = weak_base(n_demos=3)  # 1-D point task: action [1], state [2]
    base.save_pretrained(tmp_path / "point_bc")
    with pytest.raises(ActionSpaceMismatchError, match=r"point_bc.*action shape is \[1\].*ArmLift.*\[4\]"):
        train_residual(_cfg(tmp_path, tmp_path / "point_bc"))
    with pytest.raises(ValueError, match="base_policy"):
        train_residual({**_cfg(tmp_path, tmp_path / "point_bc"), "base_policy": None})


def test_train_residual_end_to_end_writes_one_loadable_policy(tmp_path):
    import numpy as np
    import torch

    from robotrl.cli.eval import run_eval
    from robotrl.data import SequenceSampler, load_dataset
    from robotrl.engine.collect import collect_demos
    from robotrl.engine.residual_trainer import train_residual
    from robotrl.policies import load_policy, make_policy
    from robotrl.policies.base import shape_meta_from_store

    collect_demos({k: v for k, v in ENV.items() if k != "name"}, 2, tmp_path / "demos.hdf5", progress=False)
    store = load_dataset(tmp_path / "demos.hdf5")
    torch.manual_seed(0)
    bc = make_policy({"type": "bc", "n_obs_steps": 2, "horizon": 8, "n_action_steps": 4, "hidden_dims": [32, 32]},
                     shape_meta_from_store(store, ("state",)))
    bc.fit_normalizer(store)
    sampler = SequenceSampler(store, sequence_length=8, pad_before=1, pad_after=3, keys=["obs/state", "action"], obs_steps=2)
    opt = torch.optim.Adam(bc.parameters(), 1e-3)
    for _ in range(20):
        loss, _ = bc.loss(sampler.sample(32, np.random.default_rng(0)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    bc.save_pretrained(tmp_path / "bc")
    out = train_residual(_cfg(tmp_path, tmp_path / "bc"))
    assert out["env_steps"] == 120 and out["updates"] > 0
    pol = load_policy(out["checkpoint"])
    assert pol.name == "residual" and pol.base.name == "bc"
    assert json.loads((tmp_path / "run" / "eval" / "metrics.json").read_text())["n_episodes"] == 2
    ev = run_eval({"checkpoint": str(tmp_path / "run"), "n_episodes": 2, "num_envs": 2, "seed": 100000,
                   "video": False, "progress": False})
    assert 0.0 <= ev["success_rate"] <= 1.0
