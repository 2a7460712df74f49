"""ResidualPolicy: exact base reproduction at init, action maths, save/load, bad base checkpoints."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import weak_base
from point_env import PointReach
from robotrl.policies import load_policy
from robotrl.residual import ActionSpaceMismatchError, ResidualPolicy, check_base_matches_env
from robotrl.residual.trainer import evaluate_policy_seeded


@pytest.fixture(scope="module")
def base2():
    """A weak BC base with n_obs_steps=2, chunk 4 / execute 2 (history + open-loop chunks)."""
    return weak_base(n_obs_steps=2)


def _rollout_actions(policy, seed, steps=12):
    from robotrl.envs.wrappers import ObservationHistory

    env = ObservationHistory(PointReach(), policy.config.n_obs_steps)
    obs, _ = env.reset(seed=seed)
    policy.reset()
    out = []
    for _ in range(steps):
        a = policy.act({k: v[None] for k, v in obs.items()})[0]
        out.append(a.clone())
        obs, _, term, trunc, _ = env.step(a.numpy())
        if term or trunc:
            break
    return torch.stack(out)


def test_zero_init_residual_reproduces_base_exactly(base2):
    store, base = base2
    rp = ResidualPolicy.from_base(base, hidden_dims=(32, 32))
    assert torch.all(rp.actor.net[-1].weight == 0) and torch.all(rp.actor.net[-1].bias == 0)
    for seed in range(3):
        a_base = _rollout_actions(base, seed)
        a_res = _rollout_actions(rp, seed)
        assert a_base.shape == a_res.shape
        assert torch.equal(a_base, a_res)  # bit for bit, including the open-loop chunk phase
    # the same holds for whole seeded evaluations
    mb = evaluate_policy_seeded(base, PointReach, 10, seed=500)
    mr = evaluate_policy_seeded(rp, PointReach, 10, seed=500)
    assert mb["lengths"] == mr["lengths"] and mb["successes"] == mr["successes"]


def test_batched_rows_keep_their_own_chunk_phase(base2):
    _, base = base2
    rp = ResidualPolicy.from_base(base, hidden_dims=(32, 32))
    obs = np.random.default_rng(0).uniform(-0.5, 0.5, (3, 2, 2)).astype(np.float32)
    rp.reset()
    rp.base_step(obs_dict := {"state": obs})
    rp.reset_envs([1])  # row 1 starts a new episode: only it gets a fresh chunk
    phase_before = rp._phase.clone()
    rp.base_step(obs_dict)
    assert rp._phase.tolist() == [phase_before[0] + 1, 1, phase_before[2] + 1]
    # fallback: a history of identical frames (fresh ObservationHistory) starts a new chunk
    obs2 = obs.copy()
    obs2[2, 0] = obs2[2, 1]
    rp.base_step({"state": obs2})
    assert int(rp._phase[2]) == 1


def test_clamp_and_normalisation_round_trip(base2):
    _, base = base2
    rp = ResidualPolicy.from_base(base, hidden_dims=(32, 32), action_scale=0.5)
    a_env = torch.tensor([[-1.0], [-0.3], [0.0], [0.7], [1.0]])
    lo, hi = base.normalizer.unnormalize("action", torch.tensor([[-1.0], [1.0]]))
    inside = a_env.clamp(float(lo), float(hi))
    torch.testing.assert_close(rp.unnormalize_action(rp.normalize_action(inside)), inside, atol=1e-6, rtol=0)
    b = torch.tensor([[0.9], [-0.95], [0.0]])
    r = torch.tensor([[0.5], [-0.5], [0.25]])
    assert torch.equal(rp.combine(b, r), torch.tensor([[1.0], [-1.0], [0.25]]))
    # executed actions never leave the normalised box, whatever the residual outputs
    with torch.no_grad():
        rp.actor.net[-1].bias.fill_(100.0)
    s = torch.zeros(3, rp.state_dim)
    res = rp.residual(s, b)
    assert torch.all(res.abs() <= 0.5 + 1e-6)
    out = rp.executed(b, rp.unnormalize_action(b), res)
    assert torch.all(out <= hi + 1e-6) and torch.all(out >= lo - 1e-6)


def test_save_load_as_one_policy_checkpoint(tmp_path, base2):
    _, base = base2
    rp = ResidualPolicy.from_base(base, hidden_dims=(32, 32))
    with torch.no_grad():
        rp.actor.net[-1].bias.fill_(0.3)
    rp.save_pretrained(tmp_path / "res")
    loaded = load_policy(tmp_path / "res")
    assert type(loaded) is ResidualPolicy and loaded.base.name == "bc"
    assert torch.equal(_rollout_actions(rp, 3), _rollout_actions(loaded, 3))
    assert not torch.equal(_rollout_actions(loaded, 3), _rollout_actions(base, 3))


def test_base_with_wrong_action_space_is_a_clear_error(base2):
    _, base = base2
    env = PointReach(dim=2)  # 2-D actions and 4-D state; the base was trained on 1-D
    with pytest.raises(ActionSpaceMismatchError, match=r"action shape is \[1\].*action space shape \[2\]"):
        check_base_matches_env(base, env)


def test_run_residual_refuses_mismatched_env(base2):
    from robotrl.residual import ResidualTrainConfig, run_residual

    store, base = base2
    rp = ResidualPolicy.from_base(base, hidden_dims=(32, 32))
    with pytest.raises(ActionSpaceMismatchError):
        run_residual(rp, lambda: PointReach(dim=2), store, ResidualTrainConfig(total_env_steps=10, progress=False))


def test_state_normaliser_floors_std_and_clips(base2, tmp_path):
    """Dimensions the demos hardly vary must not blow up online (a tipped cube's quaternion)."""
    _, base = base2
    mean, std = np.array([0.0, 1.0]), np.array([1e-5, 0.5])
    rp = ResidualPolicy.from_base(base, hidden_dims=(32, 32), state_mean=mean, state_std=std,
                                  state_std_min=0.01, state_clip=10.0)
    z = rp.normalize_state(torch.tensor([[0.05, 2.0], [-1.0, 1.0], [0.0, 50.0]]))
    # dim 0: std floored to 0.01 -> 0.05 / 0.01 = 5; -1.0 / 0.01 = -100 -> clipped to -10
    torch.testing.assert_close(z, torch.tensor([[5.0, 2.0], [-10.0, 0.0], [0.0, 10.0]]))
    rp.save_pretrained(tmp_path / "rp")
    again = load_policy(tmp_path / "rp")
    assert again.config.state_clip == 10.0
    torch.testing.assert_close(again.normalize_state(torch.tensor([[-1.0, 50.0]])), torch.tensor([[-10.0, 10.0]]))
    off = ResidualPolicy.from_base(base, hidden_dims=(32, 32), state_mean=mean, state_std=std, state_clip=0.0)
    assert off.normalize_state(torch.tensor([[-1.0, 1.0]]))[0, 0].item() == pytest.approx(-100.0)


def test_residual_dims_leave_other_action_dims_to_the_base(tmp_path):
    from helpers import train_weak_bc
    from point_env import collect

    base = train_weak_bc(collect(4, dim=2, seed=0), steps=5)  # a 2-D action
    rp = ResidualPolicy.from_base(base, hidden_dims=(32, 32), residual_dims=(1,))
    torch.nn.init.normal_(rp.actor.net[-1].weight)  # a trained-looking, non-zero residual
    s, b = torch.randn(5, rp.feature_dim), torch.zeros(5, rp.action_dim)
    res = rp.actor(s, b)
    assert torch.all(res[:, 0] == 0) and torch.any(res[:, 1] != 0)
    # exploration / target noise added outside the actor is masked too
    noisy = rp.combine(b, res + 0.3)
    assert torch.all(noisy[:, 0] == 0)
    torch.testing.assert_close(noisy[:, 1], (res[:, 1] + 0.3).clamp(-1, 1))
    rp.save_pretrained(tmp_path / "rp")
    again = load_policy(tmp_path / "rp")
    assert again.config.residual_dims == (1,)
    torch.testing.assert_close(again.actor.mask, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"residual_dims \[5\] out of range for a 2-D action"):
        ResidualPolicy.from_base(base, hidden_dims=(32, 32), residual_dims=(5,))
