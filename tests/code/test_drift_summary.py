"""The drift summary contract (monitoring/summary.py): one shape, read the same way by the alert, the
terminal report and the flow's artifact, and surviving its JSON form unchanged."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from flows.drift import markdown
from monitoring.alerts import alert_text
from monitoring.cli import EXIT_DRIFT, EXIT_OK, exit_code, render
from monitoring.summary import DriftSummary
from tests.helpers import drift_summary


def test_summary_survives_its_json_form():
    summary = drift_summary()
    again = DriftSummary.from_dict(json.loads(json.dumps(summary.to_dict())))
    assert again == summary
    assert again.signals.features.share == 0.45 and again.genre_distribution[1].genre == "rock"
    assert summary.to_dict()["signals"]["confidence"]["drop"] == 0.2  # the summary.json layout is unchanged


def test_a_summary_missing_a_signal_is_refused_by_name():
    data = drift_summary().to_dict()
    del data["signals"]["genre_distribution"]
    with pytest.raises(KeyError, match="genre_distribution"):
        DriftSummary.from_dict(data)


def test_verdict_signals_are_looked_up_by_their_params_names():
    signals = drift_summary(share=0.1).signals
    assert not signals.fired("features") and signals.fired("confidence")
    with pytest.raises(KeyError, match="no drift signal 'loudness'"):
        signals.fired("loudness")


def test_alert_artifact_and_terminal_report_read_the_same_fields():
    summary = drift_summary(batch_id="b7", share=0.5, count=44)
    assert alert_text(summary).startswith(
        "DRIFT in batch b7: 44 of the features drifted (share 0.50 >= 0.300, false-alarm rate 4.0% at 12 files); "
        "estimated accuracy 55.0% [40.0%, 70.0%]"
    )
    assert "tempo up 12.0 %; zcr_mean down 3.0 %" in alert_text(summary)
    text = markdown(summary)
    assert "# Drift check b7: **drift**" in text and "12 files scored by gtzan-genre v3; 1 refused" in text
    assert "| rock | 50.0% | 75.0% |" in text and "`reports/drift/b7/drift.html`" in text
    out = io.StringIO()
    render(summary=summary, console=Console(file=out, width=200, color_system=None))
    printed = out.getvalue()
    assert "drift batch b7: 44 drifted features, share 0.500" in printed and "0.800 → 0.600" in printed
    assert "refused /in/bad.ogg: cannot decode audio" in printed and "novel: odd.ogg (percentile 100)" in printed
    assert "estimated accuracy 55.0% [40.0%, 70.0%] (no labels)" in printed
    assert "estimated accuracy (no labels): 55.0% [40.0%, 70.0%]" in text and "odd.ogg (100th pct)" in text
    assert exit_code(summary) == EXIT_DRIFT and exit_code(drift_summary(drift=False)) == EXIT_OK


def test_a_summary_written_before_the_estimate_and_novelty_still_reads():
    """summary.json files of the first release lack the accuracy estimate, novelty, realized accuracy and the
    false-alarm rate: they read with those as None (NaN), and the alert, artifact and terminal report say so."""
    data = drift_summary(batch_id="old", share=0.5, count=44).to_dict()
    for key in ("estimated_accuracy", "novel_files", "n_novel", "realized"):
        del data[key]
    del data["signals"]["features"]["false_alarm"]
    summary = DriftSummary.from_dict(json.loads(json.dumps(data)))
    assert summary.estimated_accuracy is None and summary.novel_files is None and summary.n_novel is None
    assert summary.realized is None and summary.signals.features.share == 0.5
    assert summary.novel_names() == [] and summary.estimate_text() == "not recorded"
    assert "estimated accuracy not recorded; most moved: tempo up 12.0 %" in alert_text(summary)
    text = markdown(summary)
    assert "estimated accuracy (no labels): not recorded" in text and "most novel files: none" in text
    out = io.StringIO()
    render(summary=summary, console=Console(file=out, width=200, color_system=None))
    assert "estimated accuracy not recorded (no labels)" in out.getvalue()
    assert DriftSummary.from_dict(summary.to_dict()) == summary  # and it round-trips in its new form
