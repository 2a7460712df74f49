"""1-D temporal conv UNet (FiLM) and the transformer denoiser."""
import pytest
import torch

from robotrl.nn.transformer import DiffusionTransformer
from robotrl.nn.unet1d import ConditionalUnet1D, SinusoidalPosEmb


def test_unet_shapes_features_and_conditioning():
    torch.manual_seed(0)
    net = ConditionalUnet1D(input_dim=3, global_cond_dim=10, diffusion_step_embed_dim=16, down_dims=(16, 32, 64), n_groups=4)
    x, t, c = torch.randn(4, 16, 3), torch.randint(0, 100, (4,)), torch.randn(4, 10)
    out, h = net(x, t, c, return_features=True)
    assert out.shape == (4, 16, 3) and h.shape == (4, 16, 16)
    assert torch.equal(net(x, t, c), out)
    assert not torch.allclose(net(x, t, c + 1.0), out, atol=1e-4)  # FiLM: the condition matters
    assert not torch.allclose(net(x, (t + 50) % 100, c), out, atol=1e-4)  # so does the diffusion step
    out.square().mean().backward()
    assert all(p.grad is not None for p in net.parameters())
    # FiLM produces a per-channel scale and bias
    blk = net.down_modules[0][0]
    assert blk.cond_encoder[-1].out_features == 2 * 16
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.randn(2, 10, 3), t[:2], c[:2])


def test_sinusoidal_embedding():
    e = SinusoidalPosEmb(8)(torch.tensor([0, 1, 50]))
    assert e.shape == (3, 8)
    assert torch.allclose(e[0], torch.tensor([0.0] * 4 + [1.0] * 4))
    assert not torch.allclose(e[1], e[2])


def test_transformer_denoiser_shapes_and_causality():
    torch.manual_seed(0)
    net = DiffusionTransformer(input_dim=2, cond_dim=5, n_obs_steps=2, horizon=8, d_model=32, n_layers=2, n_heads=4,
                               dropout_attn=0.0, causal_attn=True).eval()
    x, t, c = torch.randn(3, 8, 2), torch.randint(0, 100, (3,)), torch.randn(3, 2, 5)
    out, h = net(x, t, c, return_features=True)
    assert out.shape == (3, 8, 2) and h.shape == (3, 8, 32)
    x2 = x.clone()
    x2[:, 5:] += 1.0  # future steps cannot influence earlier ones under the causal mask
    out2 = net(x2, t, c)
    assert torch.allclose(out[:, :5], out2[:, :5], atol=1e-5) and not torch.allclose(out[:, 5:], out2[:, 5:])
    c2 = c.clone()
    c2[:, 1] += 1.0  # observation step k is visible to action steps t >= k (the window starts at obs step 0)
    out3 = net(x, t, c2)
    assert torch.allclose(out3[:, 0], out[:, 0], atol=1e-5) and not torch.allclose(out3[:, 1:], out[:, 1:])
    c3 = c.clone()
    c3[:, 0] += 1.0
    assert not torch.allclose(net(x, t, c3)[:, 0], out[:, 0])
    with pytest.raises(ValueError, match="cond must be"):
        net(x, t, torch.randn(3, 3, 5))
