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
