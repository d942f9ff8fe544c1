"""Ground truth for a stored batch: `python -m monitoring.cli attach-labels <batch_id> labels.csv`.

The CSV (columns file, genre) is checked whole before anything is written: unknown files, unknown genres
and duplicate rows are refused in one line naming them, and then nothing stored changes. Accepted labels
become the store's labels/batch=<id> partition, an Evidently classification report
(reports/drift/<id>/classification.html), a run in the workspace at the batch's time (the dashboard's
realized accuracy), the summary's `realized` field next to the estimate, and the overview page
(monitoring/overview.py); each write is atomic.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from evidently import DataDefinition, Dataset, MulticlassClassification, Report
from evidently.presets import ClassificationPreset

from monitoring.overview import write_overview
from monitoring.store import read_table, write_batch
from monitoring.summary import DriftSummary, RealizedAccuracy
from musicgenre.config import resolve
from musicgenre.errors import DataError
from musicgenre.io import write_json, write_text

TARGET, GENRE = "genre", "predicted_genre"
MAX_NAMED = 5  # offending rows named in an error line


def _named(values: list[str]) -> str:
    more = f" (+{len(values) - MAX_NAMED} more)" if len(values) > MAX_NAMED else ""
    return ", ".join(repr(v) for v in values[:MAX_NAMED]) + more


def read_labels(*, path: Path, predictions: pd.DataFrame, genres: list[str]) -> pd.DataFrame:
    """file, genre rows for files of the batch; a DataError naming the problem otherwise."""
    try:
        labels = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{path}: cannot read the labels CSV ({exc})") from None
    if not {"file", TARGET} <= set(labels.columns):
        raise DataError(f"{path}: needs columns 'file' and 'genre', found {list(labels.columns)}")
    labels = labels[["file", TARGET]].apply(lambda column: column.str.strip())
    duplicated = sorted(set(labels.loc[labels["file"].duplicated(), "file"]))
    if duplicated:
        raise DataError(f"{path}: duplicate rows for {_named(duplicated)}")
    unknown_files = sorted(set(labels["file"]) - set(predictions["file"]))
    if unknown_files:
        raise DataError(f"{path}: files not in batch {predictions['batch_id'].iat[0]}: {_named(unknown_files)}")
    unknown_genres = sorted(set(labels[TARGET]) - set(genres))
    if unknown_genres:
        raise DataError(f"{path}: unknown genres {_named(unknown_genres)} (known: {', '.join(genres)})")
    if labels.empty:
        raise DataError(f"{path}: no labelled file")
    return labels


def realized(*, joined: pd.DataFrame, genres: list[str]) -> RealizedAccuracy:
    """Accuracy and per-genre recall of the champion's top genre on the labelled files."""
    correct = joined[GENRE] == joined[TARGET]
    recall = {g: (float(correct[joined[TARGET] == g].mean()) if (joined[TARGET] == g).any() else None) for g in genres}
    return RealizedAccuracy(
        accuracy=float(correct.mean()),
        n_labelled=len(joined),
        recall=recall,
        attached_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def classification_snapshot(*, joined: pd.DataFrame, batch_id: str, timestamp: datetime) -> Any:
    """Evidently's classification preset (accuracy, precision, recall, F1, per label) on the labelled files."""
    definition = DataDefinition(
        classification=[MulticlassClassification(target=TARGET, prediction_labels=GENRE)],
        categorical_columns=[TARGET, GENRE],
    )
    data = Dataset.from_pandas(joined[[TARGET, GENRE]].reset_index(drop=True), data_definition=definition)
    return Report([ClassificationPreset()]).run(
        current_data=data,
        timestamp=timestamp,
        name=f"{batch_id} labels",
        metadata={"batch_id": batch_id},
        tags=["labels"],
    )


def attach_labels(*, batch_id: str, path: Path, params: dict[str, Any]) -> DriftSummary:
    """Validate the CSV against the stored batch, then record labels, report, run and realized accuracy."""
    from monitoring.dashboard import add_run

    settings, genres = params["monitoring"], list(params["genres"])
    store, folder = resolve(settings["store"]), resolve(settings["reports"]) / batch_id
    predictions = read_table(store=store, table="predictions", batch_id=batch_id)
    if predictions.empty or not (folder / "summary.json").is_file():
        raise DataError(f"batch {batch_id}: not in the store {store} (or no summary in {folder})")
    labels = read_labels(path=Path(path), predictions=predictions, genres=genres)
    summary = DriftSummary.from_dict(_read_json(folder / "summary.json"))
    joined = labels.merge(predictions[["file", GENRE]], on="file", validate="one_to_one")
    timestamp = datetime.fromisoformat(summary.created_at).astimezone(timezone.utc).replace(tzinfo=None)
    snapshot = classification_snapshot(joined=joined, batch_id=batch_id, timestamp=timestamp)
    summary.realized = realized(joined=joined, genres=genres)
    write_batch(store=store, table="labels", batch_id=batch_id, frame=labels)
    write_text(folder / "classification.html", snapshot.get_html_str(as_iframe=False))
    write_text(folder / "classification.json", snapshot.json())
    add_run(params=params, snapshot=snapshot)
    write_json(folder / "summary.json", summary.to_dict())
    write_overview(params=params)  # the realized accuracy next to the estimate
    return summary


def _read_json(path: Path) -> dict[str, Any]:
    import json

    return dict(json.loads(path.read_text(encoding="utf-8")))
