"""Replay-buffer benchmark: robotrl vs TorchRL, cpprb and plain NumPy, in one process on the same data.

    python -m bench.replay            # full: HalfCheetah shapes @ 1M, images 3x84x84 uint8 @ 100k
    python -m bench.replay --quick    # a few minutes: images @ 20k, shorter timings

Measured per library (batch 256): extend throughput (chunks of 1000 transitions, and one
transition per call), uniform sample throughput (the full ``sample()`` call: robotrl and TorchRL
return a TensorDict, cpprb and NumPy return dicts of NumPy arrays), prioritised sample + priority
update, n-step (n=3) sampling, sequence (T=16) sampling, and memory held after filling vs the raw
bytes of the transitions (observation, action, reward, terminated, truncated; next observations
are not counted as raw since they are the following observations).

Peers: TorchRL ``ReplayBuffer(LazyTensorStorage, RandomSampler)`` (``SliceSampler`` for sequences;
its prioritised sampler needs a C++ extension that does not load here), cpprb (``next_of="obs"``
memory sharing; ``PrioritizedReplayBuffer``; n-step via its ``Nstep`` option, computed when
adding), and a plain NumPy buffer that stores next observations explicitly and gathers with fancy
indexing.
"""
from __future__ import annotations

import argparse
import gc
import importlib.metadata as md
import sys
import time
import warnings
from typing import Any

import numpy as np
import torch

from bench.common import load_average, row, rss_bytes, throughput, write_result

B = 256
N_STEP = 3
SEQ_T = 16
GAMMA = 0.99
CHUNK = 1000

warnings.filterwarnings("ignore")


def version(pkg: str) -> str:
    try:
        return md.version(pkg)
    except md.PackageNotFoundError:
        return "?"


# ------------------------------------------------------------------------------------- data
def make_data(n: int, obs_shape: tuple, obs_dtype: Any, ep_len: int, seed: int = 0) -> dict:
    """``n`` transitions of episodes of ``ep_len`` steps (HalfCheetah-like: truncated, never
    terminated, except a few terminations to exercise the n-step paths)."""
    rng = np.random.default_rng(seed)
    if np.dtype(obs_dtype) == np.uint8:
        obs = rng.integers(0, 256, (n + 1,) + obs_shape, dtype=np.uint8)
    else:
        obs = rng.standard_normal((n + 1,) + obs_shape, dtype=np.float32)
    step = np.arange(n)
    trunc = (step % ep_len) == ep_len - 1
    term = (rng.random(n) < 0.001) & ~trunc
    return {
        "obs": obs[:-1],
        "next_obs": obs[1:],  # a view: the final next observation of an episode is the real one
        "action": rng.uniform(-1, 1, (n, 6)).astype(np.float32),
        "reward": rng.standard_normal(n).astype(np.float32),
        "terminated": term,
        "truncated": trunc,
        "episode": np.cumsum(np.concatenate([[0], (term | trunc)[:-1]])).astype(np.int64),
    }


def chunk_of(data: dict, a: int, b: int) -> dict:
    return {k: v[a:b] for k, v in data.items()}


# ------------------------------------------------------------------------------------ peers
class RobotRL:
    name = "robotrl"

    def __init__(self, cap: int, obs_shape: tuple, obs_dtype: Any, prioritized: bool = False) -> None:
        from robotrl.data.replay import PrioritizedReplayBuffer, ReplayBuffer

        spec = {"obs": {"state": (obs_shape, obs_dtype)}, "action": ((6,), np.float32)}
        cls = PrioritizedReplayBuffer if prioritized else ReplayBuffer
        self.rb = cls(cap, spec, seed=0, gamma=GAMMA)

    def extend(self, c: dict) -> None:
        self.rb.extend({"obs": {"state": c["obs"]}, "action": c["action"], "reward": c["reward"],
                        "terminated": c["terminated"], "truncated": c["truncated"],
                        "next": {"obs": {"state": c["next_obs"]}}})

    def sample(self) -> Any:
        return self.rb.sample(B)

    def sample_nstep(self) -> Any:
        return self.rb.sample(B, n_step=N_STEP)

    def sample_seq(self) -> Any:
        return self.rb.sample_sequence(B, SEQ_T)

    def per_step(self, p: np.ndarray) -> None:
        td = self.rb.sample(B)
        self.rb.update_priorities(td["index"], p)

    def nbytes(self) -> int:
        return self.rb.nbytes


class TorchRL:
    name = "torchrl"

    def __init__(self, cap: int, obs_shape: tuple, obs_dtype: Any, seq: bool = True) -> None:
        from torchrl.data import LazyTensorStorage, ReplayBuffer
        from torchrl.data.replay_buffers.samplers import RandomSampler, SliceSampler

        self.storage = LazyTensorStorage(cap)
        self.rb = ReplayBuffer(storage=self.storage, sampler=RandomSampler(), batch_size=B)
        self.seq = ReplayBuffer(storage=self.storage, batch_size=B * SEQ_T,
                                sampler=SliceSampler(slice_len=SEQ_T, traj_key="episode", strict_length=False)) if seq else None

    def extend(self, c: dict) -> None:
        from tensordict import TensorDict

        n = len(c["action"])
        td = TensorDict({
            "obs": {"state": torch.from_numpy(c["obs"])}, "action": torch.from_numpy(c["action"]),
            "reward": torch.from_numpy(c["reward"]), "terminated": torch.from_numpy(c["terminated"]),
            "truncated": torch.from_numpy(c["truncated"]), "episode": torch.from_numpy(c["episode"]),
            "next": {"obs": {"state": torch.from_numpy(c["next_obs"])}},
        }, batch_size=[n])
        self.rb.extend(td)

    def sample(self) -> Any:
        return self.rb.sample()

    def sample_seq(self) -> Any:
        return self.seq.sample()

    def nbytes(self) -> int:
        td = self.storage._storage
        # "episode" is stored only for the SliceSampler; not counted
        return int(sum(v.numel() * v.element_size() for k, v in td.items(True, True) if k != "episode"))


class Cpprb:
    name = "cpprb"

    def __init__(self, cap: int, obs_shape: tuple, obs_dtype: Any, kind: str = "uniform") -> None:
        import cpprb

        env = {"obs": {"shape": obs_shape, "dtype": obs_dtype}, "act": {"shape": 6}, "rew": {}, "done": {}}
        self.kind = kind
        if kind == "prioritized":
            self.rb = cpprb.PrioritizedReplayBuffer(cap, env, next_of="obs", alpha=0.6)
        elif kind == "nstep":
            env["next_obs"] = {"shape": obs_shape, "dtype": obs_dtype}
            self.rb = cpprb.ReplayBuffer(cap, env, Nstep={"size": N_STEP, "gamma": GAMMA, "rew": "rew", "next": "next_obs"})
        else:
            self.rb = cpprb.ReplayBuffer(cap, env, next_of="obs")

    def extend(self, c: dict) -> None:
        done = c["terminated"] | c["truncated"]
        self.rb.add(obs=c["obs"], act=c["action"], rew=c["reward"], next_obs=c["next_obs"],
                    done=c["terminated"].astype(np.float32))
        if done[-1]:
            # cpprb needs on_episode_end() at episode ends (it caches the last next_obs there);
            # chunks here end at episode boundaries or are single steps
            self.rb.on_episode_end()

    def sample(self) -> Any:
        return self.rb.sample(B)

    def sample_nstep(self) -> Any:
        return self.rb.sample(B)

    def per_step(self, p: np.ndarray) -> None:
        s = self.rb.sample(B, beta=0.4)
        self.rb.update_priorities(s["indexes"], p)


class NumPyBuffer:
    """A plain NumPy replay buffer: explicit next observations, fancy-index gathers."""

    name = "numpy"

    def __init__(self, cap: int, obs_shape: tuple, obs_dtype: Any) -> None:
        self.cap, self.pos, self.size = cap, 0, 0
        self.obs = np.zeros((cap,) + obs_shape, obs_dtype)
        self.next_obs = np.zeros((cap,) + obs_shape, obs_dtype)
        self.action = np.zeros((cap, 6), np.float32)
        self.reward = np.zeros(cap, np.float32)
        self.term = np.zeros(cap, bool)
        self.trunc = np.zeros(cap, bool)
        self.episode = np.zeros(cap, np.int64)
        self.rng = np.random.default_rng(0)
        self.fields = [("obs", "obs"), ("next_obs", "next_obs"), ("action", "action"), ("reward", "reward"),
                       ("term", "terminated"), ("trunc", "truncated"), ("episode", "episode")]

    def extend(self, c: dict) -> None:
        n = len(c["action"])
        idx = (self.pos + np.arange(n)) % self.cap
        for attr, key in self.fields:
            getattr(self, attr)[idx] = c[key]
        self.pos = (self.pos + n) % self.cap
        self.size = min(self.size + n, self.cap)

    def _idx(self) -> np.ndarray:
        return self.rng.integers(0, self.size, B)

    def sample(self) -> dict:
        i = self._idx()
        return {"obs": self.obs[i], "action": self.action[i], "reward": self.reward[i], "terminated": self.term[i],
                "truncated": self.trunc[i], "next_obs": self.next_obs[i]}

    def sample_nstep(self) -> dict:
        i = self._idx()
        newest = (self.pos - 1) % self.cap
        ret = np.zeros(B, np.float64)
        g = np.ones(B, np.float64)
        alive = np.ones(B, bool)
        termd = np.zeros(B, bool)
        last = i.copy()
        j = i
        for _ in range(N_STEP):
            ret += np.where(alive, g * self.reward[j], 0.0)
            last = np.where(alive, j, last)
            g = np.where(alive, g * GAMMA, g)
            t = self.term[j]
            termd |= t & alive
            alive &= ~(t | self.trunc[j] | (j == newest))
            j = (j + 1) % self.cap
        return {"obs": self.obs[i], "action": self.action[i], "reward": ret.astype(np.float32),
                "discount": np.where(termd, 0.0, g).astype(np.float32), "next_obs": self.next_obs[last]}

    def sample_seq(self) -> dict:
        i = self._idx()
        w = (i[:, None] + np.arange(SEQ_T)) % self.cap
        newest = (self.pos - 1) % self.cap
        same = self.episode[w] == self.episode[i][:, None]
        # never past the newest transition
        past = np.cumsum(w == newest, axis=1) - (w == newest)
        valid = np.cumprod(same & (past == 0), axis=1).astype(bool)
        last = w[np.arange(B), valid.sum(1) - 1]
        w = np.where(valid, w, last[:, None])
        return {"obs": self.obs[w], "action": self.action[w], "reward": self.reward[w], "terminated": self.term[w],
                "truncated": self.trunc[w], "next_obs": self.next_obs[w], "mask": valid}

    def nbytes(self) -> int:
        return sum(getattr(self, a).nbytes for a, _ in self.fields if a != "episode")


# -------------------------------------------------------------------------------- measuring
def fill(lib: Any, data: dict, cap: int, timed: bool = False) -> float:
    """Extend ``lib`` with ``cap`` transitions in chunks of CHUNK.

    With ``timed``, fill once, then time a second pass that overwrites the whole buffer: the
    steady state of a long run, without first-touch page faults of fresh storage (libraries that
    touch their memory at construction would otherwise look faster)."""
    def one_pass() -> float:
        t0 = time.perf_counter()
        for a in range(0, cap, CHUNK):
            lib.extend(chunk_of(data, a, min(a + CHUNK, cap)))
        return cap / (time.perf_counter() - t0)

    rate = one_pass()
    return one_pass() if timed else rate


def per_step_extend(make: Any, data: dict, steps: int) -> float:
    lib = make()
    fill(lib, data, steps)  # touch the first slots, then time the overwriting pass
    singles = [chunk_of(data, a, a + 1) for a in range(steps)]
    t0 = time.perf_counter()
    for c in singles:
        lib.extend(c)
    rate = steps / (time.perf_counter() - t0)
    del lib
    gc.collect()
    return rate


def run_config(label: str, cap: int, obs_shape: tuple, obs_dtype: Any, quick: bool, log: Any) -> tuple[list, dict]:
    ep_len = 1000
    min_time = 0.3 if quick else 1.0
    repeats = 3 if quick else 5
    seq_time = min_time if np.dtype(obs_dtype) != np.uint8 else min_time * 2
    data = make_data(cap, obs_shape, obs_dtype, ep_len)
    raw = int(np.prod(obs_shape)) * np.dtype(obs_dtype).itemsize + 6 * 4 + 4 + 1 + 1
    res: dict = {}
    p = np.random.default_rng(1).uniform(0.1, 2.0, B)

    def measure(make: Any) -> None:
        r0 = rss_bytes()
        lib = make()
        name = lib.name
        log(f"[{label}] {name}: filling {cap}")
        res[(name, "extend")] = fill(lib, data, cap, timed=True)
        res[(name, "rss")] = rss_bytes() - r0
        if hasattr(lib, "nbytes"):
            res[(name, "nbytes")] = lib.nbytes()
        res[(name, "uniform")] = throughput(lib.sample, B, min_time=min_time, repeats=repeats)
        log(f"[{label}] {name}: uniform {res[(name, 'uniform')]:.3g}/s extend {res[(name, 'extend')]:.3g}/s")
        if hasattr(lib, "sample_nstep") and name != "cpprb":
            res[(name, "nstep")] = throughput(lib.sample_nstep, B, min_time=min_time, repeats=repeats)
        if hasattr(lib, "sample_seq"):
            res[(name, "seq")] = throughput(lib.sample_seq, B * SEQ_T, min_time=seq_time, repeats=repeats)

    # warm up (Numba kernels, TorchRL/TensorDict code paths) so JIT memory and compile time stay
    # out of the measurements
    for make in (lambda: RobotRL(2 * CHUNK, obs_shape, obs_dtype), lambda: TorchRL(2 * CHUNK, obs_shape, obs_dtype),
                 lambda: RobotRL(2 * CHUNK, obs_shape, obs_dtype, prioritized=True)):
        w = make()
        fill(w, data, 2 * CHUNK)
        w.sample()
        if hasattr(w, "sample_nstep"):
            w.sample_nstep()
            w.per_step(p) if w.rb.prioritized else w.sample_seq()
        else:
            w.sample_seq()
        del w
    gc.collect()
    # uniform / n-step / sequence / extend / memory: one library alive at a time
    for make in (lambda: RobotRL(cap, obs_shape, obs_dtype), lambda: TorchRL(cap, obs_shape, obs_dtype),
                 lambda: Cpprb(cap, obs_shape, obs_dtype), lambda: NumPyBuffer(cap, obs_shape, obs_dtype)):
        measure(make)
        gc.collect()
    # prioritised sample + update
    for name, make in (("robotrl", lambda: RobotRL(cap, obs_shape, obs_dtype, prioritized=True)),
                       ("cpprb", lambda: Cpprb(cap, obs_shape, obs_dtype, kind="prioritized"))):
        lib = make()
        fill(lib, data, cap)
        res[(name, "per")] = throughput(lambda: lib.per_step(p), B, min_time=min_time, repeats=repeats)
        if name == "robotrl":
            res[(name, "per_nbytes")] = lib.nbytes()
        log(f"[{label}] {name}: prioritised {res[(name, 'per')]:.3g}/s")
        del lib
        gc.collect()
    # cpprb n-step (computed when adding)
    lib = Cpprb(cap, obs_shape, obs_dtype, kind="nstep")
    fill(lib, data, cap)
    res[("cpprb", "nstep")] = throughput(lib.sample_nstep, B, min_time=min_time, repeats=repeats)
    del lib
    gc.collect()
    # one transition per extend call (online RL with one env)
    if np.dtype(obs_dtype) != np.uint8:
        steps = 5000 if quick else 20000
        res[("robotrl", "extend1")] = per_step_extend(lambda: RobotRL(steps, obs_shape, obs_dtype), data, steps)
        res[("torchrl", "extend1")] = per_step_extend(lambda: TorchRL(steps, obs_shape, obs_dtype, seq=False), data, steps)
        res[("cpprb", "extend1")] = per_step_extend(lambda: Cpprb(steps, obs_shape, obs_dtype), data, steps)
        res[("numpy", "extend1")] = per_step_extend(lambda: NumPyBuffer(steps, obs_shape, obs_dtype), data, steps)
    del data
    gc.collect()
    return rows_for(label, cap, raw, res), res


def rows_for(label: str, cap: int, raw: int, res: dict) -> list:
    tr = f"torchrl {version('torchrl')}"
    cp = f"cpprb {version('cpprb')}"
    npy = f"numpy {np.__version__} (plain buffer)"
    peers = {"torchrl": tr, "cpprb": cp, "numpy": npy}
    cap_s = f"{cap // 1000}k" if cap < 1_000_000 else f"{cap // 1_000_000}M"
    tag = f"{label}, batch {B}, {cap_s}"
    rows = []
    lowdim = "HalfCheetah" in label
    r = res[("robotrl", "uniform")]
    for peer in ("torchrl", "cpprb", "numpy"):
        goal = met = None
        if peer == "torchrl":
            goal, met = ">= 3x peer", r >= 3 * res[(peer, "uniform")]
        rows.append(row(f"uniform sample, {tag}", "transitions/s", r, peers[peer], res[(peer, "uniform")], goal, met))
    if lowdim:
        rows.append(row(f"uniform sample, {tag}", "transitions/s", r, None, None, ">= 1e7 /s", r >= 1e7))
    for peer in ("torchrl", "cpprb", "numpy"):
        rows.append(row(f"extend (chunks of {CHUNK}, overwriting a full buffer), {tag}", "transitions/s", res[("robotrl", "extend")],
                        peers[peer], res[(peer, "extend")]))
    if ("robotrl", "extend1") in res:
        for peer in ("torchrl", "cpprb", "numpy"):
            rows.append(row(f"extend (1 transition per call, buffer of 20k/5k), {tag}", "transitions/s", res[("robotrl", "extend1")],
                            peers[peer], res[(peer, "extend1")]))
    rows.append(row(f"prioritised sample + update_priorities, {tag}", "transitions/s", res[("robotrl", "per")],
                    cp, res[("cpprb", "per")], ">= 1x peer", res[("robotrl", "per")] >= res[("cpprb", "per")]))
    rows.append(row(f"n-step (n={N_STEP}) sample, {tag}", "transitions/s", res[("robotrl", "nstep")],
                    cp + " (Nstep computed at add time)", res[("cpprb", "nstep")]))
    rows.append(row(f"n-step (n={N_STEP}) sample, {tag}", "transitions/s", res[("robotrl", "nstep")],
                    npy + " (at sample time)", res[("numpy", "nstep")]))
    rows.append(row(f"sequence (T={SEQ_T}) sample, {tag}", "transitions/s", res[("robotrl", "seq")],
                    tr + " (SliceSampler)", res[("torchrl", "seq")]))
    rows.append(row(f"sequence (T={SEQ_T}) sample, {tag}", "transitions/s", res[("robotrl", "seq")],
                    npy, res[("numpy", "seq")]))
    mem = res[("robotrl", "nbytes")] / (raw * cap)
    rss = res[("robotrl", "rss")] / (raw * cap)
    for peer in ("torchrl", "numpy"):
        rows.append(row(f"memory after fill / raw bytes ({raw} B/transition), {tag}", "x raw (array bytes)", mem,
                        peers[peer], res[(peer, "nbytes")] / (raw * cap), "<= 1.2" if peer == "torchrl" else None,
                        (mem <= 1.2) if peer == "torchrl" else None))
    rows.append(row(f"memory after fill / raw bytes ({raw} B/transition), {tag}", "x raw (RSS growth)", rss,
                    cp, res[("cpprb", "rss")] / (raw * cap)))
    rows.append(row(f"memory of the prioritised buffer / raw bytes, {tag}", "x raw (array bytes)",
                    res[("robotrl", "per_nbytes")] / (raw * cap)))
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="images at 20k capacity and shorter timings (a few minutes)")
    ap.add_argument("--no-write", action="store_true", help="print only; do not write bench/results/replay.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t_start = time.time()
    load_before = load_average()

    def log(msg: str) -> None:
        print(f"{time.time() - t_start:7.1f}s {msg}", flush=True)

    rows: list = []
    r, _ = run_config("HalfCheetah obs 17 / action 6", 1_000_000, (17,), np.float32, args.quick, log)
    rows += r
    img_cap = 20_000 if args.quick else 100_000
    r, _ = run_config("image obs 3x84x84 uint8 / action 6", img_cap, (3, 84, 84), np.uint8, args.quick, log)
    rows += r
    for x in rows:
        ratio = "" if x["ratio"] is None else f" ratio {x['ratio']:.2f}"
        met = "" if x["met"] is None else f" met={x['met']}"
        print(f"{x['case']:<75} {x['metric']:<20} robotrl {x['robotrl']:.4g} | {x['peer']}: {x['peer_value']}{ratio}{met}")
    import numba

    notes = [
        f"load average before / after: {load_before} / {load_average()} (other engineers' jobs share the 2 cores)",
        f"numba {numba.__version__} ({numba.get_num_threads()} threads), torch {torch.__version__} (1 thread), "
        f"tensordict {version('tensordict')}, numpy {np.__version__}",
        "robotrl and TorchRL samples are TensorDicts (robotrl's include next obs, discount and index); cpprb and the "
        "NumPy buffer return dicts of NumPy arrays (no torch conversion), which favours them",
        "each library is filled and measured with only itself alive (images are GBs); throughput is the median of "
        "several timed runs",
        "memory: bytes of the buffer's arrays after filling (robotrl: storage + next pointers + side storage of "
        "episode-final next observations; TorchRL/NumPy store next observations explicitly); cpprb by RSS growth",
    ]
    cmd = "python -m bench.replay" + (" --quick" if args.quick else "")
    if not args.no_write:
        path = write_result("replay", cmd, rows, args.quick, notes=notes)
        log(f"wrote {path} and bench/RESULTS.md")


if __name__ == "__main__":
    sys.exit(main())
