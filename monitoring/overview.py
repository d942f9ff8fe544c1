"""The batches side by side in one static page, `reports/drift/overview.html` (monitoring.overview), rebuilt
after every scored batch and every attach-labels.

Why not only the Evidently dashboard: the Evidently 0.7 UI builds each chart series from its label and stack
alone (no colour, no curve setting reaches the chart), so ten genres cycle its palette and lines are drawn
as smoothed curves. This page draws the same per-batch numbers with plotly, one fixed colour per genre
(monitoring.genre_colours) and straight segments between batches, from the summaries in reports/drift/.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from monitoring.summary import DriftSummary
from musicgenre.config import resolve
from musicgenre.io import write_text

SUMMARY = "summary.json"
LINE = {"shape": "linear", "width": 2}
TITLES = (
    "Predicted-genre share per batch (share of files)",
    "Estimated accuracy (CBPE, interval) vs realized accuracy (attached labels)",
    "Share of drifted features vs its batch-size threshold",
)


def genre_colours(params: dict[str, Any]) -> dict[str, str]:
    """monitoring.genre_colours: one distinct colour per genre of params.genres, refused otherwise."""
    colours, genres = dict(params["monitoring"]["genre_colours"]), list(params["genres"])
    if sorted(colours) != sorted(genres) or len(set(colours.values())) != len(genres):
        raise ValueError(f"monitoring.genre_colours needs one distinct colour for each of {genres}, got {colours}")
    return colours


def history(reports: Path) -> list[DriftSummary]:
    """Every batch's summary under `reports` (older layouts included), oldest first."""
    summaries = [
        DriftSummary.from_dict(json.loads(path.read_text(encoding="utf-8")))
        for path in Path(reports).glob(f"*/{SUMMARY}")
    ]
    return sorted(summaries, key=lambda s: (s.created_at, s.batch_id))


def figure(*, summaries: list[DriftSummary], params: dict[str, Any]) -> go.Figure:
    """Three stacked panels over the batches (x = batch id, oldest first), straight segments throughout."""
    colours, batches = genre_colours(params), [s.batch_id for s in summaries]
    fig = make_subplots(rows=3, cols=1, subplot_titles=TITLES, vertical_spacing=0.09)
    for genre in params["genres"]:
        shares = [{row.genre: row.current_share for row in s.genre_distribution}.get(genre) for s in summaries]
        fig.add_trace(
            go.Scatter(
                x=batches,
                y=shares,
                name=genre,
                legendgroup="genres",
                mode="lines+markers",
                line={**LINE, "color": colours[genre]},
                marker={"color": colours[genre], "size": 8},
            ),
            row=1,
            col=1,
        )
    estimates = [s.estimated_accuracy for s in summaries]
    fig.add_trace(
        go.Scatter(
            x=batches,
            y=[e.estimate if e else None for e in estimates],
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [e.high - e.estimate if e else None for e in estimates],
                "arrayminus": [e.estimate - e.low if e else None for e in estimates],
            },
            name="estimated accuracy",
            legendgroup="accuracy",
            mode="lines+markers",
            line={**LINE, "color": "#333333"},
        ),
        row=2,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=batches,
            y=[s.realized.accuracy if s.realized else None for s in summaries],
            name="realized accuracy",
            legendgroup="accuracy",
            mode="lines+markers",
            line={**LINE, "color": "#d62728", "dash": "dot"},
            marker={"symbol": "diamond", "size": 10},
        ),
        row=2,
        col=1,
    )
    for name, values, style in (
        ("share of drifted features", [s.signals.features.share for s in summaries], {"color": "#1f77b4"}),
        ("threshold at the batch's size", [s.signals.features.threshold for s in summaries], {"color": "#7f7f7f"}),
    ):
        fig.add_trace(
            go.Scatter(
                x=batches, y=values, name=name, legendgroup="drift", mode="lines+markers", line={**LINE, **style}
            ),
            row=3,
            col=1,
        )
    fig.update_yaxes(tickformat=".0%")
    fig.update_yaxes(range=[0, 1], row=2, col=1)
    fig.update_xaxes(type="category")
    fig.update_layout(
        title="GTZAN genre model: new music batches",
        height=1200,
        template="plotly_white",
        legend={"groupclick": "toggleitem"},
    )
    return fig


def write_overview(*, params: dict[str, Any]) -> Path:
    """Rebuild reports/drift/overview.html from every batch's summary (self-contained: plotly.js inline)."""
    settings = params["monitoring"]
    target = resolve(settings["overview"])
    fig = figure(summaries=history(resolve(settings["reports"])), params=params)
    write_text(target, fig.to_html(include_plotlyjs=True, full_html=True))
    return target
