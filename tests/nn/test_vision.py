"""Image encoder: ResNet-18-style trunk with GroupNorm, spatial softmax, train-only random crop."""
import pytest
import torch
from torch import nn

from robotrl.nn.obs_encoder import ObsEncoder
from robotrl.nn.vision import RandomCrop, SpatialSoftmax, build_image_encoder

SMALL = {"width": 8, "num_keypoints": 4, "feature_dim": 16}


def test_output_shape_groupnorm_and_resnet18_layout():
    enc = build_image_encoder((3, 32, 32), **SMALL)
    x = torch.rand(5, 3, 32, 32)
    assert enc(x).shape == (5, 16) and enc.out_dim == 16
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in enc.modules())
    assert any(isinstance(m, nn.GroupNorm) for m in enc.modules())
    assert len(enc.stages) == 8  # 4 stages x 2 basic blocks
    raw = build_image_encoder((3, 32, 32), width=8, num_keypoints=4, feature_dim=None)
    assert raw(x).shape == (5, 8) and raw.out_dim == 8  # 2 coordinates per keypoint
    full = build_image_encoder((3, 84, 84))  # the real ResNet-18 width: 64 .. 512 channels
    assert full.stages[-1].conv2.out_channels == 512
    assert 10e6 < sum(p.numel() for p in full.parameters()) < 12e6


def test_random_crop_only_in_train_mode():
    torch.manual_seed(0)
    enc = build_image_encoder((3, 48, 48), crop_ratio=0.8, blocks_per_stage=(1, 1, 1), **SMALL)  # 3x3 keypoint map
    x = torch.rand(4, 3, 48, 48)
    enc.train()
    a, b = enc(x), enc(x)
    assert not torch.allclose(a, b)  # a fresh random crop every call
    enc.eval()
    c, d = enc(x), enc(x)
    assert torch.equal(c, d)  # centre crop: deterministic
    x = torch.rand(4, 3, 40, 40)
    crop = RandomCrop((40, 40), 0.8)
    crop.eval()
    assert torch.equal(crop(x), x[..., 4:36, 4:36])
    crop.train()
    out = crop(x)
    assert out.shape == (4, 3, 32, 32)
    # every sample is a genuine 32x32 window of its own image
    for i in range(4):
        windows = x[i].unfold(1, 32, 1).unfold(2, 32, 1)  # [3, 9, 9, 32, 32]
        match = (windows == out[i][:, None, None]).flatten(3).all(-1).all(0)
        assert match.any()


def test_spatial_softmax_finds_the_bright_spot():
    ss = SpatialSoftmax(1, num_keypoints=1, temperature=0.01)
    with torch.no_grad():
        ss.keypoints.weight.fill_(1.0)
        ss.keypoints.bias.zero_()
    img = torch.zeros(1, 1, 9, 9)
    img[0, 0, 2, 6] = 1.0  # row 2 (y), column 6 (x)
    xy = ss(img)[0]
    assert xy[0].item() == pytest.approx(-1 + 2 * 6 / 8, abs=1e-3) and xy[1].item() == pytest.approx(-1 + 2 * 2 / 8, abs=1e-3)


def test_obs_encoder_uses_one_encoder_per_camera_and_bad_options_fail():
    enc = ObsEncoder({"image": [24, 24, 3], "wrist_image": [24, 24, 3], "proprio": [4]}, 2, SMALL)
    assert set(enc.image_encoders) == {"image", "wrist_image"} and enc.per_step_dim == 16 + 16 + 4
    obs = {"image": torch.rand(3, 2, 3, 24, 24), "wrist_image": torch.rand(3, 2, 3, 24, 24), "proprio": torch.randn(3, 2, 4)}
    assert enc(obs).shape == (3, 2 * 36)
    with pytest.raises(ValueError, match="unknown option.*widht"):
        build_image_encoder((3, 24, 24), widht=8)
    with pytest.raises(ValueError, match="pretrained"):
        build_image_encoder((3, 24, 24), pretrained=True)
    with pytest.raises(ValueError, match="expects"):
        build_image_encoder((3, 24, 24), **SMALL)(torch.rand(2, 3, 20, 24))
