"""bench.policies_suites: --post-success-steps reaches the composed config and uses its own demo file."""
from __future__ import annotations

from pathlib import Path

import pytest

from bench.policies_suites import _compose, _env_overrides, main


@pytest.mark.parametrize("k", [None, 16])
def test_post_success_steps_in_composed_config(k):
    cfg = _compose(_env_overrides("metaworld", "push", Path("/tmp/r"), 50, k) + ["policy=carp"])
    assert cfg.dataset.collect.post_success_steps == k
    name = Path(cfg.dataset.path).name
    assert name == ("mw_push_demos.hdf5" if k is None else f"mw_push_demos_ps{k}.hdf5")


def test_post_success_steps_only_for_metaworld():
    with pytest.raises(SystemExit):
        main(["images", "--post-success-steps", "4"])
