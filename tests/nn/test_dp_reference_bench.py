"""bench.dp_reference without the reference code: clear failure, and the weight-key mapping is one-to-one."""
import importlib.util

import pytest

dp_reference = pytest.importorskip("bench.dp_reference")


@pytest.mark.skipif(importlib.util.find_spec("diffusion_policy") is not None, reason="reference importable here")
def test_missing_reference_exits_with_fetch_hint(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        dp_reference.import_reference(str(tmp_path))
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "cannot import the reference" in err and "git clone https://github.com/real-stanford/diffusion_policy" in err


def test_key_mapping_is_injective_and_names_reference_layout():
    from robotrl.nn.unet1d import ConditionalUnet1D

    keys = list(ConditionalUnet1D(**dp_reference.CONFIG).state_dict())
    mapped = [dp_reference.ref_key(k) for k in keys]
    assert len(set(mapped)) == len(keys)
    assert dp_reference.ref_key("step_encoder.1.weight") == "diffusion_step_encoder.1.weight"
    assert dp_reference.ref_key("down_modules.0.0.blocks.1.0.weight") == "down_modules.0.0.blocks.1.block.0.weight"
    assert dp_reference.ref_key("up_modules.1.2.bias") == "up_modules.1.2.conv.bias"
    assert dp_reference.ref_key("final_block.1.weight") == "final_conv.0.block.1.weight"
    assert dp_reference.ref_key("final_conv.weight") == "final_conv.1.weight"
    assert dp_reference.ref_key("mid_modules.0.cond_encoder.1.weight") == "mid_modules.0.cond_encoder.1.weight"
