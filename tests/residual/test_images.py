"""Image observations for residual RL: random shift, a shared critic-trained encoder, exact base at step 0."""
from __future__ import annotations

import functools

import numpy as np
import torch
from helpers import train_weak_bc
from point_env import PointReach, collect

from robotrl.policies import load_policy
from robotrl.residual import ResidualPolicy, ResidualTD3, ResidualTD3Config, ResidualTrainConfig, run_residual
from robotrl.residual.encoder import random_shift
from robotrl.residual.trainer import relabel_demos


def test_random_shift_moves_every_image_by_at_most_pad_pixels():
    x = torch.zeros(64, 3, 16, 16)
    x[:, :, 8, 8] = 1.0
    g = torch.Generator().manual_seed(0)
    y = random_shift(x, pad=2, generator=g)
    assert y.shape == x.shape
    assert torch.equal(random_shift(x, pad=0), x)
    pos = torch.stack([(y[i, 0] == 1).nonzero()[0] for i in range(64)])  # the bright pixel of each image
    assert (pos - 8).abs().max() <= 2
    assert len({tuple(p.tolist()) for p in pos}) > 5  # shifts differ between samples


@functools.lru_cache(maxsize=1)
def _setup():
    store = collect(20, offset=0.06, seed=0, image=True)
    base = train_weak_bc(store)
    st = store["obs/state"]
    torch.manual_seed(0)
    rp = ResidualPolicy.from_base(base, state_mean=st.mean(0), state_std=st.std(0), hidden_dims=(32, 32),
                                  image_shapes={"image": (16, 16, 3)}, encoder_channels=8, encoder_feature_dim=16)
    return store, base, rp


def test_zero_init_image_residual_executes_the_base_exactly():
    store, base, rp = _setup()
    assert rp.feature_dim == rp.state_dim + 16 and "image" in rp.config.obs_keys
    env = PointReach(image=True)
    obs, _ = env.reset(seed=3)
    batch = {k: np.asarray(v)[None, None] for k, v in obs.items()}
    base.reset()
    rp.reset()
    a_base = base.predict_chunk(batch)[:, 0]
    a_res = rp.predict_chunk(batch)[:, 0]
    assert torch.equal(a_base, a_res)


def test_encoder_is_shared_and_trained_by_the_critic_only():
    store, base, rp = _setup()
    algo = ResidualTD3(rp, ResidualTD3Config(critic_hidden_dims=(32, 32), num_critics=4))
    enc = list(rp.encoders.parameters())
    critic_params = {id(p) for g in algo.optimizers["critic"].param_groups for p in g["params"]}
    actor_params = {id(p) for g in algo.optimizers["actor"].param_groups for p in g["params"]}
    assert all(id(p) in critic_params and id(p) not in actor_params for p in enc)
    demo = relabel_demos(store, rp)
    batch = demo.sample(32)
    assert batch["obs", "image"].dtype == torch.uint8 and batch["next", "obs", "image"].shape == (32, 16, 16, 3)
    before = [p.detach().clone() for p in enc]
    algo.update(batch, update_actor=False)
    assert any(not torch.equal(a, p) for a, p in zip(before, enc))  # the TD loss reaches the encoder
    # the actor's loss does not: with the critic learning rate at zero, an actor step leaves the encoder alone
    for g in algo.optimizers["critic"].param_groups:
        g["lr"] = 0.0
    before = [p.detach().clone() for p in enc]
    actor_before = [p.detach().clone() for p in rp.actor.parameters()]
    algo.update(batch, update_actor=True)
    assert all(torch.equal(a, p) for a, p in zip(before, enc))
    assert any(not torch.equal(a, p) for a, p in zip(actor_before, rp.actor.parameters()))


def test_image_residual_run_saves_one_checkpoint_that_acts_identically(tmp_path):
    store, base, _ = _setup()
    st = store["obs/state"]
    rp = ResidualPolicy.from_base(base, state_mean=st.mean(0), state_std=st.std(0), hidden_dims=(32, 32),
                                  image_shapes={"image": (16, 16, 3)}, encoder_channels=8, encoder_feature_dim=16)
    cfg = ResidualTrainConfig(total_env_steps=200, warmup_env_steps=50, warmup_updates=10, utd=1, batch_size=32,
                              eval_every=0, buffer_size=1000, seed=0, progress=False)
    out = run_residual(rp, functools.partial(PointReach, image=True), store, cfg,
                       ResidualTD3Config(critic_hidden_dims=(32, 32), num_critics=4), run_dir=tmp_path)
    assert out["env_steps"] == 200 and out["updates"] > 100
    loaded = load_policy(out["checkpoint"])
    assert loaded.config.image_keys == ("image",)
    env = PointReach(image=True)
    obs, _ = env.reset(seed=7)
    batch = {k: np.asarray(v)[None, None] for k, v in obs.items()}
    rp.reset()
    loaded.reset()
    assert torch.equal(rp.predict_chunk(batch), loaded.predict_chunk(batch))
