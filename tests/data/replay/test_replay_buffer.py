"""ReplayBuffer: storage, implicit next observations, wrap-around, bad input, seeds."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from tensordict import TensorDict

from replay_reference import Reference, make_stream
from robotrl.data.replay import MissingFieldError, ReplayBuffer, ReplayBufferError


def chunks(batch: dict, sizes):
    """Slice a nested batch into consecutive chunks of the given sizes."""
    def sl(m, a, b):
        return {k: (sl(v, a, b) if isinstance(v, dict) else v[a:b]) for k, v in m.items()}

    pos = 0
    for s in sizes:
        yield sl(batch, pos, pos + s)
        pos += s


def check_rows(buf: ReplayBuffer, ref: Reference, td: TensorDict) -> None:
    """Every sampled row equals the reference transition of its slot (incl. next observations)."""
    idx = td["index"].numpy()
    assert idx.min() >= 0 and idx.max() < len(buf)
    for r, slot in enumerate(idx):
        t = ref.t_of_slot(int(slot))
        item = ref.items[t]
        for key, v in item.items():
            np.testing.assert_array_equal(td[key][r].numpy(), v, err_msg=f"{key} row {r} slot {slot} t {t}")


def test_wraparound_indices_valid_and_rows_match_reference():
    rng = np.random.default_rng(0)
    cap = 97
    stream = make_stream(rng, 1000)
    sizes = list(rng.integers(1, 60, 40))
    buf = ReplayBuffer(cap, seed=1)
    ref = Reference(cap)
    total = 0
    for chunk in chunks(stream, sizes):
        buf.extend(chunk)
        ref.extend(chunk)
        total += len(chunk["action"])
        assert len(buf) == min(total, cap)
        td = buf.sample(64)
        assert td.batch_size == torch.Size([64])
        check_rows(buf, ref, td)
    # every live slot's stored next observation is right, not just sampled ones
    got = buf.get(np.arange(len(buf)))
    for slot in range(len(buf)):
        t = ref.t_of_slot(slot)
        np.testing.assert_array_equal(got[("next", "obs", "state")][slot], ref.items[t][("next", "obs", "state")])
    # the side storage holds one entry per live segment end, no more
    n_ends = sum(ref.segment_end(ref.t_of_slot(s)) for s in range(len(buf)))
    assert buf._side_tail - buf._side_head == n_ends


def test_per_step_extend_keeps_side_storage_small():
    rng = np.random.default_rng(1)
    stream = make_stream(rng, 400, p_term=0.01, p_trunc=0.01)
    buf = ReplayBuffer(300, seed=0)
    ref = Reference(300)
    for chunk in chunks(stream, [1] * 400):
        buf.extend(chunk)
        ref.extend(chunk)
    n_ends = sum(ref.segment_end(ref.t_of_slot(s)) for s in range(len(buf)))
    assert buf._side_tail - buf._side_head == n_ends < 20
    check_rows(buf, ref, buf.sample(256))


def test_interleaved_streams_stay_correct():
    rng = np.random.default_rng(2)
    a = make_stream(rng, 60, start=0)
    b = make_stream(rng, 60, start=10_000)
    buf = ReplayBuffer(100, seed=0)
    ref = Reference(100)
    for ca, cb in zip(chunks(a, [3] * 20), chunks(b, [3] * 20)):
        for c in (ca, cb):
            buf.extend(c)
            ref.extend(c)
    check_rows(buf, ref, buf.sample(200))
    # n-step never walks from one stream into the other
    td = buf.sample(200, n_step=5)
    for r, slot in enumerate(td["index"].numpy()):
        exp = ref.nstep(ref.t_of_slot(int(slot)), 5, buf.gamma)
        np.testing.assert_array_equal(td["next", "obs", "state"][r].numpy(), exp[("next", "obs", "state")])


def test_side_storage_grows_for_short_episodes():
    rng = np.random.default_rng(3)
    stream = make_stream(rng, 3000, p_term=0.4, p_trunc=0.4)
    buf = ReplayBuffer(2000, seed=0)
    ref = Reference(2000)
    for c in chunks(stream, [500] * 6):
        buf.extend(c)
        ref.extend(c)
    assert buf._side_rows > 500
    check_rows(buf, ref, buf.sample(512))


def test_batch_keys_dtypes_and_inputs():
    rng = np.random.default_rng(4)
    s = make_stream(rng, 50)
    buf = ReplayBuffer(100, seed=0)
    # TensorDict of torch tensors with tuple keys, float64 actions (stored as float32)
    td_in = TensorDict({
        ("obs", "state"): torch.from_numpy(s["obs"]["state"]),
        "action": torch.from_numpy(s["action"]).double(),
        "reward": torch.from_numpy(s["reward"])[:, None],  # [N, 1] accepted for a scalar field
        "terminated": torch.from_numpy(s["terminated"]),
        "truncated": torch.from_numpy(s["truncated"]),
        ("next", "obs", "state"): torch.from_numpy(s["next"]["obs"]["state"]),
        "extra_ignored": torch.zeros(50),
    }, batch_size=[50])
    buf.extend(td_in)
    assert set(buf.spec) == {("obs", "state"), ("action",), ("reward",), ("terminated",), ("truncated",), ("extra_ignored",)}
    assert buf.spec[("action",)].dtype == np.float32
    td = buf.sample(8)
    assert td["obs", "state"].dtype == torch.float32 and td["obs", "state"].shape == (8, 3)
    assert td["terminated"].dtype == torch.bool and td["reward"].shape == (8,)
    assert td["discount"].shape == (8,) and td["index"].dtype == torch.int64
    assert td["next", "obs", "state"].shape == (8, 3)
    # flat "obs/state" string keys work too
    flat = {"obs/state": s["obs"]["state"], "action": s["action"], "reward": s["reward"],
            "terminated": s["terminated"], "truncated": s["truncated"],
            "next/obs/state": s["next"]["obs"]["state"], "extra_ignored": np.zeros(50)}
    buf.extend(flat)
    assert len(buf) == 100


def test_explicit_spec_and_images_parallel_gather():
    rng = np.random.default_rng(5)
    shape = (3, 84, 84)
    spec = {"obs": {"state": ((3,), np.float32), "image": (shape, np.uint8)}, "action": ((2,), "float32")}
    buf = ReplayBuffer(150, spec, seed=0, parallel=True)
    ref = Reference(150)
    stream = make_stream(rng, 200, image=shape, p_term=0.01, p_trunc=0.01)
    for c in chunks(stream, [120, 80]):
        buf.extend(c)
        ref.extend(c)
    td = buf.sample(64)  # 64 rows of 2 x 21 kB images: above the parallel-gather threshold
    assert buf._plan((64,), "flat").parallel
    assert td["obs", "image"].dtype == torch.uint8 and td["obs", "image"].shape == (64,) + shape
    check_rows(buf, ref, td)
    assert buf.nbytes < 1.2 * buf.raw_bytes_per_transition * buf.capacity


def test_seeded_sampling_is_reproducible():
    rng = np.random.default_rng(6)
    s = make_stream(rng, 500)
    a, b, c = ReplayBuffer(1000, seed=7), ReplayBuffer(1000, seed=7), ReplayBuffer(1000, seed=8)
    for x in (a, b, c):
        x.extend(s)
    ia, ib, ic = (x.sample(32)["index"] for x in (a, b, c))
    assert torch.equal(ia, ib) and not torch.equal(ia, ic)


def test_uniform_sampling_covers_slots_uniformly():
    from scipy.stats import chi2

    rng = np.random.default_rng(7)
    buf = ReplayBuffer(64, seed=3)
    for c in chunks(make_stream(rng, 100), [50, 50]):  # wrapped: all 64 slots live
        buf.extend(c)
    counts = np.zeros(64)
    for _ in range(200):
        counts += np.bincount(buf.sample(256)["index"].numpy(), minlength=64)
    exp = counts.sum() / 64
    stat = ((counts - exp) ** 2 / exp).sum()
    assert stat < chi2.ppf(0.999, 63)


# ------------------------------------------------------------------------------ bad input
def _state(buf: ReplayBuffer) -> dict:
    st = {k: v.copy() for k, v in buf._state_arrays().items()}
    st["meta"] = buf._meta()
    return st


def _assert_unchanged(before: dict, buf: ReplayBuffer) -> None:
    after = _state(buf)
    assert before["meta"] == after["meta"]
    for k in before:
        if k != "meta":
            np.testing.assert_array_equal(before[k], after[k], err_msg=k)


@pytest.mark.parametrize(
    "mutate, exc, words",
    [
        (lambda b: b.pop("action"), MissingFieldError, ["action", "(N, 2)", "float32"]),
        (lambda b: b["next"]["obs"].pop("state"), MissingFieldError, ["next", "state", "(N, 3)"]),
        (lambda b: b["obs"].__setitem__("state", b["obs"]["state"][:, :2]), ReplayBufferError,
         ["state", "(10, 3)", "(10, 2)"]),
        (lambda b: b.__setitem__("action", b["action"][:5]), ReplayBufferError, ["action", "5 rows", "10"]),
        (lambda b: b.__setitem__("terminated", np.full(10, 0.5)), ReplayBufferError, ["terminated", "bool", "float64"]),
        (lambda b: b["obs"].__setitem__("image", np.ones((10, 4, 4, 3))), ReplayBufferError, ["image", "uint8", "float64"]),
        (lambda b: b["obs"].__setitem__("image", np.full((10, 4, 4, 3), 300)), ReplayBufferError, ["image", "uint8", "int64"]),
        (lambda b: b.__setitem__("action", np.array(["a"] * 20).reshape(10, 2)), ReplayBufferError, ["action", "float32"]),
    ],
)
def test_bad_batches_raise_clear_errors_and_leave_buffer_unchanged(mutate, exc, words):
    rng = np.random.default_rng(8)
    buf = ReplayBuffer(30, seed=0)
    good = make_stream(rng, 40, image=(4, 4, 3))
    first, second = list(chunks(good, [25, 10]))
    buf.extend(first)
    before = _state(buf)
    mutate(second)
    with pytest.raises(exc) as info:
        buf.extend(second)
    msg = str(info.value)
    for w in words:
        assert w in msg, (w, msg)
    _assert_unchanged(before, buf)


def test_too_large_batch_and_empty_buffer():
    rng = np.random.default_rng(9)
    buf = ReplayBuffer(10, seed=0)
    with pytest.raises(ReplayBufferError, match="empty"):
        buf.sample(4)
    buf.extend(make_stream(rng, 5))
    before = _state(buf)
    with pytest.raises(ReplayBufferError, match="larger than the capacity 10"):
        buf.extend(make_stream(rng, 11))
    _assert_unchanged(before, buf)
    with pytest.raises(ReplayBufferError, match="batch_size"):
        buf.sample(0)
    with pytest.raises(ReplayBufferError, match="expects a dict"):
        buf.extend([1, 2, 3])


def test_rejected_extend_keeps_sampling_stream():
    """After a rejected batch the buffer samples exactly as one that never saw it."""
    rng = np.random.default_rng(10)
    s = make_stream(rng, 50)
    a, b = ReplayBuffer(60, seed=5), ReplayBuffer(60, seed=5)
    a.extend(s)
    b.extend(s)
    bad = make_stream(rng, 5)
    bad["obs"]["state"] = bad["obs"]["state"].astype(np.complex64)
    with pytest.raises(ReplayBufferError):
        a.extend(bad)
    assert torch.equal(a.sample(16)["index"], b.sample(16)["index"])


def test_output_buffers_are_reused_only_when_released():
    rng = np.random.default_rng(11)
    buf = ReplayBuffer(200, seed=0)
    buf.extend(make_stream(rng, 150))
    td1 = buf.sample(32)
    derived = td1["action"][:, 0]  # a view keeps the whole batch buffer alive
    expected = derived.clone()
    held_ptr = derived.untyped_storage().data_ptr()
    del td1
    for _ in range(10):
        assert buf.sample(32)["action"].untyped_storage().data_ptr() != held_ptr
    assert torch.equal(derived, expected)  # the held batch was never overwritten
    del derived
    ptrs = {buf.sample(32)["action"].untyped_storage().data_ptr() for _ in range(8)}
    assert len(ptrs) == 1  # released buffers are reused
