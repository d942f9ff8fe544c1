"""The scale report's projection (benchmarks/scale_report.py): a stage that does not grow stays at its largest
measurement, a linear one extrapolates linearly, and start-up cost does not hide per-track cost."""

from __future__ import annotations

import pytest

from benchmarks.scale_report import growth_name, project, slope


def test_a_flat_stage_with_noise_stays_flat():
    noisy = [(173, 1661.0), (500, 1475.0), (1000, 1512.0)]  # export_tagger's RSS: reads no track
    assert growth_name(slope(noisy)) == "flat (start-up bound)"
    assert project(noisy, to=100_000) < 1.2 * 1661.0  # not the 8 GB a two-point line through noise gives


def test_a_linear_stage_extrapolates_linearly():
    linear = [(n, 0.2 * n) for n in (173, 500, 1000)]
    assert slope(linear) == pytest.approx(1.0)
    assert project(linear, to=10_000) == pytest.approx(2000.0)


def test_start_up_cost_does_not_hide_the_per_track_cost():
    with_start_up = [(n, 30.0 + 0.1 * n) for n in (173, 500, 1000)]  # sub-linear log-log slope
    assert slope(with_start_up) < 0.9
    assert project(with_start_up, to=100_000) == pytest.approx(30.0 + 0.1 * 100_000)
