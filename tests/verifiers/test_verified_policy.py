"""VerifiedPolicy: one batched call (encoder runs once), best-of-N, save/load, refusing a foreign verifier."""
import numpy as np
import pytest
import torch

from robotrl.policies import load_policy, make_policy
from robotrl.verifiers import CFNVerifier, CFNConfig, VerifiedPolicy, VerifierMismatchError, load_verifier
from robotrl.verifiers.train import collect_policy_features, train_cfn

SHAPE = {"obs": {"state": [5]}, "action": [2]}
TINY = {
    "diffusion": {"type": "diffusion", "denoiser": "unet", "down_dims": [16, 32], "diffusion_step_embed_dim": 16,
                  "n_groups": 4, "horizon": 8, "n_obs_steps": 2, "n_action_steps": 4, "num_inference_steps": 3},
    "carp": {"type": "carp", "depth": 2, "width": 32, "num_heads": 4, "vocab_size": 32, "horizon": 8,
             "n_obs_steps": 2, "n_action_steps": 4, "tokenizer_ch_mult": [2], "scales": [1, 2, 4]},
}


def _policy(kind: str):
    torch.manual_seed(0)
    p = make_policy(TINY[kind], SHAPE)
    rng = np.random.default_rng(0)
    p.normalizer.fit_key("action", rng.uniform(-2, 2, (200, 2)))
    p.normalizer.fit_key("obs/state", rng.normal(size=(200, 5)))
    return p.eval()


def _obs(b=3, seed=0):
    return {"state": np.random.default_rng(seed).normal(size=(b, 2, 5)).astype(np.float32)}


def _cfn_for(policy, n=64):
    feats = policy.sample_actions(_obs(16, 1), num_samples=4, return_features=True)[1].reshape(-1, policy.feature_dim)
    return train_cfn(feats[:n], {"hidden_dim": 32, "num_blocks": 1, "policy_type": policy.name},
                     {"epochs": 2, "batch_size": 32}, progress=False)


@pytest.fixture(scope="module", params=["diffusion", "carp"])
def wrapped(request):
    p = _policy(request.param)
    return VerifiedPolicy(p, _cfn_for(p), num_samples=16).eval()


def test_candidates_share_one_observation_encoding(wrapped):
    calls = []
    h = wrapped.policy.encoder.register_forward_hook(lambda m, i, o: calls.append(o.shape[0]))
    try:
        out = wrapped.verify(_obs(b=3))
    finally:
        h.remove()
    assert calls == [3]                               # encoded once, for the 3 observations, not 3 x 16
    assert out["candidates"].shape == (3, 1, 16, 8, 2) and out["actions"].shape == (3, 1, 8, 2)
    assert out["scores"].shape == (3, 1, 16)
    # the executed chunk is the candidate with the best score
    best = out["scores"].argmax(-1)
    assert torch.equal(best, out["index"])
    assert torch.equal(out["actions"][:, 0], out["candidates"][torch.arange(3), 0, best[:, 0]])


def test_verified_policy_is_a_policy_with_the_base_shapes(wrapped):
    from robotrl.policies import Policy

    assert isinstance(wrapped, Policy) and wrapped.name == "verified"
    assert wrapped.config.n_obs_steps == wrapped.policy.config.n_obs_steps
    assert wrapped.predict_chunk(_obs(b=2)).shape == (2, 4, 2)
    wrapped.reset()
    assert wrapped.act(_obs(b=2)).shape == (2, 2)
    with pytest.raises(NotImplementedError, match="inference-only"):
        wrapped.loss(None)


def test_round_trip_acts_identically_under_a_fixed_seed(wrapped, tmp_path):
    wrapped.save_pretrained(tmp_path / "vp")
    loaded = load_policy(tmp_path / "vp").eval()
    assert not loaded.verifier.training and not load_policy(tmp_path / "vp").verifier.training
    assert isinstance(loaded, VerifiedPolicy) and type(loaded.policy) is type(wrapped.policy)
    assert loaded.config.num_samples == 16 and isinstance(loaded.verifier, CFNVerifier)
    for k, v in wrapped.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    outs = []
    for pol in (wrapped, loaded):
        pol.reset()
        torch.manual_seed(123)
        outs.append(torch.stack([pol.act(_obs(b=2, seed=s)) for s in range(6)]))
    assert torch.equal(outs[0], outs[1])


def test_softmax_selection_and_multiple_picks(wrapped):
    vp = VerifiedPolicy(wrapped.policy, wrapped.verifier, num_samples=8, selection="softmax", temperature=1e-6)
    out = vp.verify(_obs(b=2), num_picks=3)
    assert out["actions"].shape == (2, 3, 8, 2)
    assert torch.equal(out["index"], out["scores"].argmax(-1))   # temperature -> 0 is greedy
    assert vp.sample_actions(_obs(b=2), num_samples=2).shape == (2, 2, 8, 2)
    with pytest.raises(ValueError, match="selection"):
        VerifiedPolicy(wrapped.policy, wrapped.verifier, selection="best")


def test_verifier_for_another_policy_is_refused(wrapped):
    other = CFNVerifier(CFNConfig(feature_dim=wrapped.feature_dim + 7, policy_type="carp"))
    with pytest.raises(VerifierMismatchError, match=rf"size {wrapped.feature_dim + 7}.*size {wrapped.feature_dim}"):
        VerifiedPolicy(wrapped.policy, other)
    with pytest.raises(TypeError, match="Verifier"):
        VerifiedPolicy(wrapped.policy, object())


def test_standalone_verifier_save_load(wrapped, tmp_path):
    wrapped.verifier.save_pretrained(tmp_path / "v")
    v = load_verifier(tmp_path / "v")
    f = torch.randn(2, 5, wrapped.feature_dim)
    assert torch.allclose(v.score({}, None, f), wrapped.verifier.score({}, None, f))
    with pytest.raises(FileNotFoundError, match="verifier.json"):
        load_verifier(tmp_path / "missing")


def test_high_fidelity_features_pick_the_closest_candidate():
    from robotrl.data import EpisodeStore

    p = _policy("diffusion")
    rng = np.random.default_rng(0)
    eps = [{"obs/state": rng.normal(size=(12, 5)).astype(np.float32),
            "action": rng.uniform(-2, 2, (12, 2)).astype(np.float32)} for _ in range(2)]
    store = EpisodeStore.from_episodes(eps)
    out = collect_policy_features(p, store, num_candidates=6, max_samples=10, batch_size=4, progress=False)
    assert out["features"].shape == (10, p.feature_dim)
    # closest of 6 draws beats a single draw on average
    one = collect_policy_features(p, store, num_candidates=1, max_samples=10, batch_size=4, seed=1, progress=False)
    assert out["distance"].mean() < one["distance"].mean()


def test_success_only_features_use_successful_episodes_only():
    from robotrl.data import EpisodeStore
    from robotrl.verifiers.train import successful_episodes

    p = _policy("diffusion")
    rng = np.random.default_rng(0)
    eps = [{"obs/state": rng.normal(size=(10, 5)).astype(np.float32), "action": rng.uniform(-2, 2, (10, 2)).astype(np.float32),
            "reward": np.eye(10, dtype=np.float32)[9] * (i == 1)} for i in range(3)]
    store = EpisodeStore.from_episodes(eps)
    assert successful_episodes(store).tolist() == [1]
    all_ = collect_policy_features(p, store, num_candidates=2, max_samples=None, progress=False)
    ok = collect_policy_features(p, store, num_candidates=2, max_samples=None, progress=False, episodes="success")
    assert len(ok["features"]) * 3 == len(all_["features"])
    with pytest.raises(ValueError, match="no successful episode"):
        collect_policy_features(p, EpisodeStore.from_episodes([{**eps[0], "reward": np.zeros(10, np.float32)}]),
                                num_candidates=2, progress=False, episodes="success")
