"""Diffusion Policy: noise schedule, DDPM/DDIM samplers, both denoisers, multimodality, save/load."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from tensordict import TensorDict

from robotrl.policies import load_policy, make_policy
from robotrl.policies.diffusion import DiffusionPolicy, NoiseScheduler, squared_cosine_betas

CONF = Path(__file__).resolve().parents[2] / "conf" / "policy"
SHAPE = {"obs": {"state": [5]}, "action": [2]}
TINY_UNET = {"type": "diffusion", "denoiser": "unet", "down_dims": [16, 32], "diffusion_step_embed_dim": 16, "n_groups": 4}
TINY_TF = {"type": "diffusion", "denoiser": "transformer", "d_model": 32, "n_layers": 2, "n_heads": 2}


def _policy(shape=SHAPE, **kw):
    p = make_policy({**TINY_UNET, **kw}, shape)
    rng = np.random.default_rng(0)
    p.normalizer.fit_key("action", rng.uniform(-2, 2, (200, shape["action"][0])))
    for k, s in shape["obs"].items():
        if not k.endswith("image"):
            p.normalizer.fit_key(f"obs/{k}", rng.normal(size=(200, *s)))
    return p


# ---------------------------------------------------------------------------------- schedule
def test_squared_cosine_schedule_matches_formula_and_is_monotone():
    s = NoiseScheduler(100, "squaredcos_cap_v2")
    f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    for t in (0, 1, 37, 98):
        assert s.betas[t].item() == pytest.approx(min(1 - f((t + 1) / 100) / f(t / 100), 0.999), rel=1e-12)
    assert s.betas[-1].item() == pytest.approx(0.999)  # cap at the last step
    abar = s.alphas_cumprod
    assert torch.all(abar[1:] < abar[:-1]) and abar[0] > 0.999 and abar[-1] < 1e-3
    # away from the cap, abar follows f(t+1)/f(0) exactly
    assert abar[50].item() == pytest.approx(f(51 / 100) / f(0), rel=1e-9)
    assert torch.equal(squared_cosine_betas(100), s.betas)
    x0, noise, t = torch.randn(4, 3), torch.randn(4, 3), torch.tensor([0, 10, 50, 99])
    xt = s.add_noise(x0, noise, t)
    a = abar[t].float()[:, None]
    assert torch.allclose(xt, a.sqrt() * x0 + (1 - a).sqrt() * noise)
    assert s.timesteps(10) == [90, 80, 70, 60, 50, 40, 30, 20, 10, 0]
    assert s.timesteps() == list(range(99, -1, -1))


def _oracle_point(x_star):
    """The optimal epsilon-predictor when the data is the single point x_star."""
    s = NoiseScheduler(100, clip_sample=False)

    def eps(x, t):
        a = s.alphas_cumprod[t].float()[:, None]
        return (x - a.sqrt() * x_star) / (1 - a).sqrt()

    return s, eps


def test_ddim_is_deterministic_and_reconstructs_with_any_step_count():
    x_star = torch.tensor([[0.3, -0.7, 0.1]])
    s, eps = _oracle_point(x_star)
    x_T = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    for steps in (100, 10):
        out = s.sample(eps, x_T, steps, sampler="ddim")
        assert torch.allclose(out, x_star.expand(6, 3), atol=1e-4)
        assert torch.equal(out, s.sample(eps, x_T.clone(), steps, sampler="ddim"))  # no randomness
    # DDPM with the exact x0 lands on the point too (its last step has zero variance)
    out = s.sample(eps, x_T, 100, sampler="ddpm", generator=torch.Generator().manual_seed(1))
    assert torch.allclose(out, x_star.expand(6, 3), atol=1e-4)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_samplers_recover_a_gaussian_with_the_exact_score(sampler):
    m, sd = 0.3, 0.2  # data ~ N(m, sd^2): E[eps | x_t] is known in closed form

    def run(T, steps):
        s = NoiseScheduler(T, clip_sample=False)

        def eps(x, t):
            a = s.alphas_cumprod[t].float()[:, None]
            return (1 - a).sqrt() * (x - a.sqrt() * m) / (a * sd**2 + 1 - a)

        g = torch.Generator().manual_seed(0)
        return s.sample(eps, torch.randn(4000, 1, generator=g), steps, sampler=sampler, generator=g)

    fine = run(1000, 1000)  # discretisation error vanishes with many steps
    assert fine.mean().item() == pytest.approx(m, abs=0.015)
    assert fine.std().item() == pytest.approx(sd, rel=0.04)
    coarse = run(100, 10)  # few steps: right mean, somewhat shrunk spread (known bias), never blown up
    assert coarse.mean().item() == pytest.approx(m, abs=0.02)
    assert 0.1 < coarse.std().item() < sd * 1.05


# ---------------------------------------------------------------------------------- policy
@pytest.mark.parametrize("den", [TINY_UNET, TINY_TF])
def test_shapes_loss_and_features(den):
    p = _policy(**den)
    b = TensorDict({("obs", "state"): torch.randn(8, 2, 5), "action": torch.rand(8, 16, 2) * 4 - 2}, batch_size=[8])
    loss, m = p.loss(b)
    assert loss.ndim == 0 and torch.isfinite(loss) and m["loss"] == pytest.approx(loss.item())
    loss.backward()
    assert all(q.grad is not None for q in p.denoiser.parameters() if q.requires_grad)
    obs = {"state": np.random.randn(3, 2, 5).astype(np.float32)}
    a = p.sample_actions(obs, num_samples=4)
    assert a.shape == (3, 4, 16, 2) and a.abs().max() <= 2.0 + 1e-4  # env units, clipped to the data range
    a, f = p.sample_actions(obs, num_samples=4, return_features=True)
    assert a.shape == (3, 4, 16, 2) and f.shape == (3, 4, p.feature_dim)
    assert not torch.allclose(a[:, 0], a[:, 1])  # N different candidates
    assert p.sample_actions(obs, sampler="ddpm", num_inference_steps=5).shape == (3, 1, 16, 2)
    assert p.predict_chunk(obs).shape == (3, 8, 2)


def test_image_policy_shapes():
    shape = {"obs": {"image": [24, 24, 3], "proprio": [4]}, "action": [2]}
    p = _policy(shape, obs_keys=["image", "proprio"], image_encoder={"width": 8, "num_keypoints": 4, "feature_dim": 16})
    img = np.random.randint(0, 255, (2, 2, 24, 24, 3), dtype=np.uint8)
    obs = {"image": img, "proprio": np.random.randn(2, 2, 4).astype(np.float32)}
    assert p.sample_actions(obs, num_samples=3).shape == (2, 3, 16, 2)
    batch = TensorDict({("obs", "image"): torch.as_tensor(img), ("obs", "proprio"): torch.randn(2, 2, 4),
                        "action": torch.zeros(2, 16, 2)}, batch_size=[2])
    assert torch.isfinite(p.loss(batch)[0])


@pytest.mark.parametrize("den", [TINY_UNET, TINY_TF])
def test_candidates_encode_the_observation_once(den):
    p = _policy(**den)
    calls = []
    p.encoder.register_forward_hook(lambda *a: calls.append(1))
    a = p.sample_actions({"state": np.random.randn(2, 2, 5).astype(np.float32)}, num_samples=16)
    assert a.shape == (2, 16, 16, 2) and len(calls) == 1


def test_diffusion_covers_both_modes_of_a_bimodal_toy():
    """1-D actions: every demo chunk is +0.8 or -0.8 (50/50) for the same observation."""
    torch.manual_seed(0)
    shape = {"obs": {"state": [1]}, "action": [1]}
    p = make_policy({**TINY_UNET, "horizon": 8, "n_obs_steps": 1, "n_action_steps": 4, "num_inference_steps": 10}, shape)
    p.normalizer.fit_key("action", np.array([[-1.0], [1.0]]))
    p.normalizer.fit_key("obs/state", np.array([[-1.0], [1.0]]))
    opt = torch.optim.AdamW(p.parameters(), lr=3e-3)
    for _ in range(250):
        sign = torch.randint(0, 2, (128, 1, 1)).float() * 2 - 1
        act = 0.8 * sign + 0.03 * torch.randn(128, 8, 1)
        batch = TensorDict({("obs", "state"): torch.zeros(128, 1, 1), "action": act}, batch_size=[128])
        loss, _ = p.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    p.eval()
    torch.manual_seed(1)
    chunks = p.sample_actions({"state": np.zeros((1, 1, 1), np.float32)}, num_samples=200)[0, :, :, 0]  # [200, 8]
    means = chunks.mean(dim=1)
    up, down = (means > 0.5).float().mean().item(), (means < -0.5).float().mean().item()
    assert up > 0.1 and down > 0.1, (up, down)  # both modes (50/50 in the data)
    assert up + down > 0.9  # and (almost) nothing in between, where the mean regressor would sit
    assert abs(act.mean().item()) < 0.2  # the data mean is ~0: no demo goes there


def test_save_load_roundtrip_gives_identical_actions(tmp_path):
    for den in (TINY_UNET, TINY_TF):
        p = _policy(**den)
        p.save_pretrained(tmp_path / den["denoiser"])
        q = load_policy(tmp_path / den["denoiser"])
        assert isinstance(q, DiffusionPolicy) and q.config == p.config
        obs = {"state": np.random.randn(2, 2, 5).astype(np.float32)}
        p.eval(), q.eval()
        torch.manual_seed(3)
        a = p.sample_actions(obs, num_samples=3)
        torch.manual_seed(3)
        b = q.sample_actions(obs, num_samples=3)
        assert torch.equal(a, b)


def test_config_files_build_and_bad_keys_fail():
    for name in ("diffusion_unet", "diffusion_transformer"):
        cfg = yaml.safe_load((CONF / f"{name}.yaml").read_text())
        p = make_policy(cfg, {"obs": {"state": [8]}, "action": [2]})
        assert isinstance(p, DiffusionPolicy) and p.config.num_train_timesteps == 100
        assert (p.config.n_obs_steps, p.config.horizon, p.config.n_action_steps) == (2, 16, 8)
    cfg = yaml.safe_load((CONF / "diffusion_unet_image.yaml").read_text())
    assert cfg["obs_keys"] == ["image", "proprio"]
    make_policy(cfg, {"obs": {"image": [84, 84, 3], "proprio": [4]}, "action": [2]})
    with pytest.raises(ValueError, match="unknown config key.*down_dim"):
        make_policy({"type": "diffusion", "down_dim": [8]}, SHAPE)
    with pytest.raises(ValueError, match="divisible"):
        make_policy({"type": "diffusion", "horizon": 10, "n_action_steps": 4}, SHAPE)
    with pytest.raises(ValueError, match="num_inference_steps"):
        make_policy({"type": "diffusion", "num_inference_steps": 500}, SHAPE)
    with pytest.raises(ValueError, match="sampler"):
        make_policy({"type": "diffusion", "sampler": "euler"}, SHAPE)


def test_transformer_init_and_optimiser_groups_follow_the_reference():
    """GPT-style init (Linear ~ N(0, 0.02), zero bias) and no weight decay on biases / LayerNorm / pos-embs."""
    p = _policy(**TINY_TF, warmup_steps=1000)
    tf = p.denoiser
    lin = [m for m in tf.modules() if isinstance(m, torch.nn.Linear)]
    w = torch.cat([m.weight.flatten() for m in lin])
    assert abs(w.std().item() - 0.02) < 0.002
    assert all(m.bias is None or torch.all(m.bias == 0) for m in lin)
    groups, over = p.optim_groups("train")
    assert over["warmup_steps"] == 1000 and over["weight_decay"] == p.config.weight_decay
    decay, no_decay = groups
    assert no_decay["weight_decay"] == 0.0 and "weight_decay" not in decay
    ids = lambda ps: {id(q) for q in ps}  # noqa: E731
    assert ids(decay["params"]).isdisjoint(ids(no_decay["params"]))
    assert ids(decay["params"]) | ids(no_decay["params"]) == ids(q for q in p.parameters() if q.requires_grad)
    assert id(tf.pos_emb) in ids(no_decay["params"]) and id(tf.ln_f.weight) in ids(no_decay["params"])
    assert id(tf.head.bias) in ids(no_decay["params"]) and id(tf.head.weight) in ids(decay["params"])
    # the trainer builds AdamW from these groups
    opt = torch.optim.AdamW(groups, lr=over["lr"], weight_decay=over["weight_decay"])
    assert [g["weight_decay"] for g in opt.param_groups] == [p.config.weight_decay, 0.0]
    # the UNet keeps one group and the trainer's warm-up
    params, over_u = _policy(**TINY_UNET).optim_groups("train")
    assert isinstance(params, list) and "warmup_steps" not in over_u
