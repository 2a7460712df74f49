"""`OnlineTrainer`: collect -> replay buffer -> ``utd`` updates per env step -> periodic evaluation
-> atomic checkpoint / exact resume. It never knows which algorithm it runs (the Algorithm
contract of :mod:`robotrl.rl.base`).

Also used for offline-to-online fine-tuning: pass ``offline_buffer`` (+ ``offline_ratio``) to keep
replaying the dataset (RLPD / IQL-style fine-tuning), ``demo_buffer`` (+ ``demo_ratio``) for
ARSQ's demonstration batches (samples carry ``"from_demo"``), or ``warmup="policy"`` with no
offline buffer for WSRL (warm-up rollouts from the frozen pre-trained policy seed the empty
online buffer; no offline data is replayed).

Algorithms act in ``[-1, 1]``; the trainer maps actions to the environment's bounds.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from tensordict import TensorDict

from robotrl.data.replay import ReplayBuffer
from robotrl.engine.checkpoint import load_checkpoint, save_checkpoint
from robotrl.engine.logger import Logger
from robotrl.utils.seeding import rng_state, seed_everything, set_rng_state

__all__ = ["OnlineConfig", "OnlineTrainer", "ActionScaler", "mix_batches", "env_d4rl_name", "plot_rl_curve"]


@dataclass
class OnlineConfig:
    total_env_steps: int = 100_000
    num_envs: int = 1
    start_steps: int = 5_000          # warm-up env steps before the first update
    warmup: str = "random"            # "random" uniform actions | "policy" (WSRL: frozen policy rollouts)
    batch_size: int = 256
    utd: float = 1.0                  # gradient updates per environment step
    buffer_size: int = 1_000_000
    n_step: int = 1
    gamma: float = 0.99
    offline_ratio: float = 0.0        # fraction of each batch from offline_buffer
    #: the non-demo part of each batch is drawn from offline_buffer ∪ the online buffer in proportion to
    #: their sizes (ARSQ's release: the online buffer starts as a copy of the dataset); offline_ratio unused
    offline_union: bool = False
    demo_ratio: float = 0.0           # fraction of each batch from demo_buffer (flagged from_demo)
    grow_demo_threshold: float | None = None  # add online episodes with return >= this to the demo buffer
    reward_scale: float = 1.0         # rewards are stored multiplied by this (e.g. IQL's dataset scaling)
    eval_every: int = 10_000          # env steps
    eval_episodes: int = 10
    eval_num_envs: int = 5
    eval_seed: int = 100_000
    log_every: int = 1_000            # env steps
    ckpt_every: int = 10_000          # env steps
    save_buffer: bool = True          # checkpoint the replay buffer too (exact resume)
    seed: int = 0
    progress: bool = True
    tensorboard: bool = True


def union_split(n: int, n_data: int, n_online: int) -> int:
    """How many of ``n`` samples drawn uniformly from dataset ∪ online data come from the dataset (the
    expected count, rounded: a stratified draw that needs no random numbers and resumes exactly)."""
    return int(round(n * n_data / max(n_data + n_online, 1)))


class ActionScaler:
    """Maps ``[-1, 1]`` to a Box's bounds (identity for ``[-1, 1]`` boxes)."""

    def __init__(self, space: Any) -> None:
        self.low = np.asarray(space.low, dtype=np.float64)
        self.high = np.asarray(space.high, dtype=np.float64)
        if not (np.all(np.isfinite(self.low)) and np.all(np.isfinite(self.high))):
            raise ValueError(f"RL algorithms need a bounded Box action space, got {space}")
        self.identity = bool(np.all(self.low == -1) and np.all(self.high == 1))
        self.dtype = space.dtype

    def to_env(self, a: np.ndarray) -> np.ndarray:
        a = np.clip(a, -1.0, 1.0)
        if self.identity:
            return a.astype(self.dtype)
        return (self.low + (a + 1.0) * 0.5 * (self.high - self.low)).astype(self.dtype)

    def from_env(self, a: np.ndarray) -> np.ndarray:
        if self.identity:
            return np.asarray(a, np.float32)
        return (2.0 * (np.asarray(a) - self.low) / (self.high - self.low) - 1.0).astype(np.float32)


def env_d4rl_name(env_cfg: Any) -> str | None:
    """The D4RL body name of a gym_mujoco env config (``"hopper"``...), or None."""
    from robotrl.envs.registry import D4RL_NAMES, _coerce_cfg

    env_id = _coerce_cfg(env_cfg, {}).id
    return D4RL_NAMES.get(env_id.split("/")[-1].split("-")[0])


_BATCH_KEYS = ("action", "reward", "terminated", "discount")


def mix_batches(parts: list[tuple[TensorDict, bool]], obs_keys: tuple[str, ...] = ("state",)) -> TensorDict:
    """Concatenate replay samples (same fields) into one batch with a boolean ``"from_demo"``."""
    out: dict[Any, torch.Tensor] = {}
    keys = [("obs", k) for k in obs_keys] + [("next", "obs", k) for k in obs_keys] + list(_BATCH_KEYS)
    for key in keys:
        out[key] = torch.cat([td[key].reshape(td.batch_size[0], *td[key].shape[1:]) for td, _ in parts], 0)
    out["from_demo"] = torch.cat([torch.full((td.batch_size[0],), flag, dtype=torch.bool) for td, flag in parts])
    n = sum(td.batch_size[0] for td, _ in parts)
    td = TensorDict({}, batch_size=[n])
    for k, v in out.items():
        td.set(k, v)
    return td


def make_online_buffer(obs_dim: int, act_dim: int, capacity: int, seed: int, n_step: int, gamma: float) -> ReplayBuffer:
    spec = {"obs": {"state": ((obs_dim,), "float32")}, "action": ((act_dim,), "float32")}
    return ReplayBuffer(capacity, spec, seed=seed, n_step=n_step, gamma=gamma)


class OnlineTrainer:
    """Run (or resume) online RL for one algorithm on one environment config.

    Args:
        algo: an Algorithm (``update``, ``act``, ``state_dict``).
        env_cfg: anything :func:`robotrl.envs.make_env` accepts (``"InvertedPendulum-v5"``, a dict ...).
        cfg: :class:`OnlineConfig`.
        run_dir: where ``checkpoints/``, ``metrics.jsonl``, ``tb/`` and ``learning_curve.png`` go.
        offline_buffer / demo_buffer: optional replay buffers mixed into every batch.
        step_offset: added to the env step in the logs (e.g. the offline gradient steps already done), so
            one learning curve shows offline then online training.
    """

    def __init__(self, algo: Any, env_cfg: Any, cfg: OnlineConfig, run_dir: str | Path,
                 offline_buffer: ReplayBuffer | None = None, demo_buffer: ReplayBuffer | None = None,
                 log_prefix: str = "online", step_offset: int = 0) -> None:
        self.algo, self.env_cfg, self.cfg = algo, env_cfg, cfg
        self.run_dir = Path(run_dir)
        self.offline_buffer, self.demo_buffer = offline_buffer, demo_buffer
        self.log_prefix = log_prefix
        self.step_offset = int(step_offset)
        if (cfg.offline_ratio > 0 or cfg.offline_union) and offline_buffer is None:
            raise ValueError("OnlineConfig.offline_ratio > 0 / offline_union needs an offline_buffer")
        if cfg.demo_ratio > 0 and demo_buffer is None:
            raise ValueError("OnlineConfig.demo_ratio > 0 needs a demo_buffer")
        if cfg.warmup not in ("random", "policy"):
            raise ValueError(f"OnlineConfig.warmup must be 'random' or 'policy', got {cfg.warmup!r}")
        self.ckpt_path = self.run_dir / "checkpoints" / "online_last.pt"
        self.buffer_path = self.run_dir / "checkpoints" / "online_buffer"

    # ------------------------------------------------------------------ helpers
    def _evaluate(self, scaler: ActionScaler, n_episodes: int) -> dict[str, Any]:
        return evaluate_algo(self.algo, self.env_cfg, n_episodes, num_envs=self.cfg.eval_num_envs,
                             seed=self.cfg.eval_seed)

    def _sample(self, buffer: ReplayBuffer) -> TensorDict:
        c = self.cfg
        n_demo = int(round(c.batch_size * c.demo_ratio))
        if c.offline_union:  # uniform over dataset ∪ online data, split in proportion to the sizes
            n_off = union_split(c.batch_size - n_demo, len(self.offline_buffer), len(buffer))  # type: ignore[arg-type]
        else:
            n_off = int(round(c.batch_size * c.offline_ratio))
        n_on = c.batch_size - n_off - n_demo
        parts = []
        if n_on > 0:
            parts.append((buffer.sample(n_on), False))
        if n_off > 0:
            parts.append((self.offline_buffer.sample(n_off), False))  # type: ignore[union-attr]
        if n_demo > 0:
            parts.append((self.demo_buffer.sample(n_demo), True))  # type: ignore[union-attr]
        return mix_batches(parts)

    # ------------------------------------------------------------------ main loop
    def run(self) -> dict[str, Any]:
        from tqdm.auto import tqdm

        from robotrl.envs import make_env

        c = self.cfg
        algo = self.algo
        gen = seed_everything(c.seed)
        envs = [make_env(self.env_cfg) for _ in range(c.num_envs)]
        scaler = ActionScaler(envs[0].action_space)
        obs_dim = int(envs[0].observation_space["state"].shape[0])
        act_dim = int(envs[0].action_space.shape[0])
        if obs_dim != algo.obs_dim or act_dim != algo.act_dim:
            raise ValueError(f"{self.env_cfg}: env has obs {obs_dim} / action {act_dim} dims, the algorithm "
                             f"was built for {algo.obs_dim} / {algo.act_dim}")
        state = {"env_steps": 0, "updates": 0, "episodes": 0, "update_debt": 0.0, "recent_returns": []}
        buffer = None
        if self.ckpt_path.exists():
            blob = load_checkpoint(self.ckpt_path)
            algo.load_state_dict(blob["algo"])
            state.update(blob["state"])
            set_rng_state(blob["rng"], gen)
            if self.buffer_path.exists():
                buffer = ReplayBuffer.load(self.buffer_path)
            if blob.get("demo_buffer") and self.demo_buffer is not None and (self.run_dir / "checkpoints" / "online_demo").exists():
                self.demo_buffer = type(self.demo_buffer).load(self.run_dir / "checkpoints" / "online_demo")
            print(f"[robotrl] resuming online training in {self.run_dir} at env step {state['env_steps']}")
        if buffer is None:
            buffer = make_online_buffer(obs_dim, act_dim, c.buffer_size, c.seed, c.n_step, c.gamma)
        logger = Logger(self.run_dir, tensorboard=c.tensorboard)
        (self.run_dir / "online_config.json").write_text(json.dumps(asdict(c), indent=2, default=str))

        obs = []
        for i, e in enumerate(envs):
            o, _ = e.reset(seed=c.seed * 1000 + state["episodes"] + i)
            e.action_space.seed(c.seed * 1000 + i + state["env_steps"])
            obs.append(o["state"])
        ep_ret = np.zeros(c.num_envs)
        ep_len = np.zeros(c.num_envs, dtype=np.int64)
        episode_rows: list[list[dict]] = [[] for _ in envs]
        pending: list[list[dict]] = [[] for _ in envs]
        flush_at = 1 if c.num_envs == 1 else max(8, 2 * c.n_step)
        last_eval: dict[str, Any] = {}
        t0, u0 = time.time(), state["updates"]
        bar = tqdm(total=c.total_env_steps, initial=state["env_steps"], disable=not c.progress,
                   desc=f"online {algo.name}", dynamic_ncols=True)
        metrics: dict[str, float] = {}
        try:
            while state["env_steps"] < c.total_env_steps:
                warm = state["env_steps"] < c.start_steps
                ob = np.stack(obs)
                if warm and c.warmup == "random":
                    acts = np.stack([scaler.from_env(e.action_space.sample()) for e in envs])
                else:
                    acts = algo.act({"state": ob}, deterministic=False)
                for i, e in enumerate(envs):
                    o2, r, term, trunc, _ = e.step(scaler.to_env(acts[i]))
                    row = {"obs": ob[i], "action": acts[i].astype(np.float32), "reward": np.float32(r * c.reward_scale),
                           "terminated": bool(term), "truncated": bool(trunc), "next_obs": o2["state"]}
                    pending[i].append(row)
                    if self.demo_buffer is not None and c.grow_demo_threshold is not None:
                        episode_rows[i].append(row)
                    ep_ret[i] += r
                    ep_len[i] += 1
                    done = term or trunc
                    if done or len(pending[i]) >= flush_at:
                        buffer.extend(_rows_to_batch(pending[i]))
                        pending[i] = []
                    if done:
                        state["episodes"] += 1
                        state["recent_returns"] = (state["recent_returns"] + [float(ep_ret[i])])[-20:]
                        logger.log(self.step_offset + state["env_steps"], {"episode_return": ep_ret[i], "episode_length": ep_len[i]},
                                   prefix=f"{self.log_prefix}_rollout")
                        if (self.demo_buffer is not None and c.grow_demo_threshold is not None
                                and ep_ret[i] >= c.grow_demo_threshold):
                            self.demo_buffer.extend(_rows_to_batch(episode_rows[i]))
                        episode_rows[i] = []
                        ep_ret[i], ep_len[i] = 0.0, 0
                        o2, _ = e.reset(seed=c.seed * 1000 + state["episodes"] + c.num_envs)
                    obs[i] = o2["state"]
                state["env_steps"] += c.num_envs
                bar.update(c.num_envs)
                # ---- updates (utd per env step, fractional UTD carried over)
                if not warm and len(buffer) > 0:  # updates start after start_steps (sampling with replacement)
                    state["update_debt"] += c.utd * c.num_envs
                    while state["update_debt"] >= 1.0:
                        metrics = algo.update(self._sample(buffer))
                        state["updates"] += 1
                        state["update_debt"] -= 1.0
                s = state["env_steps"]
                if metrics and s % c.log_every < c.num_envs:
                    dt = time.time() - t0
                    metrics = dict(metrics, updates=state["updates"],
                                   updates_per_s=(state["updates"] - u0) / max(dt, 1e-9))
                    logger.log(self.step_offset + s, metrics, prefix=f"{self.log_prefix}_train")
                    if state["recent_returns"]:
                        bar.set_postfix(ret=f"{np.mean(state['recent_returns'][-5:]):.1f}")
                if c.eval_every and s % c.eval_every < c.num_envs:
                    last_eval = self._evaluate(scaler, c.eval_episodes)
                    logger.log(self.step_offset + s, _eval_scalars(last_eval), prefix=f"{self.log_prefix}_eval")
                    plot_rl_curve(self.run_dir, title=f"{algo.name} on {_env_id(self.env_cfg)}")
                if c.ckpt_every and s % c.ckpt_every < c.num_envs:
                    self._save(algo, state, gen, buffer, pending)
        finally:
            bar.close()
            logger.close()
            for e in envs:
                e.close()
        self._save(algo, state, gen, buffer, pending)
        return {"env_steps": state["env_steps"], "updates": state["updates"], "episodes": state["episodes"],
                "recent_returns": state["recent_returns"], "last_eval": last_eval,
                "updates_per_s": (state["updates"] - u0) / max(time.time() - t0, 1e-9)}

    def _save(self, algo: Any, state: dict, gen: np.random.Generator, buffer: ReplayBuffer, pending: list) -> None:
        if self.cfg.save_buffer:
            buffer.save(self.buffer_path)
            if self.demo_buffer is not None and self.cfg.grow_demo_threshold is not None:
                self.demo_buffer.save(self.run_dir / "checkpoints" / "online_demo")
        save_checkpoint(self.ckpt_path, {"algo": algo.state_dict(), "state": dict(state), "rng": rng_state(gen),
                                         "demo_buffer": self.demo_buffer is not None and self.cfg.grow_demo_threshold is not None})


def _env_id(env_cfg: Any) -> str:
    from robotrl.envs.registry import _coerce_cfg

    return _coerce_cfg(env_cfg, {}).id


def _rows_to_batch(rows: list[dict]) -> dict[str, Any]:
    return {
        "obs": {"state": np.stack([r["obs"] for r in rows]).astype(np.float32)},
        "action": np.stack([r["action"] for r in rows]).astype(np.float32),
        "reward": np.array([r["reward"] for r in rows], np.float32),
        "terminated": np.array([r["terminated"] for r in rows], bool),
        "truncated": np.array([r["truncated"] for r in rows], bool),
        "next": {"obs": {"state": np.stack([r["next_obs"] for r in rows]).astype(np.float32)}},
    }


def _eval_scalars(m: Mapping[str, Any]) -> dict[str, float]:
    out = {"mean_return": m["mean_return"], "std_return": m["std_return"]}
    if m.get("normalized_score") is not None:
        out["normalized_score"] = m["normalized_score"]
        out["normalized_score_std"] = m["normalized_score_std"]
    return out


def evaluate_algo(algo: Any, env_cfg: Any, n_episodes: int, num_envs: int = 5, seed: int = 100_000,
                  video_path: str | None = None) -> dict[str, Any]:
    """Deterministic evaluation; adds the D4RL-normalised score (mean/std over episodes) for locomotion."""
    from robotrl.envs import evaluate_policy, make_env

    env = make_env(env_cfg)
    scaler = ActionScaler(env.action_space)
    env.close()

    def fn(obs: Mapping[str, np.ndarray]) -> np.ndarray:
        return scaler.to_env(algo.act({"state": obs["state"][:, -1]}, deterministic=True))

    was_training = algo.training
    algo.eval()
    try:
        m = evaluate_policy(fn, env_cfg, n_episodes=n_episodes, num_envs=num_envs, seed=seed, progress=False,
                            video_path=video_path)
    finally:
        algo.train(was_training)
    name = env_d4rl_name(env_cfg)
    m["normalized_score"] = m["normalized_score_std"] = None
    if name is not None:
        from robotrl.data.formats.d4rl import normalized_score

        scores = normalized_score(name, np.asarray(m["returns"]))
        m["normalized_scores"] = scores.tolist()
        m["normalized_score"] = float(scores.mean())
        m["normalized_score_std"] = float(scores.std())
    return m


def plot_rl_curve(run_dir: str | Path, title: str = "") -> Path:
    """Evaluation return (and D4RL-normalised score) against the logged step: ``learning_curve.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from robotrl.engine.logger import read_metrics
    from robotrl.utils.atomic import atomic_path

    run_dir = Path(run_dir)
    rows = read_metrics(run_dir)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for prefix, color in (("offline_eval", "tab:blue"), ("online_eval", "tab:green")):
        for ax, tag in zip(axes, ("mean_return", "normalized_score")):
            pts = sorted({int(r["step"]): r[f"{prefix}/{tag}"] for r in rows if f"{prefix}/{tag}" in r}.items())
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=color, label=prefix)
    axes[0].set(title="evaluation return", xlabel="offline gradient steps, then online env steps")
    axes[1].set(title="D4RL-normalised score", xlabel="step")
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = run_dir / "learning_curve.png"
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return out
