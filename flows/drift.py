"""Daily drift check (Prefect): score whatever sits in monitoring.inbox with the registry champion,
compare it with the GTZAN training reference, and archive the files (never deleted).

The flow run is Completed whatever the verdict: the verdict is in its result and in a Prefect
markdown artifact (key `drift-check`), and a drift raises the alert (log line, optional webhook).
It fails only on errors (no champion, no file of the batch could be scored).

`python -m flows.drift` runs the flow once from the command line; exit codes as `python -m
monitoring.cli score-batch`: 0 no drift (or an empty inbox), 3 drift, 1 error, 2 usage error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from monitoring.batch import new_batch_id
from monitoring.cli import EXIT_DRIFT, EXIT_ERROR, EXIT_OK
from monitoring.inbox import take
from monitoring.summary import DriftSummary
from musicgenre.config import load_params, resolve
from musicgenre.errors import reported


@task(name="take-inbox")
def take_inbox(*, params: dict[str, Any], batch_id: str) -> Optional[str]:
    """Move the inbox's files into archive/<batch_id>/; None when nothing is waiting."""
    settings = params["monitoring"]
    folder = take(inbox=resolve(settings["inbox"]), archive=resolve(settings["archive"]), batch_id=batch_id)
    return str(folder) if folder else None


@task(name="check-batch")
def check(*, folder: str, params: dict[str, Any], batch_id: str, tracking_uri: Optional[str]) -> dict[str, Any]:
    """Score + drift report + dashboard run + alert, in one task (the champion stays in memory)."""
    from monitoring.check import check_batch
    from monitoring.scoring import load_scoring_model

    champion = load_scoring_model(params=params, tracking_uri=tracking_uri)
    return check_batch(folder=Path(folder), params=params, champion=champion, batch_id=batch_id).to_dict()


def markdown(summary: DriftSummary) -> str:
    """The run's artifact: verdict, signals, most moved features, predicted genres."""
    features, confidence = summary.signals.features, summary.signals.confidence
    novel = [f"{row['file']} ({row['novelty_percentile']:.0f}th pct)" for row in summary.novel_files or []]
    lines = [
        f"# Drift check {summary.batch_id}: **{summary.verdict}**",
        "",
        f"- {summary.n_current} files scored by {summary.model.name} v{summary.model.version}; "
        f"{len(summary.rejected)} refused",
        f"- drifted features: {features.count} (share {features.share:.3f}, threshold {features.threshold})",
        f"- mean confidence: {confidence.reference_mean:.3f} (reference) → {confidence.current_mean:.3f}",
        f"- estimated accuracy (no labels): {summary.estimate_text()}",
        f"- verdict threshold at {summary.n_current} files: share {features.threshold:.3f} "
        f"(false-alarm rate {features.false_alarm:.1%})",
        f"- most novel files: {', '.join(novel) or 'none'}",
        f"- report: `{summary.report_dir}/drift.html`",
        "",
        "## Most moved features",
    ]
    lines += [f"- {text}" for text in summary.top_features_text]
    lines += ["", "| genre | reference | batch |", "|---|---|---|"]
    lines += [
        f"| {row.genre} | {row.reference_share:.1%} | {row.current_share:.1%} |" for row in summary.genre_distribution
    ]
    return "\n".join(lines)


@flow(name="drift_check")
def drift_check(params_file: Optional[str] = None, tracking_uri: Optional[str] = None) -> dict[str, Any]:
    """Score the inbox as one batch; the result holds the verdict ("drift", "no-drift" or "no-batch")."""
    params, logger, batch_id = load_params(params_file), get_run_logger(), new_batch_id()
    folder = take_inbox(params=params, batch_id=batch_id)
    if folder is None:
        logger.info("inbox %s is empty: nothing to check", resolve(params["monitoring"]["inbox"]))
        return {"batch_id": None, "verdict": "no-batch", "drift": False, "report_dir": None}
    summary = DriftSummary.from_dict(check(folder=folder, params=params, batch_id=batch_id, tracking_uri=tracking_uri))
    create_markdown_artifact(
        key="drift-check", markdown=markdown(summary), description=f"drift check {batch_id}: {summary.verdict}"
    )
    if summary.drift and summary.alert:
        logger.warning(summary.alert["text"])
    return summary.to_dict()


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    params_file: Optional[Path] = typer.Option(None, "--params", help="params.yaml to read"),
    tracking_uri: Optional[str] = typer.Option(None, help="MLflow registry (default: env or params)"),
) -> None:
    """Run the daily drift flow once on monitoring.inbox (a Prefect flow run)."""
    with reported("error", code=EXIT_ERROR):
        summary = drift_check(params_file=str(params_file) if params_file else None, tracking_uri=tracking_uri)
    typer.echo(json.dumps({k: summary.get(k) for k in ("batch_id", "verdict", "report_dir")}, default=str))
    raise typer.Exit(EXIT_DRIFT if summary.get("drift") else EXIT_OK)


if __name__ == "__main__":
    app(prog_name="python -m flows.drift")
