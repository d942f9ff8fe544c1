"""The slow-host projection: per-stage slowdowns from the reference pipeline, HEAD's AVX2 run scaled."""

from __future__ import annotations

import pytest

from benchmarks.host_projection import projection, report


def run(total: float, **stages: float) -> dict:
    return {"pipeline_seconds": total, "stages": {name.replace("_at_", "@"): s for name, s in stages.items()}}


RUNS = {
    "reference/native": run(400, embed=40, evaluate=120),
    "reference/avx2": run(480, embed=60, train_at_cnn=120, evaluate=120),
    "head/native": run(330, embed=35, evaluate=150),
    "head/avx2": run(400, embed=36, evaluate=200),
}


def test_projection_scales_head_by_the_median_stage_slowdown():
    slow = {"embed": 180, "train@cnn": 360, "evaluate": 480, "total": 1440}
    result = projection(runs=RUNS, slow_host=slow)
    assert result["slowdown"] == pytest.approx({"embed": 3.0, "train@cnn": 3.0, "evaluate": 4.0, "total": 3.0})
    assert result["projected_seconds"] == pytest.approx(400 * 3.0)
    assert result["projected_range_seconds"] == pytest.approx([1200, 1600])


def test_a_stage_the_reference_did_not_run_gives_no_slowdown():
    slow = {"embed": 180, "embed_patches": 99, "total": 1440}
    result = projection(runs=RUNS, slow_host=slow)
    assert set(result["slowdown"]) == {"embed", "total"}


def test_report_lists_every_stage_of_every_run_and_the_projection():
    result = projection(runs=RUNS, slow_host={"embed": 180, "total": 1440})
    text = report(runs=RUNS, result=result)
    assert "| `train@cnn` | – | 120 s | – | – |" in text
    assert "| `embed` | 40 s | 60 s | 35 s | 36 s | 3.00x |" in text
    assert "**20.0 min**" in text  # 400 s x 3.0
