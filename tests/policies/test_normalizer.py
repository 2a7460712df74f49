import numpy as np
import pytest
import torch

from robotrl.data.normalizers import Normalizer


def test_minmax_maps_data_range_to_unit_interval_and_inverts():
    rng = np.random.default_rng(0)
    x = rng.uniform([-3, 10, 5], [7, 20, 5], size=(500, 3)).astype(np.float32)  # last dim constant
    n = Normalizer()
    n.fit_key("action", x, "minmax")
    y = n.normalize("action", torch.from_numpy(x))
    assert torch.allclose(y[:, :2].min(0).values, torch.tensor([-1.0, -1.0]), atol=1e-5)
    assert torch.allclose(y[:, :2].max(0).values, torch.tensor([1.0, 1.0]), atol=1e-5)
    assert torch.allclose(y[:, 2], torch.zeros(500), atol=1e-6)  # constant dim centred, not blown up
    assert torch.allclose(n.unnormalize("action", y), torch.from_numpy(x), atol=1e-4)


def test_zscore_and_state_dict_roundtrip():
    x = np.random.default_rng(1).normal(3.0, 2.0, size=(1000, 4))
    n = Normalizer()
    n.fit_key("obs/state", x, "zscore")
    y = n.normalize("obs/state", torch.from_numpy(x).float())
    assert torch.allclose(y.mean(0), torch.zeros(4), atol=1e-4)
    assert torch.allclose(y.std(0, unbiased=False), torch.ones(4), atol=1e-3)
    m = Normalizer.from_spec(n.spec())
    m.load_state_dict(n.state_dict())
    assert torch.equal(m.normalize("obs/state", torch.ones(2, 4)), n.normalize("obs/state", torch.ones(2, 4)))


def test_bad_input_errors_name_the_key():
    n = Normalizer()
    with pytest.raises(ValueError, match="mode"):
        n.fit_key("action", np.zeros((3, 2)), "bogus")
    bad = np.zeros((5, 2))
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="action.*NaN.*row 3"):
        n.fit_key("action", bad)
    n.fit_key("action", np.random.rand(10, 2))
    with pytest.raises(ValueError, match="expected last dim 2"):
        n.normalize("action", torch.zeros(4, 3))
    with pytest.raises(KeyError, match="obs/missing"):
        n.normalize("obs/missing", torch.zeros(1, 2))
