"""A killed residual run continues from its last checkpoint and ends exactly where an uninterrupted run ends."""
from __future__ import annotations

import pytest
import torch
from helpers import weak_base
from point_env import PointReach

from robotrl.residual import ResidualPolicy, ResidualTD3Config, ResidualTrainConfig, run_residual


class Killed(Exception):
    pass


def _run(run_dir, store, base, kill_at=None, **over):
    st = store["obs/state"]
    torch.manual_seed(0)  # the same initial actor in every run
    rp = ResidualPolicy.from_base(base, state_mean=st.mean(0), state_std=st.std(0), hidden_dims=(32, 32))
    kw = dict(total_env_steps=600, warmup_env_steps=100, warmup_updates=20, utd=1, batch_size=32, eval_every=0,
              log_every=50, ckpt_every=200, seed=0, progress=False)
    kw.update(over)
    cfg = ResidualTrainConfig(**kw)

    def log(step, m):
        if kill_at is not None and step >= kill_at:
            raise Killed(step)

    out = run_residual(rp, PointReach, store, cfg, ResidualTD3Config(critic_hidden_dims=(32, 32), num_critics=4),
                       run_dir=run_dir, log=log)
    return rp, out


def test_killed_run_resumes_to_the_same_result(tmp_path):
    store, base = weak_base()
    ref, ref_out = _run(tmp_path / "ref", store, base)
    with pytest.raises(Killed):
        _run(tmp_path / "killed", store, base, kill_at=450)
    state = tmp_path / "killed" / "checkpoints" / "residual_state"
    blob = torch.load(state / "state.pt", weights_only=False)
    assert 200 <= blob["counters"]["steps"] < 450  # a checkpoint from before the kill exists
    resumed, out = _run(tmp_path / "killed", store, base)
    assert out["env_steps"] == ref_out["env_steps"] == 600
    assert out["updates"] == ref_out["updates"]
    assert out["episodes"] == ref_out["episodes"]
    for (k, a), (_, b) in zip(ref.actor.state_dict().items(), resumed.actor.state_dict().items()):
        assert torch.equal(a, b), k


def test_resume_with_another_configuration_is_refused(tmp_path):
    store, base = weak_base()
    with pytest.raises(Killed):
        _run(tmp_path / "run", store, base, kill_at=450)
    with pytest.raises(ValueError, match="another configuration"):
        _run(tmp_path / "run", store, base, batch_size=64)
