"""Daily drift check (Prefect): score whatever sits in monitoring.inbox with the registry champion,
compare it with the GTZAN training reference, and archive the files (never deleted).

The flow run is Completed whatever the verdict: the verdict is in its result and in a Prefect
markdown artifact (key `drift-check`), and a drift raises the alert (log line, optional webhook).
It fails only on errors (no champion, no file of the batch could be scored).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from monitoring.batch import new_batch_id
from monitoring.inbox import take
from musicgenre.config import load_params, resolve


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
    return check_batch(folder=Path(folder), params=params, champion=champion, batch_id=batch_id)


def markdown(summary: dict[str, Any]) -> str:
    """The run's artifact: verdict, signals, most moved features, predicted genres."""
    features = summary["signals"]["features"]
    lines = [f"# Drift check {summary['batch_id']}: **{summary['verdict']}**", "",
             f"- {summary['n_current']} files scored by {summary['model']['name']} v{summary['model']['version']}; "
             f"{len(summary.get('rejected', []))} refused",
             f"- drifted features: {features['count']} (share {features['share']:.3f}, threshold {features['threshold']})",
             f"- mean confidence: {summary['signals']['confidence']['reference_mean']:.3f} (reference) → "
             f"{summary['signals']['confidence']['current_mean']:.3f}",
             f"- report: `{summary['report_dir']}/drift.html`", "", "## Most moved features"]
    lines += [f"- {text}" for text in summary["top_features_text"]]
    lines += ["", "| genre | reference | batch |", "|---|---|---|"]
    lines += [f"| {r['genre']} | {r['reference_share']:.1%} | {r['current_share']:.1%} |"
              for r in summary["genre_distribution"]]
    return "\n".join(lines)


@flow(name="drift_check")
def drift_check(params_file: Optional[str] = None, tracking_uri: Optional[str] = None) -> dict[str, Any]:
    """Score the inbox as one batch; the result holds the verdict ("drift", "no-drift" or "no-batch")."""
    params, logger, batch_id = load_params(params_file), get_run_logger(), new_batch_id()
    folder = take_inbox(params=params, batch_id=batch_id)
    if folder is None:
        logger.info("inbox %s is empty: nothing to check", resolve(params["monitoring"]["inbox"]))
        return {"batch_id": None, "verdict": "no-batch", "drift": False, "report_dir": None}
    summary = check(folder=folder, params=params, batch_id=batch_id, tracking_uri=tracking_uri)
    create_markdown_artifact(key="drift-check", markdown=markdown(summary),
                             description=f"drift check {batch_id}: {summary['verdict']}")
    if summary["drift"]:
        logger.warning(summary["alert"]["text"])
    return summary
