"""Wrappers (history, action chunks, success, video, rescale) and the vectorised evaluator."""

from __future__ import annotations

import imageio.v2 as imageio
import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from robotrl.envs import (
    ActionChunk,
    ObservationHistory,
    RecordFrames,
    RescaleAction,
    SuccessInfo,
    VideoRecorder,
    evaluate_policy,
    make_vec_env,
)
from robotrl.envs.registry import SUITES, SuiteSpec, register_suite


class CounterEnv(gym.Env):
    """Deterministic toy env: state = [t, seed]; episode length 3 + seed % 5; reward 1 per step
    (plus the action's first entry); success at the last step iff the seed is even;
    ``info["success"]`` (not ``is_success``) so SuccessInfo must translate."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode=None, terminate=True):
        self.render_mode = render_mode
        self.terminate = terminate
        self.observation_space = spaces.Dict(
            {
                "state": spaces.Box(-np.inf, np.inf, (2,), np.float32),
                "image": spaces.Box(0, 255, (8, 8, 3), np.uint8),
            }
        )
        self.action_space = spaces.Box(-1, 1, (2,), np.float32)
        self.t = 0
        self.seed_ = 0
        self.total_steps = 0

    def _obs(self):
        img = np.full((8, 8, 3), self.t * 10 % 256, np.uint8)
        return {"state": np.array([self.t, self.seed_], np.float32), "image": img}

    @property
    def horizon(self):
        return 3 + self.seed_ % 5

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self.seed_ = int(seed)
        self.t = 0
        return self._obs(), {"success": False}

    def step(self, action):
        self.t += 1
        self.total_steps += 1
        end = self.t >= self.horizon
        success = end and self.seed_ % 2 == 0
        return self._obs(), 1.0 + float(action[0]), end and self.terminate, False, {"success": success}

    def render(self):
        return self._obs()["image"] if self.render_mode == "rgb_array" else None


def make(env_id, cfg):  # the "toy" suite used below: builds CounterEnv in the convention
    env = CounterEnv(render_mode=cfg.render_mode)
    if cfg.max_episode_steps is not None:
        env = gym.wrappers.TimeLimit(env, cfg.max_episode_steps)
    return SuccessInfo(env)


@pytest.fixture
def toy_suite():
    register_suite(SuiteSpec("toy", __name__, lambda i: i.startswith("toy/"), ("toy/Counter-v0",)))
    yield {"id": "toy/Counter-v0"}
    SUITES.pop("toy")


# --- wrappers ------------------------------------------------------------------------------


def test_success_info_translates_and_defaults():
    env = SuccessInfo(CounterEnv())
    _, info = env.reset(seed=0)
    assert info["is_success"] is False
    for _ in range(3):
        _, _, term, _, info = env.step(np.zeros(2))
    assert term and info["is_success"] is True  # seed 0: even -> success at the end


def test_observation_history_repeats_at_reset_and_slides():
    env = ObservationHistory(CounterEnv(), n_obs_steps=3)
    assert env.observation_space["state"].shape == (3, 2)
    assert env.observation_space["image"].shape == (3, 8, 8, 3)
    obs, _ = env.reset(seed=4)
    assert obs["state"].shape == (3, 2) and obs["image"].shape == (3, 8, 8, 3)
    np.testing.assert_array_equal(obs["state"][:, 0], [0, 0, 0])  # first obs repeated
    obs, *_ = env.step(np.zeros(2))
    np.testing.assert_array_equal(obs["state"][:, 0], [0, 0, 1])
    obs, *_ = env.step(np.zeros(2))
    obs, *_ = env.step(np.zeros(2))
    np.testing.assert_array_equal(obs["state"][:, 0], [1, 2, 3])
    assert env.observation_space.contains(obs)
    obs, _ = env.reset(seed=4)  # history is cleared on reset
    np.testing.assert_array_equal(obs["state"][:, 0], [0, 0, 0])
    with pytest.raises(ValueError):
        ObservationHistory(CounterEnv(), 0)


def test_action_chunk_runs_exactly_ta_steps():
    base = CounterEnv(terminate=False)
    env = ActionChunk(ObservationHistory(SuccessInfo(base), 2), n_action_steps=4)
    assert env.action_space.shape == (4, 2)
    env.reset(seed=9)  # horizon 7, but terminate=False: never ends
    obs, r, term, trunc, info = env.step(np.full((4, 2), 0.5, np.float32))
    assert base.total_steps == 4 and info["chunk_steps"] == 4
    assert r == pytest.approx(4 * 1.5)
    np.testing.assert_array_equal(obs["state"][:, 0], [3, 4])  # last To observations
    obs, r, *_ , info = env.step(np.zeros((2, 2), np.float32))  # shorter chunk is fine
    assert base.total_steps == 6 and info["chunk_steps"] == 2
    with pytest.raises(ValueError, match="more than n_action_steps"):
        env.step(np.zeros((5, 2), np.float32))
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros((4, 3), np.float32))


def test_action_chunk_stops_at_termination_and_reports_success():
    base = CounterEnv()
    env = ActionChunk(SuccessInfo(base), n_action_steps=8)
    env.reset(seed=2)  # horizon 5, even -> success at the end
    _, r, term, _, info = env.step(np.zeros((4, 2), np.float32))
    assert not term and info["chunk_steps"] == 4 and info["is_success"] is False
    _, r, term, _, info = env.step(np.zeros((8, 2), np.float32))
    assert term and info["chunk_steps"] == 1 and base.total_steps == 5
    assert r == pytest.approx(1.0) and info["is_success"] is True


def test_rescale_action():
    env = gym.make("Pendulum-v1")  # bounds [-2, 2]
    wrapped = RescaleAction(env)
    assert wrapped.action_space.low.min() == -1 and wrapped.action_space.high.max() == 1
    np.testing.assert_allclose(wrapped.action(np.array([1.0])), [2.0])
    np.testing.assert_allclose(wrapped.action(np.array([-0.5])), [-1.0])


def test_video_recorder_writes_a_readable_mp4(tmp_path):
    path = tmp_path / "sub" / "clip.mp4"
    env = RecordFrames(CounterEnv(render_mode="rgb_array"), VideoRecorder(path, fps=5))
    env.reset(seed=0)
    for _ in range(3):
        env.step(np.zeros(2))
    assert env.recorder.close() == str(path)
    frames = imageio.mimread(path)
    assert len(frames) == 4 and frames[0].shape == (8, 8, 3)
    assert frames[3].mean() > frames[0].mean()  # the frames are the rendered ones, in order
    assert not list(path.parent.glob(".*tmp*"))  # written atomically, temp file gone
    with pytest.raises(ValueError, match="render_mode"):
        VideoRecorder(tmp_path / "x.mp4").add(None)


# --- vector / evaluation -------------------------------------------------------------------


def test_make_vec_env_dict_obs_history_and_seeds(toy_suite):
    vec = make_vec_env(toy_suite, num_envs=3, seed=10, history=2)
    obs, info = vec.reset()
    assert obs["state"].shape == (3, 2, 2) and obs["image"].shape == (3, 2, 8, 8, 3)
    np.testing.assert_array_equal(obs["state"][:, -1, 1], [10, 11, 12])  # env i seeded seed + i
    obs, r, term, trunc, info = vec.step(np.zeros((3, 2), np.float32))
    assert r.shape == (3,) and info["is_success"].shape == (3,)
    vec.close()


def test_make_vec_env_gym_mujoco_async():
    vec = make_vec_env("Hopper-v5", num_envs=2, seed=0, async_=True)
    obs, _ = vec.reset()
    assert obs["state"].shape == (2, 11) and obs["state"].dtype == np.float32
    obs, *_ = vec.step(np.zeros((2, 3), np.float32))
    vec.close()


def _expected(seed, n):
    lengths = [3 + (seed + i) % 5 for i in range(n)]
    return lengths, [(seed + i) % 2 == 0 for i in range(n)]


@pytest.mark.parametrize("num_envs, ta", [(1, 1), (3, 1), (3, 4), (7, 2)])
def test_evaluate_policy_counts_each_episode_once(toy_suite, num_envs, ta):
    calls, started = [], []

    def policy(obs):
        calls.append(obs["state"].shape)
        return np.zeros((obs["state"].shape[0], ta, 2), np.float32)

    res = evaluate_policy(policy, toy_suite, n_episodes=7, num_envs=num_envs, seed=100, n_obs_steps=2,
                          progress=False, reset_fn=started.extend)
    lengths, successes = _expected(100, 7)
    assert res["lengths"] == lengths  # each episode ran to its own end, once
    assert res["successes"] == successes
    assert res["returns"] == [float(n) for n in lengths]
    assert res["success_rate"] == pytest.approx(np.mean(successes))
    assert res["seeds"] == list(range(100, 107))
    assert len(started) == 7  # reset_fn saw every episode start exactly once
    assert all(c == (min(num_envs, 7), 2, 2) for c in calls)


def test_evaluate_policy_respects_step_limit_and_stop_on_success(toy_suite):
    res = evaluate_policy(lambda o: np.zeros((2, 4, 2)), toy_suite, n_episodes=4, num_envs=2, seed=0,
                          max_episode_steps=4, progress=False)
    assert res["lengths"] == [3, 4, 4, 4]  # capped at 4 even mid-chunk

    # success at the end of the episode only; stop_on_success cannot end earlier here,
    # but a policy returning [N, A] (no chunk axis) must work too
    res = evaluate_policy(lambda o: np.zeros((1, 2)), toy_suite, n_episodes=2, seed=0, progress=False,
                          stop_on_success=True)
    assert res["lengths"] == [3, 4]
    with pytest.raises(ValueError, match="action chunk"):
        evaluate_policy(lambda o: np.zeros((5, 1, 2)), toy_suite, n_episodes=2, num_envs=2, progress=False)


def test_evaluate_policy_is_reproducible_on_mujoco():
    def policy(obs):  # deterministic function of the observation
        s = obs["state"][:, -1]
        return np.tanh(s[:, :3] * 0.5)[:, None]

    cfg = {"id": "Hopper-v5", "max_episode_steps": 40}
    a = evaluate_policy(policy, cfg, n_episodes=5, num_envs=2, seed=3, progress=False)
    b = evaluate_policy(policy, cfg, n_episodes=5, num_envs=3, seed=3, progress=False)
    c = evaluate_policy(policy, cfg, n_episodes=5, num_envs=2, seed=4, progress=False)
    assert a["returns"] == b["returns"] and a["lengths"] == b["lengths"]
    assert a["returns"] != c["returns"]
    assert a["mean_return"] == pytest.approx(np.mean(a["returns"]))
    assert a["std_return"] == pytest.approx(np.std(a["returns"]))


def test_evaluate_policy_writes_video_of_first_episode(toy_suite, tmp_path):
    path = tmp_path / "eval.mp4"
    res = evaluate_policy(lambda o: np.zeros((2, 1, 2)), toy_suite, n_episodes=3, num_envs=2, seed=0,
                          video_path=str(path), progress=False)
    frames = imageio.mimread(path)
    assert len(frames) == res["lengths"][0] + 1  # reset frame + one per step
    assert res["video_path"] == str(path)
