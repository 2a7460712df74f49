"""The residual training log carries the actor's metrics, whatever the UTD and actor-update period."""
from __future__ import annotations

import torch
from helpers import weak_base
from point_env import PointReach

from robotrl.residual import ResidualPolicy, ResidualTD3Config, ResidualTrainConfig, run_residual


def test_actor_metrics_are_logged_with_utd_2(tmp_path):
    # UTD 2 with an actor step every 4th update: the last update of an env step is never an actor
    # step, so logging only the last update's metrics lost actor_loss / residual_abs entirely.
    store, base = weak_base()
    st = store["obs/state"]
    torch.manual_seed(0)
    rp = ResidualPolicy.from_base(base, state_mean=st.mean(0), state_std=st.std(0), hidden_dims=(32, 32))
    cfg = ResidualTrainConfig(total_env_steps=300, warmup_env_steps=100, warmup_updates=20, utd=2, batch_size=32,
                              eval_every=0, log_every=25, seed=0, progress=False)
    logged: list[dict] = []
    run_residual(rp, PointReach, store, cfg, ResidualTD3Config(critic_hidden_dims=(32, 32), num_critics=4,
                                                               actor_update_every=4),
                 run_dir=tmp_path / "run", log=lambda step, m: logged.append(dict(m, step=step)))
    train = [m for m in logged if "train/critic_loss" in m and m["step"] > 100]
    assert train, logged
    for m in train:
        assert "train/actor_loss" in m and "train/residual_abs" in m, sorted(m)
        assert 0.0 <= m["train/residual_abs"] <= rp.config.action_scale
