"""CFN pseudo-counts (TACO): coins, ordering of clusters by frequency, picking in-distribution candidates."""
import numpy as np
import pytest
import torch

from robotrl.verifiers import CFNConfig, CFNVerifier, rademacher_coins
from robotrl.verifiers.train import train_cfn

F = 16


def test_coins_are_rademacher_and_fixed_per_index():
    c = rademacher_coins(np.arange(2000), 20, seed=0)
    assert c.shape == (2000, 20) and set(c.unique().tolist()) == {-1.0, 1.0}
    assert abs(float(c.mean())) < 0.02                              # balanced
    assert torch.equal(rademacher_coins([5, 7], 20)[1], c[7])       # depends on the index only
    assert not torch.equal(rademacher_coins([7], 20, seed=1)[0], c[7])
    # independent across samples: E[c_i . c_j] / d ~ 0, so the mean of n coins has |.|^2 ~ d / n
    m = c[:1000].mean(0)
    assert 20 / 1000 * 0.5 < float(m.pow(2).sum()) < 20 / 1000 * 2.0


@pytest.fixture(scope="module")
def clusters():
    g = torch.Generator().manual_seed(0)
    mu_a, mu_b = torch.randn(F, generator=g), torch.randn(F, generator=g)
    a = mu_a + 0.05 * torch.randn(300, F, generator=g)   # seen 10x more often
    b = mu_b + 0.05 * torch.randn(30, F, generator=g)
    verifier = train_cfn(torch.cat([a, b]), {"hidden_dim": 64, "num_blocks": 2, "dropout": 0.0, "feature_scale": 1.0},
                         {"epochs": 60, "batch_size": 64, "lr": 1e-3, "seed": 0}, progress=False)
    test = {"a": mu_a + 0.05 * torch.randn(50, F, generator=g), "b": mu_b + 0.05 * torch.randn(50, F, generator=g),
            "outlier": 3.0 * torch.randn(50, F, generator=g)}
    return verifier, test


def test_pseudo_counts_order_clusters_by_frequency(clusters):
    verifier, test = clusters
    with torch.no_grad():
        n = {k: verifier.pseudo_counts(x) for k, x in test.items()}
    # the frequent cluster gets the larger count, the rare one the smaller, unseen points ~ nothing
    assert n["a"].median() > 1.5 * n["b"].median()
    assert n["b"].min() > 10 * n["outlier"].max()
    assert float(n["outlier"].max()) < 1.0


def test_verifier_picks_the_in_distribution_candidate(clusters):
    verifier, test = clusters
    for pos in range(4):  # one in-distribution candidate hidden among 7 outliers, at several positions
        feats = test["outlier"][pos * 8 : pos * 8 + 8].clone()
        feats[2 * pos] = test["b"][pos]
        scores = verifier.score({}, torch.zeros(1, 8, 4, 2), feats[None])
        assert scores.shape == (1, 8) and int(scores.argmax()) == 2 * pos


def test_cfn_refuses_wrong_feature_size_and_bad_config(clusters):
    verifier, _ = clusters
    with pytest.raises(ValueError, match="features of size 16"):
        verifier.pseudo_counts(torch.zeros(3, 8))
    with pytest.raises(ValueError, match="feature_dim"):
        CFNVerifier(CFNConfig())
    with pytest.raises(ValueError, match="unknown config key"):
        CFNConfig.from_dict({"feature_dim": 4, "hiden_dim": 3})


def test_prior_is_frozen_and_stats_freeze_in_eval(clusters):
    verifier, test = clusters
    assert not any(p.requires_grad for p in verifier.cfn.prior.parameters())
    before = verifier.cfn.prior_stats.mean.clone()
    with torch.no_grad():
        verifier.cfn.eval()(test["outlier"])
    assert torch.equal(before, verifier.cfn.prior_stats.mean)
