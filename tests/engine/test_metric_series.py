"""Learning curves read back from metrics.jsonl resolve resumes: rows past the checkpoint a run was
resumed from are superseded by the rows the resumed run logs."""
from __future__ import annotations

from robotrl.engine.logger import Logger, metric_series, read_metrics


def test_metric_series_drops_the_segment_a_resume_replaced(tmp_path):
    log = Logger(tmp_path, tensorboard=False)
    for step, v in ((50, 0.1), (100, 0.2), (150, 0.3), (200, 0.4)):  # killed after 200; checkpoint at 100
        log.log(step, {"eval/x": v, "train/loss": 1.0})
    for step, v in ((150, 0.5), (200, 0.6), (250, 0.7)):  # the resumed run
        log.log(step, {"eval/x": v})
    log.close()
    rows = read_metrics(tmp_path)
    assert [r["step"] for r in rows if "eval/x" in r] == [50, 100, 150, 200, 150, 200, 250]
    assert metric_series(rows, "eval/x") == [(50, 0.1), (100, 0.2), (150, 0.5), (200, 0.6), (250, 0.7)]
    # a resumed run that has not yet reached the killed run's last step drops the stale tail too
    assert metric_series(rows[:5] + [{"step": 150, "eval/x": 0.9}], "eval/x") == [(50, 0.1), (100, 0.2), (150, 0.9)]
    assert metric_series(rows, "train/loss") == [(50, 1.0), (100, 1.0), (150, 1.0), (200, 1.0)]
