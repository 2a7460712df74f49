"""V-GPS value verifier: chunk transitions, IQL chunk critic ranking, wrapping checks, save/load."""
import numpy as np
import pytest
import torch

from robotrl.data import EpisodeStore
from robotrl.policies import load_policy, make_policy
from robotrl.verifiers import ValueVerifier, VerifiedPolicy, VerifierMismatchError
from robotrl.verifiers.train import chunk_transitions, train_value_verifier

SHAPE = {"obs": {"state": [5]}, "action": [2]}
TINY = {"type": "diffusion", "denoiser": "unet", "down_dims": [16, 32], "diffusion_step_embed_dim": 16, "n_groups": 4,
        "horizon": 8, "n_obs_steps": 2, "n_action_steps": 4, "num_inference_steps": 3}


def _policy(**kw):
    torch.manual_seed(0)
    p = make_policy({**TINY, **kw}, SHAPE)
    rng = np.random.default_rng(0)
    p.normalizer.fit_key("action", rng.uniform(-1, 1, (200, 2)))
    p.normalizer.fit_key("obs/state", rng.normal(size=(200, 5)))
    return p.eval()


def _store(n_eps=40, length=10, seed=0):
    """Half the episodes push +1 and succeed (reward 1 at the end, terminated); half push -1 and time out."""
    rng = np.random.default_rng(seed)
    eps = []
    for i in range(n_eps):
        good = i % 2 == 0
        a = (1.0 if good else -1.0) + 0.1 * rng.normal(size=(length, 2))
        r = np.zeros(length, np.float32)
        term = np.zeros(length, bool)
        if good:
            r[-1], term[-1] = 1.0, True
        eps.append({"obs/state": rng.normal(size=(length, 5)).astype(np.float32), "action": a.clip(-1, 1).astype(np.float32),
                    "reward": r, "terminated": term, "truncated": ~term & (np.arange(length) == length - 1)})
    return EpisodeStore.from_episodes(eps)


def test_chunk_transitions_sum_discounted_rewards_and_stop_at_termination():
    ep = {"obs/state": np.arange(5, dtype=np.float32)[:, None].repeat(5, 1), "action": np.zeros((5, 2), np.float32),
          "reward": np.array([0, 0, 0, 1, 2], np.float32), "terminated": np.array([0, 0, 0, 0, 1], bool)}
    ep["action"][:, 0] = np.arange(5)
    d = chunk_transitions(EpisodeStore.from_episodes([ep]), ("state",), n_action_steps=3, gamma=0.5)
    assert d["obs"].shape == (5, 5) and d["chunk"].shape == (5, 6)
    np.testing.assert_allclose(d["reward"], [0, 0.25 * 1, 0.5 * 1 + 0.25 * 2, 1 + 0.5 * 2, 2])
    np.testing.assert_allclose(d["discount"], [0.125, 0.125, 0, 0, 0])      # terminated at step 4
    np.testing.assert_allclose(d["next_obs"][:, 0], [3, 4, 4, 4, 4])         # s_{t+Ta}, clamped at the end
    np.testing.assert_allclose(d["chunk"][3, 0::2], [3, 4, 4])                # last action repeats past the end


@pytest.fixture(scope="module")
def trained():
    p = _policy()
    v = train_value_verifier(_store(), p, {"hidden_dims": [64, 64]}, {"steps": 600, "batch_size": 128, "lr": 1e-3},
                             progress=False)
    return p, v


def test_value_prefers_the_chunk_that_leads_to_success(trained):
    p, v = trained
    obs = {"state": np.random.default_rng(1).normal(size=(4, 2, 5)).astype(np.float32)}
    cands = -torch.ones(4, 8, 8, 2)
    for b in range(4):
        cands[b, 2 * b] = 1.0                                         # one good chunk among 7 bad ones
    scores = v.score(obs, cands, None)
    assert scores.shape == (4, 8)
    assert scores.argmax(-1).tolist() == [0, 2, 4, 6]


def test_value_verified_policy_round_trip_and_refusal(trained, tmp_path):
    p, v = trained
    vp = VerifiedPolicy(p, v, num_samples=8).eval()
    vp.save_pretrained(tmp_path / "vp")
    loaded = load_policy(tmp_path / "vp").eval()
    assert isinstance(loaded.verifier, ValueVerifier)
    obs = {"state": np.random.default_rng(2).normal(size=(2, 2, 5)).astype(np.float32)}
    torch.manual_seed(0)
    a = vp.predict_chunk(obs)
    torch.manual_seed(0)
    assert torch.equal(a, loaded.predict_chunk(obs))
    with pytest.raises(VerifierMismatchError, match="n_action_steps"):
        VerifiedPolicy(_policy(n_action_steps=2), v)
    with pytest.raises(VerifierMismatchError, match="action size 2"):
        VerifiedPolicy(make_policy(TINY, {"obs": {"state": [5]}, "action": [3]}), v)


def test_value_verifier_input_errors(trained):
    _, v = trained
    with pytest.raises(KeyError, match="state"):
        v.score({"proprio": np.zeros((1, 2, 5))}, torch.zeros(1, 2, 8, 2), None)
    with pytest.raises(ValueError, match=r"\[B, To, 5\]"):
        v.score({"state": np.zeros((1, 2, 4))}, torch.zeros(1, 2, 8, 2), None)
