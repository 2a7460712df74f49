"""CARP: multi-scale tokenizer, block-causal next-scale GPT with KV cache, stages, save/load."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from tensordict import TensorDict

from robotrl.nn.transformer import block_causal_mask
from robotrl.policies import load_policy, make_policy
from robotrl.policies.carp import CARPPolicy, MultiScaleActionTokenizer

CONF = Path(__file__).resolve().parents[2] / "conf" / "policy"
SHAPE = {"obs": {"state": [5]}, "action": [3]}
TINY = {"type": "carp", "depth": 2, "width": 32, "num_heads": 4, "vocab_size": 32}


def _policy(**kw):
    p = make_policy({**TINY, **kw}, SHAPE)
    rng = np.random.default_rng(0)
    p.normalizer.fit_key("action", rng.uniform(-2, 2, (200, 3)))
    p.normalizer.fit_key("obs/state", rng.normal(size=(200, 5)))
    return p


def _randomise_adaln(p: CARPPolicy, seed: int = 0) -> None:
    """adaLN-Zero makes a fresh GPT the identity; give every block a real effect for the tests."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in list(p.transformer.blocks) + [p.transformer.head_norm]:
            w = m.ada_lin[-1].weight
            w.copy_(torch.randn(w.shape, generator=g) * 0.3)
        p.transformer.head.weight.mul_(30.0)


def _smooth_chunks(n: int, a: int = 3, g: torch.Generator | None = None) -> torch.Tensor:
    t = torch.linspace(0, 1, 16)[None, :, None]
    freq = torch.rand(n, 1, a, generator=g) * 0.8 + 0.2
    phase = torch.rand(n, 1, a, generator=g) * 2 * math.pi
    amp = torch.rand(n, 1, a, generator=g) * 0.8
    return amp * torch.sin(2 * math.pi * freq * t + phase)


# ---------------------------------------------------------------------------------- tokenizer
@pytest.mark.parametrize("per_dimension", [True, False])
def test_tokenizer_shapes_and_token_layout(per_dimension):
    tok = MultiScaleActionTokenizer(3, 16, vocab_size=32, per_dimension=per_dimension, channels=2 if per_dimension else 8)
    g = 3 if per_dimension else 1
    x = _smooth_chunks(5)
    recon, vq, idx = tok(x)
    assert recon.shape == (5, 16, 3) and vq.ndim == 0
    assert [i.shape for i in idx] == [(5, g, pn) for pn in (1, 2, 3, 4)]
    assert tok.num_tokens == 10 * g and tok.tokens_per_scale == [g, 2 * g, 3 * g, 4 * g]
    flat = tok.flatten_indices(idx)
    assert flat.shape == (5, 10 * g)
    assert all(torch.equal(a, b) for a, b in zip(tok.split_indices(flat), idx))
    if per_dimension:  # position-major, dimensions interleaved (the official layout)
        assert torch.equal(flat[:, 3:9].reshape(5, 2, 3), idx[1].transpose(1, 2))
    assert tok.teacher_inputs(idx).shape == (5, 9 * g, 8)
    # the quantised latent is exactly the sum of the scales' contributions
    f_hat = torch.zeros(5, g, 8, 4)
    for si, i in enumerate(idx):
        f_hat, _ = tok.next_input(si, f_hat, i)
    assert torch.allclose(tok.decode(f_hat), recon, atol=1e-5)


def test_tokenizer_straight_through_and_per_dimension_independence():
    tok = MultiScaleActionTokenizer(3, 16, vocab_size=32)
    x = _smooth_chunks(8)
    recon, vq, _ = tok(x)
    F.mse_loss(recon, x).backward(retain_graph=True)
    assert tok.encoder[0].weight.grad.abs().sum() > 0  # reconstruction reaches the encoder (straight-through)
    assert tok.codebook.grad is None or tok.codebook.grad.abs().sum() == 0  # ... but not the codebook
    tok.zero_grad()
    vq.backward()
    assert tok.codebook.grad.abs().sum() > 0 and tok.phis[0].weight.grad.abs().sum() > 0
    # one VQ-VAE per action dimension: changing dim 0 leaves the tokens of dims 1, 2 unchanged
    y = x.clone()
    y[:, :, 0] = -y[:, :, 0]
    i_x, i_y = tok.actions_to_indices(x), tok.actions_to_indices(y)
    assert all(torch.equal(a[:, 1:], b[:, 1:]) for a, b in zip(i_x, i_y))


def test_tokenizer_learns_to_reconstruct_smooth_chunks():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    tok = MultiScaleActionTokenizer(3, 16, vocab_size=64)
    test = _smooth_chunks(512, g=g)
    before = F.mse_loss(tok.reconstruct(test), test).item()
    opt = torch.optim.AdamW(tok.parameters(), lr=2e-3, betas=(0.5, 0.9), weight_decay=0.005)
    for _ in range(250):
        x = _smooth_chunks(128, g=g)
        recon, vq, _ = tok(x)
        loss = F.mse_loss(recon, x) + vq
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = F.mse_loss(tok.reconstruct(test), test).item()
    # error well below the data variance (~0.11) and far below the untrained tokenizer's
    assert after < 0.25 * test.var().item() and after < 0.2 * before, (before, after, test.var().item())


# ---------------------------------------------------------------------------------- transformer
def test_block_causal_mask():
    m = block_causal_mask([1, 2, 3])
    expected = torch.tensor([
        [1, 0, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0, 0],
        [1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1, 1],
    ], dtype=torch.bool)
    assert torch.equal(m, expected)
    # in the GPT: changing scale-3 inputs changes scale-3/4 logits only
    p = _policy()
    _randomise_adaln(p)
    gpt, tok = p.transformer, p.tokenizer
    cond = torch.randn(2, p.encoder.out_dim)
    teacher = torch.randn(2, tok.num_tokens - 3, 8)
    sizes = gpt.sizes  # [3, 6, 9, 12]
    s3 = slice(sizes[0] + sizes[1], sizes[0] + sizes[1] + sizes[2])
    t2 = teacher.clone()
    t2[:, s3.start - 3 : s3.stop - 3] += 1.0  # teacher index = token index - first_l
    a, b = gpt(cond, teacher), gpt(cond, t2)
    assert torch.allclose(a[:, : s3.start], b[:, : s3.start], atol=1e-6)
    assert not torch.allclose(a[:, s3], b[:, s3], atol=1e-4)
    assert not torch.allclose(a[:, s3.stop :], b[:, s3.stop :], atol=1e-4)


@pytest.mark.parametrize("qk_norm", [False, True])
def test_kv_cached_decoding_matches_full_sequence_decoding(qk_norm):
    p = _policy(qk_norm=qk_norm)
    _randomise_adaln(p, seed=1)
    p.eval()
    cond = torch.randn(4, p.encoder.out_dim)
    f1, idx1, h1 = p.transformer.generate(cond, p.tokenizer, top_k=1, use_cache=True)
    f2, idx2, h2 = p.transformer.generate(cond, p.tokenizer, top_k=1, use_cache=False)
    assert all(torch.equal(a, b) for a, b in zip(idx1, idx2))
    assert torch.allclose(f1, f2) and torch.allclose(h1, h2, atol=1e-5)
    # greedy tokens are the argmax of one teacher-forced pass over those same tokens
    logits = p.transformer(cond, p.tokenizer.teacher_inputs(idx1))
    assert torch.equal(logits.argmax(-1), p.tokenizer.flatten_indices(idx1))
    assert len({tuple(i.flatten().tolist()) for i in idx1}) > 1  # not a degenerate constant decoder
    # one forward pass per scale with the cache
    calls = []
    hook = p.transformer.head.register_forward_hook(lambda *a: calls.append(1))
    p.transformer.generate(cond, p.tokenizer, use_cache=True)
    hook.remove()
    assert len(calls) == 4


# ---------------------------------------------------------------------------------- policy
def test_policy_stages_losses_and_shapes():
    p = _policy()
    assert p.stages == ("tokenizer", "transformer")
    assert p.stage_steps("tokenizer", 1000) == 300 and p.stage_steps("transformer", 1000) == 700
    tok_params, tok_over = p.optim_groups("tokenizer")
    tf_params, tf_over = p.optim_groups("transformer")
    assert {id(q) for q in tok_params} == {id(q) for q in p.tokenizer.parameters()}
    assert not {id(q) for q in tok_params} & {id(q) for q in tf_params}
    assert tok_over == {"lr": 3e-4, "betas": (0.5, 0.9), "weight_decay": 0.005}
    assert tf_over["lr"] == 1e-4 and tf_over["weight_decay"] == 0.05
    batch = TensorDict({("obs", "state"): torch.randn(6, 2, 5), "action": torch.rand(6, 16, 3) * 4 - 2}, batch_size=[6])
    p.set_stage("tokenizer")
    loss, m = p.loss(batch)
    assert {"recon_mse", "vq_loss"} <= set(m)
    loss.backward()
    assert all(q.grad is None for q in p.transformer.parameters())
    p.zero_grad()
    p.set_stage("transformer")
    loss, m = p.loss(batch)
    assert loss.item() == pytest.approx(math.log(32), rel=0.05)  # near-uniform logits at init
    assert "token_acc_s4" in m
    loss.backward()
    assert all(q.grad is None for q in p.tokenizer.parameters())  # the tokenizer is frozen
    assert p.transformer.word_embed.weight.grad is not None
    obs = {"state": np.random.randn(3, 2, 5).astype(np.float32)}
    a, f = p.sample_actions(obs, num_samples=4, return_features=True)
    assert a.shape == (3, 4, 16, 3) and f.shape == (3, 4, 32) and a.abs().max() <= 2.0 + 1e-4
    assert p.predict_chunk(obs).shape == (3, 8, 3)
    err = p.reconstruction_error(torch.rand(4, 16, 3) * 4 - 2)
    assert set(err) == {"recon_mse_normalized", "recon_mae"}


def test_candidates_encode_the_observation_once_and_differ():
    p = _policy()
    _randomise_adaln(p)
    p.transformer.head.weight.data.div_(30.0)  # flatter logits so top-k sampling varies
    calls = []
    p.encoder.register_forward_hook(lambda *a: calls.append(1))
    torch.manual_seed(0)
    a = p.sample_actions({"state": np.random.randn(2, 2, 5).astype(np.float32)}, num_samples=8)
    assert a.shape == (2, 8, 16, 3) and len(calls) == 1
    assert len({tuple(c.flatten().tolist()) for c in a[0]}) > 1  # top-k sampling gives distinct chunks
    g1 = p.sample_actions({"state": np.zeros((2, 2, 5), np.float32)}, num_samples=3, top_k=1)
    assert torch.equal(g1[:, 0], g1[:, 1])  # greedy candidates coincide


def test_save_load_roundtrip_gives_identical_actions(tmp_path):
    p = _policy()
    _randomise_adaln(p)
    p.save_pretrained(tmp_path / "carp")
    q = load_policy(tmp_path / "carp")
    assert isinstance(q, CARPPolicy) and q.config == p.config
    assert set(q.state_dict()) >= {k for k in p.state_dict() if k.startswith(("tokenizer.", "transformer."))}
    obs = {"state": np.random.randn(2, 2, 5).astype(np.float32)}
    for n in (1, 5):
        torch.manual_seed(7)
        a = p.sample_actions(obs, num_samples=n)
        torch.manual_seed(7)
        b = q.sample_actions(obs, num_samples=n)
        assert torch.equal(a, b)


def test_config_files_build_and_bad_keys_fail():
    cfg = yaml.safe_load((CONF / "carp.yaml").read_text())
    p = make_policy(cfg, {"obs": {"state": [8]}, "action": [2]})
    assert isinstance(p, CARPPolicy)
    assert p.tokenizer.num_tokens == 20 and p.transformer.num_tokens == 20
    n_params = sum(q.numel() for q in p.transformer.parameters())
    assert 0.4e6 < n_params < 0.9e6  # the paper's state model is ~0.65M parameters
    cfg = yaml.safe_load((CONF / "carp_image.yaml").read_text())
    assert cfg["obs_keys"] == ["image", "proprio"] and cfg["n_obs_steps"] == 1
    with pytest.raises(ValueError, match="unknown config key.*scale"):
        make_policy({"type": "carp", "scale": [1]}, SHAPE)
    with pytest.raises(ValueError, match="last scale"):
        make_policy({"type": "carp", "scales": [1, 2, 8]}, SHAPE)


def test_qk_norm_attention_is_cosine_times_a_capped_per_head_scale():
    """``qk_norm=True`` (the official code's attention): softmax(cos(q_h, k_h) * s_h) v with s_h = exp(log-scale)
    starting at 4 and capped at 100; the policy builds it into every block."""
    from robotrl.nn.transformer import Attention

    torch.manual_seed(0)
    att = Attention(16, 2, qk_norm=True).eval()
    x = torch.randn(3, 5, 16)

    def manual(scales):
        q = att._heads(att.q(x))
        k, v = att.kv(x).chunk(2, dim=-1)
        k, v = att._heads(k), att._heads(v)
        logits = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-1, -2) * scales.view(1, 2, 1, 1)
        out = (logits.softmax(-1) @ v).transpose(1, 2).reshape(3, 5, 16)
        return att.proj(out)

    with torch.no_grad():
        assert torch.allclose(att(x), manual(torch.tensor([4.0, 4.0])), atol=1e-5)
        att.qk_log_scale.copy_(torch.tensor([math.log(2.0), math.log(1e4)]).view(1, 2, 1, 1))
        assert torch.allclose(att(x), manual(torch.tensor([2.0, 100.0])), atol=1e-5)  # second head capped
    p = _policy(qk_norm=True)
    assert all(b.attn.qk_log_scale is not None for b in p.transformer.blocks)
    groups, over = p.optim_groups("transformer")  # the logit scales are not weight-decayed
    assert over["weight_decay"] == 0.05 and "weight_decay" not in groups[0] and groups[1]["weight_decay"] == 0.0
    assert {id(q) for q in groups[1]["params"]} == {id(b.attn.qk_log_scale) for b in p.transformer.blocks}
    n_all = len(list(p.encoder.parameters())) + len(list(p.transformer.parameters()))
    assert len(groups[0]["params"]) + len(groups[1]["params"]) == n_all
    assert all(b.attn.qk_log_scale is None for b in _policy().transformer.blocks)
