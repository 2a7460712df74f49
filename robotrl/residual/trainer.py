"""The residual RL loop: relabelled demos + warm-up + residual TD3 on a frozen base, seeded evaluation.

``run_residual(policy, env_fn, demo_store, cfg, run_dir)``:

1. the demonstrations become a replay buffer whose base-action field is the *base policy's*
   action on each demo state (running its chunks open-loop from the episode start) and whose
   reward is 1 on the success frame only (:func:`relabel_demos`);
2. ``warmup_env_steps`` of base-policy rollouts with uniform noise fill the online buffer, then
   ``warmup_updates`` critic-only updates;
3. then every env step: act with ``clamp(base + residual + N(0, exploration_std))`` and run
   ``utd`` critic updates (one actor update per ``actor_update_every``), each batch half demos,
   half online data through :class:`robotrl.data.replay.MixedSampler`;
4. every ``eval_every`` env steps a deterministic evaluation on seeded episodes
   (seeds ``eval_seed + i``, disjoint from training and demo seeds).

With a ``run_dir``, every ``ckpt_every`` env steps (at the first episode end after them) the
whole loop state is written atomically to ``run_dir/checkpoints/residual_state/``: networks,
optimisers, the online replay buffer, the demo buffer's sampling RNG, the torch and NumPy RNGs,
the base policy's open-loop chunk, counters and the curve. Calling ``run_residual`` again with the
same run_dir and configuration continues from there, and the result is identical to a run that
was never interrupted (training episodes are seeded by their index, so the environment is
re-created by a seeded reset).
"""
from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from robotrl.data.replay import MixedSampler, ReplayBuffer
from robotrl.residual.policy import ResidualPolicy, check_base_matches_env
from robotrl.residual.td3 import ResidualTD3, ResidualTD3Config

__all__ = ["ResidualTrainConfig", "buffer_spec", "relabel_demos", "evaluate_policy_seeded", "run_residual"]


@dataclass
class ResidualTrainConfig:
    """Loop settings (the algorithm's are in :class:`ResidualTD3Config`)."""

    total_env_steps: int = 100_000
    warmup_env_steps: int = 5_000       # base + uniform noise rollouts, no updates
    warmup_noise: float = 0.1           # half-width of the uniform warm-up noise (normalised units)
    warmup_updates: int = 5_000         # critic-only updates after the warm-up rollouts
    utd: int = 4                        # critic updates per env step
    batch_size: int = 256
    demo_fraction: float = 0.5
    exploration_std: float = 0.05       # Gaussian exploration, truncated at 2 std
    buffer_size: int = 300_000
    eval_every: int = 5_000
    eval_episodes: int = 20
    eval_seed: int = 100_000
    log_every: int = 1_000
    ckpt_every: int = 5_000             # env steps between resumable checkpoints (at episode ends; 0: off)
    seed: int = 0
    progress: bool = True


def buffer_spec(state_dim: int, act_dim: int, images: Mapping[str, Any] | None = None) -> dict:
    """Fields of the online and demo buffers (the base action is stored as an observation; images uint8)."""
    obs = {"state": ((state_dim,), "float32"), "base_action": ((act_dim,), "float32")}
    for k, shape in (images or {}).items():
        obs[k] = (tuple(int(x) for x in shape), "uint8")
    return {"obs": obs, "action": ((act_dim,), "float32")}


def _image_shapes(policy: ResidualPolicy) -> dict[str, tuple[int, ...]]:
    return {k: tuple(policy.shape_meta["obs"][k]) for k in policy.config.image_keys}


def _history(frames: np.ndarray, i: int, n: int) -> np.ndarray:
    idx = np.clip(np.arange(i - n + 1, i + 1), 0, None)
    return frames[idx]


@torch.no_grad()
def relabel_demos(store: Any, policy: ResidualPolicy, n_step: int = 3, gamma: float = 0.99,
                  seed: int = 0) -> ReplayBuffer:
    """Demo transitions with the base policy's (normalised) action as ``("obs", "base_action")``.

    The base runs its chunks open-loop from each episode's first frame, as it does online. The
    executed action is the demonstrator's (normalised, clamped to [-1, 1]); the reward is 1 on
    the success frame (the last frame of an episode that terminated or was rewarded) and 0
    elsewhere; episodes without success end truncated.
    """
    base = policy.base
    To = base.config.n_obs_steps
    keys = list(base.config.obs_keys)
    for k in keys + ["state"]:
        if f"obs/{k}" not in store:
            raise KeyError(f"demonstrations have no 'obs/{k}' (needed by the base policy); keys: {sorted(store.keys())}")
    A = policy.action_dim
    if store["action"].shape[1:] != (A,):
        raise ValueError(f"demonstrations have actions of shape {list(store['action'].shape[1:])}, the base policy "
                         f"expects [{A}]")
    S = policy.state_dim
    ends = np.asarray(store.episode_ends)
    starts = np.concatenate([[0], ends[:-1]])
    state = np.asarray(store["obs/state"], np.float32)
    nstate = np.asarray(store["next_obs/state"], np.float32) if "next_obs/state" in store else None
    act = np.asarray(store["action"], np.float32)
    rew = np.asarray(store["reward"], np.float32).reshape(-1) if "reward" in store else np.zeros(len(act), np.float32)
    term = np.asarray(store["terminated"], bool).reshape(-1) if "terminated" in store else np.zeros(len(act), bool)
    per_key = {k: np.asarray(store[f"obs/{k}"]) for k in keys}
    images = {}
    for k in policy.config.image_keys:
        if f"obs/{k}" not in store:
            raise KeyError(f"demonstrations have no 'obs/{k}' (the residual's image input); keys: {sorted(store.keys())}")
        cur = np.asarray(store[f"obs/{k}"])
        images[k] = (cur, np.asarray(store[f"next_obs/{k}"]) if f"next_obs/{k}" in store else None)
    buf = ReplayBuffer(max(int(ends[-1]), 1), buffer_spec(S, A, _image_shapes(policy)), seed=seed, n_step=n_step,
                       gamma=gamma)
    with _explicit_resets(policy):
        _relabel_into(buf, policy, starts, ends, keys, per_key, To, state, nstate, act, rew, term, images)
    policy.reset()
    return buf


def _relabel_into(buf, policy, starts, ends, keys, per_key, To, state, nstate, act, rew, term, images) -> None:
    A = policy.action_dim
    for s, e in zip(starts, ends):
        T = int(e - s)
        if T < 1:
            continue
        policy.reset()
        base_n = np.zeros((T, A), np.float32)
        for t in range(T):
            obs = {k: _history(per_key[k][s:e], t, To)[None] for k in keys}
            bn, _ = policy.base_step(obs)
            base_n[t] = bn[0].cpu().numpy()
        ns = nstate[s:e] if nstate is not None else np.concatenate([state[s + 1:e], state[e - 1:e]])
        nb = np.concatenate([base_n[1:], base_n[-1:]])
        success = bool(term[e - 1] or rew[e - 1] > 0)
        r = np.zeros(T, np.float32)
        te = np.zeros(T, bool)
        tr = np.zeros(T, bool)
        if success:
            r[-1], te[-1] = 1.0, True
        else:
            tr[-1] = True
        a_n = policy.normalize_action(torch.from_numpy(act[s:e])).clamp(-1, 1).numpy()
        obs = {"state": state[s:e], "base_action": base_n}
        nobs = {"state": ns, "base_action": nb}
        for k, (cur, nxt) in images.items():
            obs[k] = cur[s:e]
            nobs[k] = nxt[s:e] if nxt is not None else np.concatenate([cur[s + 1:e], cur[e - 1:e]])
        buf.extend({"obs": obs, "action": a_n, "reward": r, "terminated": te, "truncated": tr,
                    "next": {"obs": nobs}})


def _batch_obs(obs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.asarray(v)[None] for k, v in obs.items()}


@contextmanager
def _explicit_resets(policy: Any):
    """The caller resets per episode: no episode-start guessing from repeated frames."""
    old = getattr(policy, "auto_episode_starts", None)
    if old is not None:
        policy.auto_episode_starts = False
    try:
        yield
    finally:
        if old is not None:
            policy.auto_episode_starts = old


@contextmanager
def _kept_base_state(policy: ResidualPolicy):
    saved = (policy._chunk, policy._chunk_env, policy._phase)
    try:
        yield
    finally:
        policy._chunk, policy._chunk_env, policy._phase = saved


@torch.no_grad()
def evaluate_policy_seeded(policy: Any, env_fn: Callable[[], Any], n_episodes: int, seed: int = 100_000,
                           max_steps: int | None = None) -> dict[str, Any]:
    """Run any Policy on ``n_episodes`` episodes with seeds ``seed + i`` (one env, ``policy.reset()`` each)."""
    from robotrl.envs.wrappers import ObservationHistory

    env = ObservationHistory(env_fn(), policy.config.n_obs_steps)
    successes, returns, lengths = [], [], []
    was = policy.training
    policy.eval()
    with _explicit_resets(policy):
        _eval_loop(policy, env, n_episodes, seed, max_steps, successes, returns, lengths, was)
    return {"success_rate": float(np.mean(successes)), "mean_return": float(np.mean(returns)),
            "successes": successes, "returns": returns, "lengths": lengths,
            "seeds": [int(seed) + i for i in range(int(n_episodes))]}


def _eval_loop(policy, env, n_episodes, seed, max_steps, successes, returns, lengths, was) -> None:
    try:
        for i in range(int(n_episodes)):
            obs, info = env.reset(seed=int(seed) + i)
            policy.reset()
            ok, ret, t = bool(info.get("is_success", False)), 0.0, 0
            while True:
                a = policy.act(_batch_obs(obs))[0].cpu().numpy()
                obs, r, term, trunc, info = env.step(a)
                ret += float(r)
                t += 1
                ok = ok or bool(info.get("is_success", False))
                if term or trunc or (max_steps is not None and t >= max_steps):
                    break
            successes.append(ok)
            returns.append(ret)
            lengths.append(t)
    finally:
        env.close()
        policy.train(was)
        policy.reset()


def run_residual(policy: ResidualPolicy, env_fn: Callable[[], Any], demo_store: Any,
                 cfg: ResidualTrainConfig | None = None, algo_cfg: ResidualTD3Config | None = None,
                 run_dir: str | Path | None = None, log: Callable[[int, dict], None] | None = None) -> dict[str, Any]:
    """Fine-tune ``policy``'s residual actor in ``env_fn()``; returns the curve and speed numbers."""
    from tqdm.auto import tqdm

    from robotrl.envs.wrappers import ObservationHistory
    from robotrl.utils.seeding import seed_everything

    c = cfg or ResidualTrainConfig()
    ac = algo_cfg or ResidualTD3Config()
    rng = seed_everything(c.seed)
    raw_env = env_fn()
    check_base_matches_env(policy.base, raw_env)
    env = ObservationHistory(raw_env, policy.config.n_obs_steps)
    env.action_space.seed(c.seed)
    algo = ResidualTD3(policy, ac)
    S, A = policy.state_dim, policy.action_dim
    demo = relabel_demos(demo_store, policy, n_step=ac.n_step, gamma=ac.gamma, seed=c.seed + 1)
    online = ReplayBuffer(c.buffer_size, buffer_spec(S, A, _image_shapes(policy)), seed=c.seed + 2, n_step=ac.n_step,
                          gamma=ac.gamma)
    image_keys = tuple(policy.config.image_keys)
    run_dir = Path(run_dir) if run_dir is not None else None
    state_dir = run_dir / "checkpoints" / "residual_state" if run_dir is not None and c.ckpt_every else None
    blob = _load_loop_state(state_dir, c, ac)
    if blob is not None:
        algo.restore(blob["algo"])
        online = ReplayBuffer.load(state_dir / "online")
        demo._rng[:] = blob["demo_rng"]
    sampler = MixedSampler(online, demo, c.demo_fraction)
    curve: list[dict[str, Any]] = list(blob["curve"]) if blob is not None else []

    def evaluate(step: int) -> None:
        with _kept_base_state(policy):
            m = evaluate_policy_seeded(policy, env_fn, c.eval_episodes, seed=c.eval_seed)
        curve.append({"env_steps": step, "success_rate": m["success_rate"], "mean_return": m["mean_return"]})
        if log is not None:
            log(step, {"eval/success_rate": m["success_rate"], "eval/mean_return": m["mean_return"]})
        bar.write(f"[residual] env step {step}: success {m['success_rate']:.2f} over {c.eval_episodes} episodes")

    bar = tqdm(total=c.total_env_steps, desc="residual td3", disable=not c.progress, dynamic_ncols=True)
    auto = policy.auto_episode_starts
    policy.auto_episode_starts = False  # this loop resets the policy at every episode start
    episode = steps = updates = 0
    update_time = env_time = elapsed_before = 0.0
    warm_done = False
    ep_success, recent = False, []
    metrics: dict[str, float] = {}
    if blob is None:
        if c.eval_every:
            evaluate(0)
        obs, _ = env.reset(seed=c.seed * 100_000 + episode)
        policy.reset()
        base_n, base_env = policy.base_step(_batch_obs(obs))
    else:
        k = blob["counters"]
        episode, steps, updates, warm_done = k["episode"], k["steps"], k["updates"], k["warm_done"]
        update_time, env_time, elapsed_before = k["update_time"], k["env_time"], k["elapsed"]
        recent, metrics = list(k["recent"]), dict(k["metrics"])
        obs, _ = env.reset(seed=c.seed * 100_000 + episode)  # the same seeded reset as before the checkpoint
        policy.reset()
        policy._chunk, policy._chunk_env, policy._phase = blob["base_chunk"]
        base_n, base_env = blob["base_action"]
        rng.bit_generator.state = blob["np_rng"]
        torch.set_rng_state(blob["torch_rng"])
        bar.update(steps)
        bar.write(f"[residual] resuming {run_dir} at env step {steps} (episode {episode}, {updates} updates)")
    pending: list[dict] = []
    t_start = time.time() - elapsed_before
    next_ckpt = (steps // c.ckpt_every + 1) * c.ckpt_every if state_dir is not None else None
    try:
        while steps < c.total_env_steps:
            t0 = time.time()
            o_last = policy.last_obs(_batch_obs(obs))
            s = o_last["state"]
            if steps < c.warmup_env_steps:
                res = torch.as_tensor(rng.uniform(-c.warmup_noise, c.warmup_noise, size=(1, A)), dtype=torch.float32)
            else:
                with torch.no_grad():
                    res = policy.residual(o_last, base_n)
                noise = (torch.randn_like(res) * c.exploration_std).clamp(-2 * c.exploration_std, 2 * c.exploration_std)
                res = res + noise
            a_n = policy.combine(base_n, res)
            a_env = policy.executed(base_n, base_env, res)[0].numpy()
            obs2, r, term, trunc, info = env.step(a_env)
            ep_success = ep_success or bool(info.get("is_success", False))
            done = bool(term or trunc)
            if not term:
                base2_n, base2_env = policy.base_step(_batch_obs(obs2))
            else:
                base2_n, base2_env = base_n, base_env
            pending.append({"s": s[0].numpy(), "b": base_n[0].numpy(), "a": a_n[0].numpy(), "r": float(r), "te": bool(term),
                            "tr": bool(trunc), "s2": np.asarray(obs2["state"][-1], np.float32), "b2": base2_n[0].numpy(),
                            "img": {k: np.asarray(o_last[k][0]) for k in image_keys},
                            "img2": {k: np.asarray(obs2[k][-1]) for k in image_keys}})
            steps += 1
            if done or len(pending) >= 32:
                online.extend(_rows(pending))
                pending = []
            if done:
                episode += 1
                recent = (recent + [ep_success])[-20:]
                ep_success = False
                obs, _ = env.reset(seed=c.seed * 100_000 + episode)
                policy.reset()
                base_n, base_env = policy.base_step(_batch_obs(obs))
            else:
                obs, base_n, base_env = obs2, base2_n, base2_env
            env_time += time.time() - t0
            bar.update(1)
            # ---- updates
            if steps >= c.warmup_env_steps and len(online) > 0:
                t1 = time.time()
                if not warm_done:
                    warm_done = True
                    if pending:
                        online.extend(_rows(pending))
                        pending = []
                    for _ in range(c.warmup_updates):
                        metrics.update(algo.update(sampler.sample(c.batch_size), update_actor=False))
                        updates += 1
                # merged, so the actor's values (every actor_update_every-th update) stay in the log
                for _ in range(c.utd):
                    metrics.update(algo.update(sampler.sample(c.batch_size)))
                    updates += 1
                update_time += time.time() - t1
            if log is not None and metrics and steps % c.log_every == 0:
                log(steps, {f"train/{k}": v for k, v in metrics.items()} | {
                    "train/rollout_success": float(np.mean(recent)) if recent else 0.0})
                bar.set_postfix(succ=f"{np.mean(recent) if recent else 0:.2f}", q=f"{metrics.get('q', 0):.2f}")
            if c.eval_every and steps % c.eval_every == 0:
                evaluate(steps)
            if next_ckpt is not None and done and steps >= next_ckpt and steps < c.total_env_steps:
                _save_loop_state(state_dir, c, ac, algo, online, demo, rng, policy, base_n, base_env, curve, {
                    "episode": episode, "steps": steps, "updates": updates, "warm_done": warm_done,
                    "update_time": update_time, "env_time": env_time, "elapsed": time.time() - t_start,
                    "recent": recent, "metrics": metrics})
                next_ckpt = (steps // c.ckpt_every + 1) * c.ckpt_every
    finally:
        bar.close()
        env.close()
        policy.auto_episode_starts = auto
    if c.eval_every and (not curve or curve[-1]["env_steps"] != steps):
        evaluate(steps)
    wall = time.time() - t_start
    out = {"env_steps": steps, "updates": updates, "episodes": episode, "curve": curve,
           "final_success_rate": curve[-1]["success_rate"] if curve else None,
           "env_steps_per_s": steps / max(wall, 1e-9), "updates_per_s": updates / max(update_time, 1e-9),
           "wall_seconds": wall, "config": asdict(c), "algo_config": asdict(ac)}
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        policy.save_pretrained(run_dir / "checkpoints" / "policy")
        from robotrl.engine.checkpoint import save_checkpoint

        save_checkpoint(run_dir / "checkpoints" / "residual_last.pt", {"algo": algo.checkpoint(), "state": out})
        from robotrl.utils.atomic import atomic_path

        with atomic_path(run_dir / "residual_curve.json") as tmp:
            tmp.write_text(json.dumps(out, indent=2, default=str))
        out["checkpoint"] = str(run_dir / "checkpoints" / "policy")
    return out


def _identity(c: ResidualTrainConfig, ac: ResidualTD3Config) -> dict[str, Any]:
    d = asdict(c)
    for k in ("progress", "total_env_steps", "eval_every", "eval_episodes", "log_every", "ckpt_every"):
        d.pop(k)  # may change between the interrupted run and its continuation
    return {"train": d, "td3": asdict(ac)}


def _save_loop_state(state_dir: Path, c, ac, algo, online, demo, rng, policy, base_n, base_env, curve,
                     counters: dict) -> None:
    """Everything the loop needs to continue exactly, written atomically as one directory."""
    from robotrl.utils.atomic import atomic_path

    with atomic_path(state_dir) as tmp:
        tmp.mkdir(parents=True)
        online.save(tmp / "online")
        torch.save({"identity": _identity(c, ac), "algo": algo.checkpoint(), "demo_rng": demo._rng.copy(),
                    "np_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                    "base_chunk": (policy._chunk, policy._chunk_env, policy._phase), "base_action": (base_n, base_env),
                    "curve": list(curve), "counters": counters}, tmp / "state.pt")


def _load_loop_state(state_dir: Path | None, c, ac) -> dict[str, Any] | None:
    if state_dir is None or not (state_dir / "state.pt").is_file():
        return None
    from robotrl.engine.checkpoint import load_checkpoint

    blob = load_checkpoint(state_dir / "state.pt")
    if blob.get("identity") != _identity(c, ac):
        raise ValueError(f"{state_dir} belongs to a residual run with another configuration; pass another run_dir "
                         f"or delete {state_dir} to start over")
    return blob


def _rows(rows: list[dict]) -> dict[str, Any]:
    obs = {"state": np.stack([r["s"] for r in rows]).astype(np.float32),
           "base_action": np.stack([r["b"] for r in rows]).astype(np.float32)}
    nobs = {"state": np.stack([r["s2"] for r in rows]).astype(np.float32),
            "base_action": np.stack([r["b2"] for r in rows]).astype(np.float32)}
    for k in rows[0]["img"]:  # camera frames (residual image_keys), uint8
        obs[k] = np.stack([r["img"][k] for r in rows]).astype(np.uint8)
        nobs[k] = np.stack([r["img2"][k] for r in rows]).astype(np.uint8)
    return {"obs": obs, "action": np.stack([r["a"] for r in rows]).astype(np.float32),
            "reward": np.array([r["r"] for r in rows], np.float32),
            "terminated": np.array([r["te"] for r in rows], bool),
            "truncated": np.array([r["tr"] for r in rows], bool), "next": {"obs": nobs}}
