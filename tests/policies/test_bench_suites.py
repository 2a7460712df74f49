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


def test_carp_qk_variant_composes_qk_norm_and_gets_its_own_rows():
    """--policies carp_qk trains CARP with policy.qk_norm=true in its own run dir and its own table rows."""
    from bench.policies_suites import MW_POLICIES, build_rows

    group, _, _, extra = MW_POLICIES["carp_qk"]
    cfg = _compose(_env_overrides("metaworld", "push", Path("/tmp/r"), 50) + [f"policy={group}", *extra])
    assert cfg.policy.qk_norm is True
    assert _compose(_env_overrides("metaworld", "push", Path("/tmp/r"), 50) + ["policy=carp"]).policy.qk_norm is False
    assert run_dir_for(Path("/tmp/r"), "metaworld", "push", "carp_qk") != run_dir_for(Path("/tmp/r"), "metaworld", "push", "carp")
    res = [{"task": "push", "policy": p, "success_rate": v, "steps": 10, "wall_seconds": 1.0, "device": "cpu"}
           for p, v in (("carp", 0.2), ("carp_qk", 0.6))]
    rows = {r["case"]: r["robotrl"] for r in build_rows("metaworld", res)}
    assert rows["metaworld: push: CARP (greedy)"] == 0.2
    assert rows["metaworld: push: CARP (greedy, QK-norm attention)"] == 0.6
    with pytest.raises(SystemExit):
        main(["metaworld", "--policies", "carp_typo"])
