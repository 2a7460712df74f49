"""Prioritised replay, n-step returns, sequences, mixed batches, save/load, EpisodeStore input."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import chi2

from replay_reference import Reference, make_stream
from robotrl.data.replay import MixedSampler, PrioritizedReplayBuffer, ReplayBuffer, ReplayBufferError


def chunks(batch: dict, sizes):
    def sl(m, a, b):
        return {k: (sl(v, a, b) if isinstance(v, dict) else v[a:b]) for k, v in m.items()}

    pos = 0
    for s in sizes:
        yield sl(batch, pos, pos + s)
        pos += s


# -------------------------------------------------------------------------------- prioritised
@pytest.mark.parametrize("stratified", [False, True])
def test_prioritised_frequencies_match_p_alpha(stratified):
    rng = np.random.default_rng(0)
    cap, alpha = 50, 0.7
    buf = PrioritizedReplayBuffer(cap, alpha=alpha, beta=0.5, seed=11, stratified=stratified)
    buf.extend(make_stream(rng, cap))
    p = rng.uniform(0.05, 3.0, cap)
    p[7] = 0.0  # still drawable: eps keeps its probability > 0 but tiny
    buf.update_priorities(np.arange(cap), p)
    q = (p + buf.eps) ** alpha
    probs = q / q.sum()
    counts = np.zeros(cap)
    draws = 0
    for _ in range(300):
        idx = buf.sample(256)["index"].numpy()
        counts += np.bincount(idx, minlength=cap)
        draws += idx.size
    exp = probs * draws
    keep = exp > 5  # chi-square needs expected counts >= 5
    stat = ((counts[keep] - exp[keep]) ** 2 / exp[keep]).sum() + (counts[~keep].sum() - exp[~keep].sum()) ** 2 / max(exp[~keep].sum(), 1e-9)
    assert stat < chi2.ppf(0.999, keep.sum())
    # a real difference would be caught: uniform expectations are rejected
    exp_u = np.full(cap, draws / cap)
    assert ((counts - exp_u) ** 2 / exp_u).sum() > chi2.ppf(0.999, cap - 1)


def test_importance_weights_match_formula_and_new_get_max_priority():
    rng = np.random.default_rng(1)
    cap = 40
    buf = PrioritizedReplayBuffer(cap, alpha=0.6, beta=0.4, eps=1e-3, seed=2)
    buf.extend(make_stream(rng, 30))
    p = rng.uniform(0.1, 5.0, 30)
    buf.update_priorities(torch.arange(30), torch.from_numpy(p))
    td = buf.sample(128)
    idx, w = td["index"].numpy(), td["weight"].numpy()
    q = (p + 1e-3) ** 0.6
    P = q / q.sum()
    N = len(buf)
    expected = (N * P[idx]) ** -0.4 / ((N * P) ** -0.4).max()
    np.testing.assert_allclose(w, expected, rtol=1e-5)
    assert td["weight"].dtype == torch.float32 and w.max() <= 1.0 + 1e-6
    # new transitions enter with the largest priority seen so far
    buf.extend(make_stream(rng, 5))
    np.testing.assert_allclose(buf.priorities(np.arange(30, 35)), (p.max() + 1e-3) ** 0.6)
    # overwritten slots get the max priority too
    buf.extend(make_stream(rng, 10))
    np.testing.assert_allclose(buf.priorities(np.arange(0, 5)), (p.max() + 1e-3) ** 0.6)
    with pytest.raises(ReplayBufferError, match="finite"):
        buf.update_priorities([0], [np.nan])
    with pytest.raises(ReplayBufferError, match="not a written slot"):
        PrioritizedReplayBuffer(10, seed=0).update_priorities([0], [1.0])


def test_prioritised_nstep_and_rows():
    rng = np.random.default_rng(2)
    buf = PrioritizedReplayBuffer(64, seed=3, gamma=0.9)
    ref = Reference(64)
    for c in chunks(make_stream(rng, 100), [60, 40]):
        buf.extend(c)
        ref.extend(c)
    td = buf.sample(64, n_step=3)
    for r, slot in enumerate(td["index"].numpy()):
        exp = ref.nstep(ref.t_of_slot(int(slot)), 3, 0.9)
        assert td["reward"][r].item() == pytest.approx(exp["reward"], rel=1e-5, abs=1e-6)
        assert td["discount"][r].item() == pytest.approx(exp["discount"], rel=1e-6)


# ----------------------------------------------------------------------------------- n-step
@pytest.mark.parametrize("n", [1, 3, 5])
def test_nstep_targets_equal_naive_loop(n):
    rng = np.random.default_rng(10 + n)
    cap, gamma = 120, 0.95
    buf = ReplayBuffer(cap, seed=n, gamma=gamma)
    ref = Reference(cap)
    stream = make_stream(rng, 400, p_term=0.1, p_trunc=0.1)
    for c in chunks(stream, [70, 1, 1, 90, 38, 100, 100]):
        buf.extend(c)
        ref.extend(c)
        td = buf.sample(128, n_step=n)
        for r, slot in enumerate(td["index"].numpy()):
            t = ref.t_of_slot(int(slot))
            exp = ref.nstep(t, n, gamma)
            assert td["reward"][r].item() == pytest.approx(exp["reward"], rel=1e-5, abs=1e-5)
            assert td["discount"][r].item() == pytest.approx(exp["discount"], rel=1e-6)
            assert bool(td["terminated"][r]) == exp["terminated"]
            assert bool(td["truncated"][r]) == exp["truncated"]
            np.testing.assert_array_equal(td["next", "obs", "state"][r].numpy(), exp[("next", "obs", "state")])
            np.testing.assert_array_equal(td["obs", "state"][r].numpy(), ref.items[t][("obs", "state")])
            np.testing.assert_array_equal(td["action"][r].numpy(), ref.items[t][("action",)])


def test_nstep_default_from_constructor():
    rng = np.random.default_rng(3)
    s = make_stream(rng, 50, p_term=0.0, p_trunc=0.0)
    buf = ReplayBuffer(100, seed=0, n_step=3, gamma=0.5)
    buf.extend(s)
    td = buf.sample(32)
    far = td["index"] < 47  # not near the newest transition
    assert torch.allclose(td["discount"][far], torch.tensor(0.125))


# --------------------------------------------------------------------------------- sequences
def test_sequence_windows_never_cross_episodes():
    rng = np.random.default_rng(4)
    cap, T = 150, 16
    buf = ReplayBuffer(cap, seed=4)
    ref = Reference(cap)
    stream = make_stream(rng, 400, p_term=0.05, p_trunc=0.05)
    for c in chunks(stream, [100, 150, 150]):
        buf.extend(c)
        ref.extend(c)
        td = buf.sample_sequence(64, T)
        assert td.batch_size == torch.Size([64, T]) and td["mask"].dtype == torch.bool
        assert td["index"].shape == (64,)
        for b, slot in enumerate(td["index"].numpy()):
            ts, mask = ref.window(ref.t_of_slot(int(slot)), T)
            assert td["mask"][b].tolist() == mask
            for t, tt in enumerate(ts):
                item = ref.items[tt]
                for key in (("obs", "state"), ("action",), ("next", "obs", "state"), ("reward",)):
                    np.testing.assert_array_equal(td[key][b, t].numpy(), item[key])
            # valid steps are consecutive steps of one episode: no done before the last valid one
            nvalid = int(td["mask"][b].sum())
            done = (td["terminated"][b] | td["truncated"][b])[: nvalid - 1]
            assert not done.any()
    assert (~td["mask"]).any() and td["mask"].all(1).any()


# ------------------------------------------------------------------------------------ mixed
def test_mixed_batches_have_exact_split():
    rng = np.random.default_rng(5)
    online = PrioritizedReplayBuffer(200, seed=1)
    demo = ReplayBuffer(100, seed=2)
    on = make_stream(rng, 150, start=0)
    de = make_stream(rng, 80, start=100_000)  # demo steps are >= 100000 in column 0
    online.extend(on)
    demo.extend(de)
    mixed = MixedSampler(online, demo, demo_fraction=0.25)
    for B in (256, 7, 1):
        td = mixed.sample(B, n_step=2)
        n_demo, n_online = mixed.split(B)
        assert n_demo == round(B * 0.25) and n_demo + n_online == B
        fd = td["from_demo"]
        assert fd.sum().item() == n_demo and fd[:n_demo].all()
        step = td["obs", "state"][:, 0].abs()
        assert (step[fd] >= 100_000).all() and (step[~fd] < 100_000).all()
        assert torch.all(td["weight"][fd] == 1.0)
    td = mixed.sample(64)
    mixed.update_priorities(td["index"], torch.full((64,), 7.0), td["from_demo"])
    assert online.max_priority == 7.0
    with pytest.raises(ReplayBufferError, match="differs"):
        other = ReplayBuffer(10, {"obs": {"state": ((4,), np.float32)}, "action": ((2,), np.float32)})
        MixedSampler(online, other)


def test_from_episode_store_and_mixed_with_store():
    from robotrl.data import EpisodeStore

    rng = np.random.default_rng(6)
    lengths, eps = [5, 3, 4], []
    for i, L in enumerate(lengths):
        eps.append({
            "obs/state": rng.standard_normal((L, 3)).astype(np.float32),
            "action": rng.standard_normal((L, 2)).astype(np.float32),
            "reward": np.arange(L, dtype=np.float32) + 10 * i,
            "terminated": np.eye(1, L, L - 1, dtype=bool)[0] if i == 0 else np.zeros(L, bool),
            "truncated": np.zeros(L, bool),
        })
    store = EpisodeStore.from_episodes(eps)
    buf = ReplayBuffer.from_episode_store(store, seed=0)
    # episode 0 terminated: all 5 steps; episodes 1, 2 not: last step dropped (next obs unknown)
    assert len(buf) == 5 + 2 + 3
    got = buf.get(np.arange(len(buf)))
    np.testing.assert_array_equal(got[("reward",)], [0, 1, 2, 3, 4, 10, 11, 20, 21, 22])
    np.testing.assert_array_equal(got[("next", "obs", "state")][5:7], eps[1]["obs/state"][1:3])
    assert got[("truncated",)].tolist() == [False] * 6 + [True] + [False, False, True]
    assert got[("terminated",)].tolist() == [False] * 4 + [True] + [False] * 5
    # with stored next observations every step is kept
    store2 = store.with_next_obs()
    assert "next_obs/state" in store2.keys()
    buf2 = ReplayBuffer.from_episode_store(store2, capacity=100, seed=0)
    assert len(buf2) == 12
    online = ReplayBuffer(50, buf2.spec, seed=1)
    online.extend(make_stream(rng, 20))
    td = MixedSampler(online, store2, demo_fraction=0.5).sample(10)
    assert td["from_demo"].sum() == 5


# ------------------------------------------------------------------------------ persistence
@pytest.mark.parametrize("cls", [ReplayBuffer, PrioritizedReplayBuffer])
def test_save_load_round_trip_continues_identically(tmp_path, cls):
    rng = np.random.default_rng(7)
    stream = make_stream(rng, 300, image=(4, 4, 3))
    parts = list(chunks(stream, [130, 70, 100]))
    a = cls(150, seed=9, n_step=2)
    a.extend(parts[0])
    a.extend(parts[1])  # wrapped
    if a.prioritized:
        td = a.sample(32)
        a.update_priorities(td["index"], torch.rand(32) * 3)
    a.sample_sequence(4, 5)
    path = tmp_path / "buf"
    a.save(path)
    b = ReplayBuffer.load(path)
    assert type(b) is cls and len(b) == len(a) and b.spec == a.spec
    for _ in range(2):
        ta, tb = a.sample(64), b.sample(64)
        assert set(ta.keys(True, True)) == set(tb.keys(True, True))
        for k in ta.keys(True, True):
            assert torch.equal(ta[k], tb[k]), k
        sa, sb = a.sample_sequence(8, 6), b.sample_sequence(8, 6)
        assert torch.equal(sa["obs", "image"], sb["obs", "image"]) and torch.equal(sa["mask"], sb["mask"])
        a.extend(parts[2])
        b.extend(parts[2])
    # atomic overwrite of an existing save; no temp files left behind
    a.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["buf"]
    with pytest.raises(FileNotFoundError, match="meta.json"):
        ReplayBuffer.load(tmp_path / "nothing")
    if cls is ReplayBuffer:
        with pytest.raises(ReplayBufferError, match="cannot load"):
            PrioritizedReplayBuffer.load(path)


def test_pin_memory_and_device_transfer():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    rng = np.random.default_rng(8)
    buf = ReplayBuffer(100, seed=0, device="cuda", pin_memory=True)
    buf.extend(make_stream(rng, 50))
    td = buf.sample(16)
    assert td["obs", "state"].is_cuda
