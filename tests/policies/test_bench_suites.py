"""bench.policies_suites: --post-success-steps reaches the composed config and uses its own demo file, run
dirs and result name."""
from __future__ import annotations

from pathlib import Path

import pytest

from bench.policies_suites import _compose, _env_overrides, main, result_name, run_dir_for


@pytest.mark.parametrize("k", [None, 16])
def test_post_success_steps_in_composed_config(k):
    cfg = _compose(_env_overrides("metaworld", "push", Path("/tmp/r"), 50, k) + ["policy=carp"])
    assert cfg.dataset.collect.post_success_steps == k
    name = Path(cfg.dataset.path).name
    assert name == ("mw_push_demos.hdf5" if k is None else f"mw_push_demos_ps{k}.hdf5")


def test_post_success_steps_only_for_metaworld():
    with pytest.raises(SystemExit):
        main(["images", "--post-success-steps", "4"])


def test_post_success_runs_and_result_are_kept_apart():
    """Runs on cut demos never resume a full-demo checkpoint, and their result never overwrites (or is
    --merge'd into) the main policies_metaworld result."""

    r = Path("/tmp/r")
    assert run_dir_for(r, "metaworld", "push", "carp") == r / "metaworld-push-carp"
    assert run_dir_for(r, "metaworld", "push", "carp", 16) == r / "metaworld-push-carp-ps16"
    assert result_name("metaworld") == "policies_metaworld"
    assert result_name("metaworld", 16) == "policies_metaworld_ps16"
