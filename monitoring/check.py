"""One batch end to end: score → drift report → saved report → dashboard run → alert on drift → overview page."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from monitoring.alerts import send_alert
from monitoring.batch import check_batch_id, new_batch_id
from monitoring.dashboard import add_batch
from monitoring.drift import CONFIDENCE, GENRE, analyse, save
from monitoring.overview import write_overview
from monitoring.reference import reference_table
from monitoring.scoring import Champion, ScoredBatch, score_batch
from monitoring.summary import DriftSummary, ModelRef
from musicgenre.errors import DataError
from musicgenre.models.predictor import PROBA_PREFIX

log = logging.getLogger(__name__)


class EmptyBatch(DataError):
    """No file of the batch could be scored."""


def current_table(batch: ScoredBatch) -> pd.DataFrame:
    """The batch's track-level features joined with the champion's top genre, confidence, probabilities
    and each file's novelty."""
    kept = ["file", GENRE, CONFIDENCE, "novelty", "novelty_percentile"]
    kept += [c for c in batch.predictions.columns if c.startswith(PROBA_PREFIX)]
    return batch.features.merge(batch.predictions[kept], on="file", validate="one_to_one")


def verdict_line(summary: DriftSummary) -> str:
    """`batch b: drift, share 0.75 >= 0.18 (threshold for 110 files, false-alarm rate 3.0 %); accuracy ~ ...`."""
    features = summary.signals.features
    return (
        f"batch {summary.batch_id}: {summary.verdict}, share {features.share:.3f} "
        f"vs threshold {features.threshold:.3f} "
        f"for {summary.n_current} files (false-alarm rate {features.false_alarm:.1%}); estimated accuracy "
        f"{summary.estimate_text()}"
    )


def check_batch(
    *,
    folder: Path,
    params: dict[str, Any],
    champion: Champion,
    batch_id: str | None = None,
    show_progress: bool = False,
) -> DriftSummary:
    """Score the folder, compare with the reference, save report + run; the summary (with verdict)."""
    batch_id = check_batch_id(batch_id or new_batch_id())
    batch = score_batch(folder=folder, params=params, champion=champion, batch_id=batch_id, show_progress=show_progress)
    rejected = [vars(r) | {"path": str(r.path)} for r in batch.rejected]
    if batch.predictions.empty:
        raise EmptyBatch(f"{folder}: no audio file could be scored; refused: {[r['reason'] for r in rejected]}")
    summary, snapshot = analyse(
        reference=reference_table(params=params, champion=champion),
        current=current_table(batch),
        params=params,
        batch_id=batch_id,
        model=ModelRef(name=champion.name, version=champion.version),
        shift=champion.accuracy_shift,
    )
    summary.rejected = rejected
    summary.run_id = add_batch(
        params=params,
        snapshot=snapshot,
        top_features=[row["feature"] for row in summary.top_features],
        latest=verdict_line(summary),
        novel="; ".join(f"{r['file']} (percentile {r['novelty_percentile']:.0f})" for r in summary.novel_files or []),
    )
    summary.alert = send_alert(summary=summary, params=params) if summary.drift else None
    summary.report_dir = str(save(summary=summary, snapshot=snapshot, params=params))
    write_overview(params=params)  # every batch so far, this one included
    log.info("batch %s: %s (share of drifted features %.3f)", batch_id, summary.verdict, summary.signals.features.share)
    return summary
