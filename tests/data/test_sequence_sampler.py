"""SequenceSampler: windows and padding vs a brute-force reference, batches, epochs, Dataset."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from robotrl.data import EpisodeStore, SequenceSampler, create_indices


def _reference_windows(store: EpisodeStore, key: str, horizon: int, pad_before: int, pad_after: int) -> list[np.ndarray]:
    """Diffusion Policy's rule, one window at a time in plain Python."""
    out = []
    for i in range(store.num_episodes):
        ep = store.episode(i)[key]
        n = len(ep)
        for start in range(-pad_before, n - horizon + pad_after + 1):
            out.append(np.stack([ep[min(max(start + j, 0), n - 1)] for j in range(horizon)]))
    return out


def _store(rng, lengths):
    eps = []
    for n in lengths:
        eps.append(
            {
                "obs/state": rng.standard_normal((n, 2)).astype(np.float32),
                "obs/image": rng.integers(0, 256, (n, 4, 4, 3), dtype=np.uint8),
                "action": rng.standard_normal((n, 3)),
                "reward": rng.standard_normal(n),
            }
        )
    return EpisodeStore.from_episodes(eps)


@pytest.mark.parametrize("horizon,pad_before,pad_after", [(1, 0, 0), (4, 0, 0), (4, 1, 3), (8, 1, 7), (16, 2, 7), (5, 4, 4), (6, 0, 2)])
def test_windows_match_bruteforce(horizon, pad_before, pad_after):
    rng = np.random.default_rng(horizon * 100 + pad_before * 10 + pad_after)
    lengths = rng.integers(1, 20, size=12).tolist() + [1, 2, horizon - 1 if horizon > 1 else 1, horizon]
    store = _store(rng, lengths)
    sampler = SequenceSampler(store, horizon, pad_before, pad_after, keys=["obs/state", "obs/image", "action", "reward"])
    for key in ("obs/state", "obs/image", "action"):
        ref = _reference_windows(store, key, horizon, pad_before, pad_after)
        assert len(sampler) == len(ref)
        got = sampler.get_numpy(np.arange(len(sampler)))[key]
        np.testing.assert_array_equal(got, np.stack(ref) if ref else got)
    if len(sampler):
        one = sampler[len(sampler) // 2]
        np.testing.assert_array_equal(one["action"], _reference_windows(store, "action", horizon, pad_before, pad_after)[len(sampler) // 2])


def test_index_table_rows():
    # one episode of length 3, H=4, pad_before=1, pad_after=3 -> starts -1..2
    idx = create_indices(np.array([3]), 4, 1, 3)
    np.testing.assert_array_equal(
        idx,
        [[0, 3, 1, 4], [0, 3, 0, 3], [1, 3, 0, 2], [2, 3, 0, 1]],
    )
    # episode_mask drops an episode's windows; too-short episodes get none without padding
    idx = create_indices(np.array([3, 10]), 4, 0, 0, episode_mask=np.array([True, True]))
    np.testing.assert_array_equal(idx[:, 0], np.arange(3, 7))


def test_obs_steps_and_batch_layout():
    rng = np.random.default_rng(0)
    store = _store(rng, [7, 3, 12])
    horizon, to, ta = 8, 2, 4
    sampler = SequenceSampler(store, horizon, pad_before=to - 1, pad_after=ta - 1, obs_steps=to, keys=["obs/state", "obs/image", "action", "reward"], seed=0)
    batch = sampler.sample(32)
    assert batch.batch_size == torch.Size([32])
    assert batch["obs", "state"].shape == (32, to, 2) and batch["obs", "state"].dtype == torch.float32
    assert batch["obs", "image"].shape == (32, to, 4, 4, 3) and batch["obs", "image"].dtype == torch.uint8
    assert batch["action"].shape == (32, horizon, 3) and batch["action"].dtype == torch.float32  # float64 -> float32
    assert batch["reward"].shape == (32, horizon)
    # obs are the first To steps of the same window the actions come from
    full = SequenceSampler(store, horizon, to - 1, ta - 1, keys=["obs/state"])
    np.testing.assert_array_equal(sampler[5]["obs/state"], full[5]["obs/state"][:to])
    # with H = To + Ta - 1, every step of every episode is the current obs (index To-1) of exactly one window
    tight = SequenceSampler(store, to + ta - 1, to - 1, ta - 1, obs_steps=to)
    current = tight.window_rows(np.arange(len(tight)))[:, to - 1]
    np.testing.assert_array_equal(np.sort(current), np.arange(store.num_steps))
    # same seed -> same batch; an explicit rng overrides the sampler's
    a = SequenceSampler(store, horizon, to - 1, ta - 1, seed=3).sample(8)
    b = SequenceSampler(store, horizon, to - 1, ta - 1, seed=3).sample(8)
    assert torch.equal(a["action"], b["action"])
    c = sampler.sample(8, rng=np.random.default_rng(3))
    assert torch.equal(a["action"], c["action"])


def test_iter_batches_epoch_and_dataset():
    rng = np.random.default_rng(1)
    store = _store(rng, [5, 9, 2, 6])
    sampler = SequenceSampler(store, 4, pad_before=1, pad_after=2, keys=["obs/state", "action", "reward"])
    n = len(sampler)
    # reward values are unique, so each window is identified by its rewards
    all_windows = {tuple(sampler[i]["reward"]) for i in range(n)}
    seen = []
    for batch in sampler.iter_batches(5, shuffle=True, rng=0):
        assert batch.batch_size[0] <= 5
        seen += [tuple(r) for r in batch["reward"].double().numpy()]
    assert len(seen) == n
    assert {tuple(np.float32(v) for v in w) for w in all_windows} == {tuple(np.float32(v) for v in w) for w in seen}
    sizes = [b.batch_size[0] for b in sampler.iter_batches(5, shuffle=False, drop_last=True)]
    assert sizes == [5] * (n // 5)
    ds = sampler.as_dataset()
    assert len(ds) == n
    loader = torch.utils.data.DataLoader(ds, batch_size=4, shuffle=False, collate_fn=ds.collate)
    first = next(iter(loader))
    assert first["obs", "state"].shape == (4, 4, 2)
    np.testing.assert_array_equal(first["action"][1].numpy(), sampler[1]["action"].astype(np.float32))


def test_episode_indices_and_bad_args():
    rng = np.random.default_rng(2)
    store = _store(rng, [5, 9, 4])
    only = SequenceSampler(store, 3, keys=["action"], episode_indices=[1])
    assert len(only) == 9 - 3 + 1
    rows = only.window_rows(np.arange(len(only)))
    assert rows.min() >= 5 and rows.max() < 14
    with pytest.raises(KeyError, match="'nope'"):
        SequenceSampler(store, 3, keys=["nope"])
    with pytest.raises(ValueError, match="obs_steps"):
        SequenceSampler(store, 3, obs_steps=4)
    with pytest.raises(ValueError, match="no windows"):
        SequenceSampler(store, 50).sample(2)
