"""Scripted-expert collection: ``post_success_steps`` ends a demo k steps after its first success."""
from __future__ import annotations

import numpy as np
import pytest

from robotrl.data import load_dataset
from robotrl.engine.collect import collect_demos, rollout_expert
from robotrl.envs import make_env
from robotrl.envs.experts import make_expert

ENV = {"id": "metaworld/push-v3"}  # never terminates: 500 steps, the expert succeeds near step 60


def _first_success(actions: np.ndarray, seed: int) -> int:
    """Replay ``actions`` in a fresh env: the number of steps taken when is_success first holds."""
    env = make_env(ENV)
    env.reset(seed=seed)
    for t, a in enumerate(actions, start=1):
        if env.step(a)[-1].get("is_success"):
            env.close()
            return t
    env.close()
    raise AssertionError("no success in the replayed episode")


def test_episode_ends_k_steps_after_first_success():
    pytest.importorskip("metaworld")
    env, expert = make_env(ENV), make_expert(ENV["id"], seed=0)
    full, ok_full = rollout_expert(env, expert, seed=3)
    cut, ok_cut = rollout_expert(env, expert, seed=3, post_success_steps=5)
    env.close()
    assert ok_full and ok_cut
    assert len(full["action"]) == 500 and full["truncated"][-1]
    t = _first_success(full["action"], seed=3)
    assert len(cut["action"]) == t + 5 < 500
    assert cut["truncated"][-1] and not cut["truncated"][:-1].any() and not cut["terminated"].any()
    for k in cut:  # the cut episode is the full one's prefix (same seed, deterministic expert)
        if k != "truncated":
            np.testing.assert_array_equal(cut[k], full[k][: t + 5], err_msg=k)


def test_collect_demos_writes_cut_episodes(tmp_path):
    pytest.importorskip("metaworld")
    out = tmp_path / "push.hdf5"
    summary = collect_demos(ENV, n_episodes=2, path=out, post_success_steps=0, progress=False)
    store = load_dataset(out)
    assert store.num_episodes == 2 and summary["mean_length"] < 150
    assert store.attrs["expert"]["post_success_steps"] == 0


def test_negative_post_success_steps_is_refused():
    with pytest.raises(ValueError, match="post_success_steps"):
        rollout_expert(None, None, seed=0, post_success_steps=-1)


def test_existing_file_with_another_post_success_steps_is_refused(tmp_path):
    """dataset.collect.post_success_steps on an existing file collected differently: a clear error, not
    silent training on the other recipe; the matching setting loads the file."""
    pytest.importorskip("metaworld")
    from robotrl.engine.policy_trainer import ensure_dataset

    out = tmp_path / "push.hdf5"
    collect_demos(ENV, n_episodes=1, path=out, post_success_steps=0, progress=False)
    cfg = {"path": str(out), "collect": {"post_success_steps": 3}}
    with pytest.raises(ValueError, match=r"post_success_steps=3.*post_success_steps=0"):
        ensure_dataset(cfg, ENV, progress=False)
    assert ensure_dataset(dict(cfg, collect={"post_success_steps": 0}), ENV, progress=False).num_episodes == 1
    assert ensure_dataset(dict(cfg, collect={"post_success_steps": None}), ENV, progress=False).num_episodes == 1


def test_config_hash_ignores_null_collect_keys():
    """Runs started before a collect key with a null default existed keep their hash (they resume)."""
    from robotrl.engine.policy_trainer import _config_hash

    old = {"env": {"id": "x"}, "dataset": {"path": "d.hdf5", "collect": {"n_episodes": 5}}, "policy": {}, "seed": 0}
    new = {**old, "dataset": {"path": "d.hdf5", "collect": {"n_episodes": 5, "post_success_steps": None}}}
    assert _config_hash(new) == _config_hash(old)
    cut = {**old, "dataset": {"path": "d.hdf5", "collect": {"n_episodes": 5, "post_success_steps": 4}}}
    assert _config_hash(cut) != _config_hash(old)
