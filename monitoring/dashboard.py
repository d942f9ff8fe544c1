"""The Evidently workspace: one project, one run (snapshot) per scored batch, and its dashboard.

The dashboard is rebuilt whole after every batch (idempotent): the latest verdict with the false-alarm
rate of its threshold, drifted share against the batch-size threshold over time, estimated vs realized
accuracy over time, the most novel files, drifted count, the latest batch's most drifted features,
predicted-genre distribution and mean confidence.
Serve it with `evidently ui --workspace monitoring/workspace --host 127.0.0.1 --port 8000`.
"""

from __future__ import annotations

from typing import Any

from evidently.sdk.models import DashboardModel, DashboardTabModel, PanelMetric
from evidently.sdk.panels import bar_plot_panel, counter_panel, line_plot_panel, text_panel
from evidently.ui.workspace import Workspace

from musicgenre.config import resolve

DRIFT_COUNT = "DriftedColumnsCount"
TAB = "Drift"


def open_project(*, params: dict[str, Any]) -> tuple[Workspace, Any]:
    """The workspace (created when missing) and its project named monitoring.project."""
    settings = params["monitoring"]
    workspace = Workspace.create(str(resolve(settings["workspace"])))
    found = workspace.search_project(settings["project"])
    if found:
        return workspace, found[0]
    project = workspace.create_project(settings["project"])
    project.description = "New music scored by the champion vs the GTZAN training distribution (one run per batch)"
    project.save()
    return workspace, project


def mean_of(column: str, legend: str) -> PanelMetric:
    """A per-batch scalar carried as a constant column (monitoring.drift.SCALARS) or the mean confidence."""
    return PanelMetric(legend=legend, metric="MeanValue", metric_labels={"column": column})


def accuracy_panels() -> list[Any]:
    """Estimated (CBPE, with its interval) and realized accuracy (runs of attached labels) over time."""
    return [
        line_plot_panel(
            title="Estimated vs realized accuracy over time",
            description="estimate = mean max-probability of the champion (no labels), with its interval; "
            "realized = accuracy once labels are attached (attach-labels)",
            values=[
                mean_of("confidence", "estimated accuracy"),
                mean_of("estimate_low", "estimate low"),
                mean_of("estimate_high", "estimate high"),
                PanelMetric(legend="realized accuracy", metric="Accuracy"),
            ],
        ),
    ]


def verdict_panels(*, latest: str) -> list[Any]:
    """The share of drifted features against its batch-size threshold, and that threshold's false-alarm rate."""
    share = PanelMetric(legend="share of drifted features", metric=DRIFT_COUNT, metric_labels={"value_type": "share"})
    return [
        text_panel(title="Latest verdict", description=latest),
        line_plot_panel(
            title="Drifted share vs its batch-size threshold over time",
            size="half",
            values=[share, mean_of("share_threshold", "threshold at the batch's size")],
        ),
        line_plot_panel(
            title="False-alarm rate of the verdict at the batch's size (measured, make drift-study)",
            size="half",
            values=[mean_of("false_alarm", "false-alarm rate")],
        ),
    ]


def novelty_panels(*, novel: str) -> list[Any]:
    """The latest batch's most novel files (text) and the share of novel files per batch."""
    return [
        text_panel(title="Most novel files (latest batch)", description=novel, size="half"),
        line_plot_panel(
            title="Share of novel files over time", size="half", values=[mean_of("novel_share", "novel share")]
        ),
    ]


def panels(*, params: dict[str, Any], top_features: list[str], latest: str = "", novel: str = "") -> list[Any]:
    """The dashboard's panels; `top_features` are the latest batch's most drifted ones, `latest` its verdict
    line and `novel` its most novel files (text panels show text fixed at the last rebuild)."""
    s = params["monitoring"]
    share = [PanelMetric(legend="share of drifted features", metric=DRIFT_COUNT, metric_labels={"value_type": "share"})]
    genres = [
        PanelMetric(
            legend=g,
            metric="UniqueValueCount",
            metric_labels={"column": "predicted_genre", "label": g, "value_type": "share"},
        )
        for g in params["genres"]
    ]
    moved = [
        PanelMetric(legend=f, metric="ValueDrift", metric_labels={"column": f, "method": s["distance"]})
        for f in top_features
    ]
    return [
        text_panel(
            title="New music vs GTZAN training tracks",
            description=f"per-feature {s['stattest']} test, p < {s['stattest_threshold']} = drifted; "
            f"verdict drift when the share reaches the threshold calibrated for the batch's size",
        ),
        *verdict_panels(latest=latest or "no batch yet"),
        *accuracy_panels(),
        *novelty_panels(novel=novel or "no batch yet"),
        counter_panel(title="Share of drifted features (latest batch)", values=share, size="half"),
        counter_panel(
            title="Drifted features (latest batch)",
            size="half",
            values=[PanelMetric(legend="count", metric=DRIFT_COUNT, metric_labels={"value_type": "count"})],
        ),
        line_plot_panel(title="Share of drifted features over time", values=share, size="half"),
        line_plot_panel(
            title="Mean confidence (max probability) over time",
            size="half",
            values=[PanelMetric(legend="mean confidence", metric="MeanValue", metric_labels={"column": "confidence"})],
        ),
        bar_plot_panel(title="Predicted-genre distribution per batch (share of files)", values=genres, stacked=True),
        bar_plot_panel(
            title=f"Most drifted features of the latest batch: {s['distance']} distance (normed: in reference SDs)",
            values=moved,
        ),
    ]


def add_run(*, params: dict[str, Any], snapshot: Any) -> str:
    """Store a snapshot (a batch's drift report or its labels' classification report) as a run."""
    workspace, project = open_project(params=params)
    return str(workspace.add_run(project.id, snapshot, include_data=False).id)


def add_batch(*, params: dict[str, Any], snapshot: Any, top_features: list[str], latest: str, novel: str) -> str:
    """Store the batch's snapshot as a run and rebuild the dashboard; returns the run id."""
    workspace, project = open_project(params=params)
    ref = workspace.add_run(project.id, snapshot, include_data=False)
    plots = panels(params=params, top_features=top_features, latest=latest, novel=novel)
    workspace.save_dashboard(
        project.id, DashboardModel(tabs=[DashboardTabModel(title=TAB, panels=[p.id for p in plots])], panels=plots)
    )
    return str(ref.id)
