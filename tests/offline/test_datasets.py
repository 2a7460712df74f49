"""The D4RL-style generator writes files the D4RL reader loads with the right episode splits."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from robotrl.data import load_dataset, qlearning_dataset
from robotrl.data.errors import DataShapeError
from robotrl.offline.datasets import KINDS


def test_generated_files_have_d4rl_layout_and_episode_splits(tiny_hopper):
    cfg, summary = tiny_hopper
    assert set(summary["files"]) == set(KINDS)
    for kind, path in summary["files"].items():
        with h5py.File(path, "r") as f:
            for key in ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations",
                        "infos/qpos", "infos/qvel", "metadata/seed", "metadata/kind"):
                assert key in f, (kind, key)
            assert f["observations"].shape[1] == 11 and f["actions"].shape[1] == 3
            assert f["metadata/kind"][()].decode() == kind
            terminals, timeouts = f["terminals"][()], f["timeouts"][()]
        store = load_dataset(path)
        ends = store.episode_ends
        np.testing.assert_array_equal(ends, np.flatnonzero(terminals | timeouts) + 1)   # split on terminals|timeouts
        assert ends[-1] == store.num_steps
        obs, nxt = store["obs/state"], store["next_obs/state"]
        last = np.zeros(store.num_steps, bool)
        last[ends - 1] = True
        # within an episode the next observation is the following row; across a boundary it is not
        np.testing.assert_array_equal(nxt[:-1][~last[:-1]], obs[1:][~last[:-1]])
        assert not np.any(np.all(np.isclose(nxt[:-1][last[:-1]], obs[1:][last[:-1]]), axis=1))
        # infos/qpos is the simulator state of observations[t] (Hopper's obs starts with qpos[1:])
        np.testing.assert_allclose(store["infos/qpos"][:, 1:].astype(np.float32), obs[:, :5], atol=1e-6)
        # terminations only where the episode ended; each episode is at most max_episode_steps long
        assert np.all(np.diff(np.concatenate([[0], ends])) <= cfg.max_episode_steps)
    med, exp = load_dataset(summary["files"]["medium"]), load_dataset(summary["files"]["expert"])
    me = load_dataset(summary["files"]["medium-expert"])
    assert med.num_steps == exp.num_steps == cfg.dataset_size
    assert me.num_steps == med.num_steps + exp.num_steps and me.num_episodes == med.num_episodes + exp.num_episodes
    np.testing.assert_array_equal(me["obs/state"][: med.num_steps], med["obs/state"])
    meta = med.attrs["metadata"]
    assert meta["env_id"] == "Hopper-v5" and meta["sac_steps"] == cfg.sac_steps and "policy_return" in meta
    mr = load_dataset(summary["files"]["medium-replay"])
    assert 0 < mr.num_steps <= cfg.sac_steps


def test_qlearning_view_never_crosses_episodes(tiny_hopper):
    _, summary = tiny_hopper
    store = load_dataset(summary["files"]["medium-replay"])
    no_next = type(store)({k: store[k] for k in store.keys() if not k.startswith("next_obs/")}, store.episode_ends)
    q = qlearning_dataset(no_next)
    starts = set(map(tuple, store["obs/state"][np.concatenate([[0], store.episode_ends[:-1]])].tolist()))
    # no transition's next observation is some episode's first observation (unless it is its own placeholder)
    crossing = [i for i, n in enumerate(q["next_observations"].tolist())
                if tuple(n) in starts and q["terminals"][i] == 0]
    assert crossing == []
    # with stored next observations every step is a transition, with the environment's real next obs
    q2 = qlearning_dataset(store)
    assert len(q2["observations"]) == store.num_steps
    np.testing.assert_array_equal(q2["next_observations"], store["next_obs/state"])


def test_observation_size_mismatch_is_a_clear_error(tiny_hopper, tmp_path):
    from robotrl.engine.rl_trainer import _load_dataset

    _, summary = tiny_hopper
    bad = tmp_path / "walker_like.hdf5"
    with h5py.File(summary["files"]["random"], "r") as src, h5py.File(bad, "w") as f:
        n = src["observations"].shape[0]
        f["observations"] = np.zeros((n, 17), np.float32)
        for k in ("actions", "rewards", "terminals", "timeouts"):
            f[k] = src[k][()]
    with pytest.raises(DataShapeError) as e:
        _load_dataset({"path": str(bad), "format": "d4rl", "d4rl_name": "hopper-medium-v2"}, {"id": "Hopper-v5"})
    msg = str(e.value)
    assert str(bad) in msg and "'observations'" in msg and f"({n}, 17)" in msg and "(N, 11)" in msg
    with pytest.raises(FileNotFoundError, match="robotrl-collect mode=d4rl"):
        _load_dataset({"path": str(tmp_path / "missing.hdf5")}, {"id": "Hopper-v5"})
