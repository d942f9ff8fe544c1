"""The overview page (monitoring/overview.py): every batch's summary in one plotly page, one fixed colour per
genre and straight segments (what the Evidently 0.7 UI cannot be told), older summaries included."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import replace

import pytest

from monitoring.overview import write_overview
from monitoring.summary import AccuracyEstimate, GenreShare, RealizedAccuracy
from musicgenre.io import write_json
from tests.helpers import drift_summary


def plotted_traces(html: str) -> list[dict]:
    """The trace list handed to Plotly.newPlot in the written page."""
    start = re.search(r'Plotly\.newPlot\(\s*"[^"]+",\s*', html)
    assert start, "no Plotly.newPlot call in the page"
    traces, _ = json.JSONDecoder().raw_decode(html, start.end())
    return traces


@pytest.fixture
def local(params, tmp_path):
    out = copy.deepcopy(params)
    out["monitoring"].update(
        {"reports": str(tmp_path / "drift"), "overview": str(tmp_path / "drift" / "overview.html")}
    )
    return out


def test_each_genre_has_its_own_colour_and_every_line_is_straight(local, tmp_path):
    genres = local["genres"]
    shares = [[(i + k) % 10 / 45 for i in range(10)] for k in range(3)]  # each batch's shares sum to 1
    for k, (batch, created) in enumerate((("b1", "2026-01-01"), ("b2", "2026-01-02"), ("b0-late", "2026-01-03"))):
        summary = replace(
            drift_summary(batch_id=batch, share=0.1 * (k + 1)),
            created_at=f"{created}T00:00:00+00:00",
            genre_distribution=[GenreShare(g, 0.1, s) for g, s in zip(genres, shares[k])],
            estimated_accuracy=AccuracyEstimate(
                estimate=0.7 - 0.1 * k, low=0.6 - 0.1 * k, high=0.8 - 0.1 * k, level=0.9
            ),
            realized=RealizedAccuracy(accuracy=0.72, n_labelled=32, recall={}, attached_at="x") if k == 0 else None,
        )
        data = summary.to_dict()
        if k == 1:  # a summary.json of the first release: no estimate, novelty or realized accuracy
            for key in ("estimated_accuracy", "novel_files", "n_novel", "realized"):
                del data[key]
        write_json(tmp_path / "drift" / batch / "summary.json", data)
    page = write_overview(params=local)
    assert page == tmp_path / "drift" / "overview.html"
    traces = plotted_traces(page.read_text())
    by_name = {t["name"]: t for t in traces}
    colours = {g: by_name[g]["line"]["color"] for g in genres}
    assert len(set(colours.values())) == 10 and colours == local["monitoring"]["genre_colours"]
    assert all(t["line"]["shape"] == "linear" and t["mode"] == "lines+markers" for t in traces)
    for g, i in (("blues", 0), ("rock", 9)):  # the batches in time order, each genre its own share
        assert by_name[g]["x"] == ["b1", "b2", "b0-late"]
        assert by_name[g]["y"] == pytest.approx([shares[k][i] for k in range(3)])
    estimated = by_name["estimated accuracy"]["y"]
    assert estimated[1] is None and estimated[0] == pytest.approx(0.7) and estimated[2] == pytest.approx(0.5)
    assert by_name["realized accuracy"]["y"] == [0.72, None, None]
    assert by_name["share of drifted features"]["y"] == pytest.approx([0.1, 0.2, 0.3])


def test_a_palette_that_does_not_cover_every_genre_is_refused(local):
    local["monitoring"]["genre_colours"] = {**local["monitoring"]["genre_colours"], "rock": "#4E79A7"}
    with pytest.raises(ValueError, match="one distinct colour for each"):
        write_overview(params=local)
