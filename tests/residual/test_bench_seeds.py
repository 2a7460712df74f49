"""bench.residual's seed aggregation: the table's mean must be the mean of the seeds' final evaluations."""
import pytest

from bench.residual import merge_seeds


def _run(final: float, base: float, curve: list[tuple[int, float]], steps: int = 100) -> dict:
    return {"base_success_50": base, "final_success_50": final, "env_steps_per_s": 10.0, "updates_per_s": 20.0,
            "updates": 200, "wall_seconds": 10.0, "steps": steps,
            "curve": [{"env_steps": s, "success_rate": v} for s, v in curve]}


def _residual_run_dir(tmp_path):
    """A finished residual run as robotrl-train leaves it: base 0.4, final 0.9 over 100 env steps."""
    import json

    run = tmp_path / "run-s0"
    (run / "eval").mkdir(parents=True)
    (run / "eval" / "metrics.json").write_text(json.dumps({"base_success_rate": 0.4, "success_rate": 0.9}))
    (run / "residual_curve.json").write_text(json.dumps({
        "curve": [{"env_steps": 0, "success_rate": 0.4}, {"env_steps": 100, "success_rate": 0.9}],
        "env_steps_per_s": 10.0, "updates_per_s": 20.0, "updates": 200, "wall_seconds": 10.0, "env_steps": 100}))
    return run


def test_merge_seeds_means_and_keeps_each_seed():
    a = _run(0.9, 0.3, [(0, 0.3), (50, 0.6), (100, 0.9)])
    b = _run(0.8, 0.4, [(0, 0.4), (50, 0.8)], steps=50)  # cut short: no point at 100
    m = merge_seeds([a, b])
    assert m["final_success_50"] == pytest.approx(0.85)
    assert m["final_success_50_std"] == pytest.approx(0.05)
    assert m["base_success_50"] == pytest.approx(0.35)
    assert m["steps"] == 50
    assert [(p["env_steps"], p["success_rate"], p["n_seeds"]) for p in m["curve"]] == [
        (0, pytest.approx(0.35), 2), (50, pytest.approx(0.7), 2), (100, pytest.approx(0.9), 1)]
    assert m["per_seed"] == [a, b]


def test_merge_single_seed_is_that_seed():
    a = _run(0.9, 0.3, [(0, 0.3)])
    m = merge_seeds([a])
    assert m["final_success_50"] == 0.9 and m["per_seed"] == [a]


def test_record_rlpd_reads_a_resumed_cli_run(tmp_path):
    """The RLPD part taken from a robotrl-train algo=rlpd run: the evaluation curve after a kill and resume
    keeps only the resumed segment, the last evaluation is the reported value, the UTD comes from the run."""
    import json

    from bench.residual import record_rlpd

    rows = [{"step": 500, "online_rollout/episode_return": 0.0}, {"step": 1000, "online_eval/mean_return": 0.1},
            {"step": 1000, "online_train/updates_per_s": 30.0}, {"step": 2000, "online_eval/mean_return": 0.2},
            # killed after 2000, resumed from the checkpoint at 1000:
            {"step": 1500, "online_rollout/episode_return": 1.0}, {"step": 2000, "online_eval/mean_return": 0.5},
            {"step": 2000, "online_train/updates_per_s": 40.0}]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "online_config.json").write_text(json.dumps({"utd": 2.0}))
    res, cmd = record_rlpd(tmp_path)
    assert res["curve"] == [{"env_steps": 1000, "mean_return": 0.1}, {"env_steps": 2000, "mean_return": 0.5}]
    assert res["final_success_20"] == 0.5 and res["steps"] == 2000 and res["utd"] == 2.0
    assert res["updates_per_s"] == 35.0
    assert cmd == "robotrl-train "  # no hydra/overrides.yaml in this synthetic run


def test_named_result_keeps_its_parts_apart_from_the_main_result(tmp_path, monkeypatch):
    """``--result NAME`` records into <out>/NAME/part_*.json: a later main-result call that reads the task's
    own part files never picks up another recipe's runs."""
    import json
    import sys

    import bench.common
    import bench.residual as br

    run = _residual_run_dir(tmp_path)
    out = tmp_path / "bench_out"
    monkeypatch.setitem(br.TASKS, "lift", dict(br.TASKS["lift"], out=str(out)))
    monkeypatch.setattr(bench.common, "RESULTS_DIR", tmp_path / "results")
    (tmp_path / "results").mkdir()
    monkeypatch.setattr(sys, "argv", ["bench.residual", "--task", "lift", "--result", "residual_lift_other",
                                      "--record-run", str(run)])
    br.main()
    assert json.loads((out / "residual_lift_other" / "part_residual.json").read_text())["final_success_50"] == 0.9
    assert not (out / "part_residual.json").exists()
    rec = json.loads((tmp_path / "results" / "residual_lift_other.json").read_text())
    assert rec["rows"][0]["robotrl"] == 0.9 and rec["rows"][0]["base_success_rate"] == 0.4
    assert (tmp_path / "results" / "residual_curve_lift_other.png").exists()


def test_rlpd_peer_label_and_ratio_follow_its_budget(tmp_path, monkeypatch):
    """An RLPD run recorded at other env steps than the residual's budget is named as such in the peer
    column and the row has no ratio (a ratio across unequal budgets says nothing); no RLPD run: 'not run';
    a run to the same budget keeps the ratio, and the label carries the run's own UTD."""
    import json
    import sys

    import bench.common
    import bench.residual as br

    run = _residual_run_dir(tmp_path)
    rlpd = tmp_path / "rlpd"
    rlpd.mkdir()
    rows = [{"step": 50, "online_eval/mean_return": 0.3}, {"step": 50, "online_train/updates_per_s": 30.0}]
    (rlpd / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    monkeypatch.setitem(br.TASKS, "lift", dict(br.TASKS["lift"], out=str(tmp_path / "bench_out")))
    monkeypatch.setattr(bench.common, "RESULTS_DIR", tmp_path / "results")
    (tmp_path / "results").mkdir()
    full = tmp_path / "rlpd_full"
    full.mkdir()
    rows = [{"step": 100, "online_eval/mean_return": 0.3}, {"step": 100, "online_train/updates_per_s": 30.0}]
    (full / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (full / "online_config.json").write_text(json.dumps({"utd": 4.0}))
    for name, extra in (("short", ["--record-rlpd", str(rlpd)]), ("none", []), ("full", ["--record-rlpd", str(full)])):
        monkeypatch.setattr(sys, "argv", ["bench.residual", "--task", "lift", "--result", f"residual_lift_{name}",
                                          "--record-run", str(run), *extra])
        br.main()
    short = json.loads((tmp_path / "results" / "residual_lift_short.json").read_text())["rows"][0]
    assert short["peer_value"] == 0.3 and short["peer_env_steps"] == 50
    assert "50 env steps (residual: 100)" in short["peer"] and short["ratio"] is None
    none = json.loads((tmp_path / "results" / "residual_lift_none.json").read_text())["rows"][0]
    assert none["peer"] == "RLPD (robotrl.rl.rlpd): not run" and none["peer_value"] is None
    full_row = json.loads((tmp_path / "results" / "residual_lift_full.json").read_text())["rows"][0]
    assert full_row["peer"] == "RLPD (robotrl.rl.rlpd), same demos/steps/UTD 4"  # the run's own UTD
    assert full_row["ratio"] == pytest.approx(0.9 / 0.3)
