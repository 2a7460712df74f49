"""A short residual-RL run beats its weak BC base on seeded episodes (tiny sparse-reward task)."""
from __future__ import annotations

from helpers import weak_base
from point_env import PointReach
from robotrl.policies import load_policy
from robotrl.residual import ResidualPolicy, ResidualTD3Config, ResidualTrainConfig, run_residual
from robotrl.residual.trainer import evaluate_policy_seeded


def test_short_residual_run_improves_success_over_base(tmp_path):
    store, base = weak_base()
    base_m = evaluate_policy_seeded(base, PointReach, 50, seed=1000)
    assert 0.3 <= base_m["success_rate"] <= 0.8  # a weak base, as intended
    st = store["obs/state"]
    rp = ResidualPolicy.from_base(base, state_mean=st.mean(0), state_std=st.std(0), hidden_dims=(64, 64),
                                  action_scale=0.3)
    cfg = ResidualTrainConfig(total_env_steps=1000, warmup_env_steps=300, warmup_updates=200, utd=1, batch_size=128,
                              eval_every=0, seed=0, progress=False)
    out = run_residual(rp, PointReach, store, cfg, ResidualTD3Config(critic_hidden_dims=(64, 64), actor_update_every=2,
                                                                     actor_lr=3e-4, tau=0.01), run_dir=tmp_path)
    tuned = load_policy(out["checkpoint"])  # the saved single checkpoint, as robotrl-eval loads it
    m = evaluate_policy_seeded(tuned, PointReach, 50, seed=1000)
    assert m["success_rate"] >= base_m["success_rate"] + 0.2, (base_m["success_rate"], m["success_rate"])
