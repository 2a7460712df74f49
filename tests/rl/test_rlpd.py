"""The RLPD baseline (robotrl.rl.rlpd) through ``robotrl-train algo=rlpd``: demonstrations in every batch,
checkpoints with the replay buffer, and a second call that resumes instead of starting over."""
from __future__ import annotations

import json

import torch


def _cfg(tmp_path, demos, total):
    return {
        "seed": 0, "progress": False, "num_threads": 1, "run_dir": str(tmp_path / "rlpd"),
        "env": {"name": "twopaths", "id": "robotrl/TwoPaths-v0", "image": False, "kwargs": {}},
        "dataset": {"path": str(demos), "collect": {"enabled": True, "n_episodes": 3, "keep": "success"}},
        "algo": {"name": "rlpd",
                 "rlpd": {"hidden_dims": [32, 32], "num_critics": 4, "utd": 1, "batch_size": 32, "start_steps": 50},
                 "train": {"total_env_steps": total, "eval_every": 100, "eval_episodes": 2, "ckpt_every": 100}},
        "eval": {"seed": 1000},
    }


def test_rlpd_run_checkpoints_and_resumes(tmp_path, capsys):
    from robotrl.engine.residual_trainer import train_rlpd
    from robotrl.engine.checkpoint import load_checkpoint

    demos = tmp_path / "demos.hdf5"
    out = train_rlpd(_cfg(tmp_path, demos, 200))
    assert out["env_steps"] == 200 and out["updates"] == 150  # UTD 1 after 50 warm-up steps
    ckpt = tmp_path / "rlpd" / "checkpoints" / "online_last.pt"
    blob = load_checkpoint(ckpt)
    assert blob["state"]["env_steps"] == 200
    assert (tmp_path / "rlpd" / "checkpoints" / "online_buffer").exists()
    cfg = json.loads((tmp_path / "rlpd" / "online_config.json").read_text())
    assert cfg["offline_ratio"] == 0.5  # symmetric sampling: half of each batch from the demonstrations
    before = {k: v.clone() for k, v in blob["algo"]["model"].items()}
    # a second call with a larger budget continues from step 200 (100 more updates), not from zero
    capsys.readouterr()
    out2 = train_rlpd(_cfg(tmp_path, demos, 300))
    printed = capsys.readouterr().out
    assert "resuming online training" in printed and "at env step 200" in printed
    assert out2["env_steps"] == 300 and out2["updates"] == 250
    after_blob = load_checkpoint(ckpt)
    assert after_blob["state"]["env_steps"] == 300
    after = after_blob["algo"]["model"]
    assert any(not torch.equal(before[k], after[k]) for k in before if before[k].is_floating_point())
    # the evaluation curve spans both calls
    assert [p["env_steps"] for p in out2["curve"]] == [100, 200, 300]


def test_rlpd_entropy_target_is_half_the_action_dim_by_default():
    """RLPD's official code sets SAC's entropy target to -|A|/2 when none is given (SAC's own default
    here is -|A|); an explicit value wins."""
    from robotrl.rl.rlpd import RLPDConfig, make_rlpd
    from robotrl.rl.sac import SAC

    assert make_rlpd(5, 7, RLPDConfig(hidden_dims=(8,), num_critics=2)).target_entropy == -3.5
    assert make_rlpd(5, 7, RLPDConfig(hidden_dims=(8,), num_critics=2, target_entropy=-1.0)).target_entropy == -1.0
    assert SAC(5, 7).target_entropy == -7.0
