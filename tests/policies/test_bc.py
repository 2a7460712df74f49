"""BC policy and the base Policy contract (shapes, queue, save/load, errors)."""
import numpy as np
import pytest
import torch
from tensordict import TensorDict

from robotrl.policies import load_policy, make_policy

SHAPE = {"obs": {"state": [5]}, "action": [2]}


def _policy(**kw):
    p = make_policy({"type": "bc", "hidden_dims": [64, 64], **kw}, SHAPE)
    rng = np.random.default_rng(0)
    p.normalizer.fit_key("action", rng.uniform(-2, 2, (200, 2)))
    p.normalizer.fit_key("obs/state", rng.normal(size=(200, 5)))
    return p


def test_sample_actions_shape_and_queue():
    p = _policy()
    obs = {"state": np.random.randn(3, 2, 5).astype(np.float32)}
    assert p.sample_actions(obs, num_samples=4).shape == (3, 4, 16, 2)
    chunk = p.predict_chunk(obs)
    assert chunk.shape == (3, 8, 2)
    p.reset()
    first = p.act(obs)
    assert torch.allclose(first, chunk[:, 0])
    for i in range(1, 8):  # the queue serves the rest of the chunk without re-planning
        assert torch.allclose(p.act({"state": np.zeros((3, 2, 5), np.float32)}), chunk[:, i])
    p.reset()
    assert len(p._queue) == 0


def test_bc_learns_a_linear_map_and_roundtrips(tmp_path):
    torch.manual_seed(0)
    p = _policy()
    w = torch.randn(5, 2)
    opt = torch.optim.Adam(p.parameters(), lr=3e-3)
    for _ in range(300):
        s = torch.randn(64, 2, 5)
        a = (s[:, -1] @ w).clamp(-2, 2).unsqueeze(1).expand(-1, 16, -1)
        loss, m = p.loss(TensorDict({("obs", "state"): s, "action": a}, batch_size=[64]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert m["loss"] < 0.02
    p.save_pretrained(tmp_path / "pol")
    q = load_policy(tmp_path / "pol")
    obs = {"state": np.random.randn(4, 2, 5).astype(np.float32)}
    assert torch.equal(p.sample_actions(obs), q.sample_actions(obs))
    assert q.config.hidden_dims == (64, 64)


def test_gaussian_bc_draws_distinct_candidates():
    p = _policy(loss="gaussian")
    a = p.sample_actions({"state": np.random.randn(2, 2, 5).astype(np.float32)}, num_samples=5)
    assert a.shape == (2, 5, 16, 2)
    assert not torch.allclose(a[:, 0], a[:, 1])


def test_bad_inputs_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown config key.*hiden_dims"):
        make_policy({"type": "bc", "hiden_dims": [3]}, SHAPE)
    with pytest.raises(ValueError, match="unknown policy type 'nope'"):
        make_policy({"type": "nope"}, SHAPE)
    with pytest.raises(ValueError, match="loss must be one of"):
        make_policy({"type": "bc", "loss": "l7"}, SHAPE)
    with pytest.raises(ValueError, match="exceeds horizon"):
        make_policy({"type": "bc", "horizon": 4, "n_action_steps": 8}, SHAPE)
    p = _policy()
    with pytest.raises(ValueError, match=r"'state' expected shape \[B, To, 5\], got \(3, 2, 4\)"):
        p.sample_actions({"state": np.zeros((3, 2, 4), np.float32)})
    with pytest.raises(KeyError, match="expects observation key 'state'"):
        p.sample_actions({"pos": np.zeros((3, 2, 5), np.float32)})
    with pytest.raises(FileNotFoundError, match="no policy checkpoint"):
        load_policy(tmp_path / "missing")
    # an interrupted save leaves the previous checkpoint intact
    p.save_pretrained(tmp_path / "pol")
    before = (tmp_path / "pol" / "model.safetensors").read_bytes()
    import safetensors.torch as st

    orig = st.save_file

    def boom(*a, **k):
        raise OSError("disk full")

    st.save_file = boom
    try:
        with pytest.raises(OSError):
            p.save_pretrained(tmp_path / "pol")
    finally:
        st.save_file = orig
    assert (tmp_path / "pol" / "model.safetensors").read_bytes() == before
    assert load_policy(tmp_path / "pol") is not None


def test_return_features_gives_one_feature_per_candidate():
    p = _policy()
    a, f = p.sample_actions({"state": np.random.randn(3, 2, 5).astype(np.float32)}, num_samples=4, return_features=True)
    assert a.shape == (3, 4, 16, 2) and f.shape == (3, 4, p.feature_dim) and p.feature_dim == 64
