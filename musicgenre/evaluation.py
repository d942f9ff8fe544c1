"""Track-level evaluation of stored predictions: metrics per split, confusions, misclassifications.

Every trained model writes `predictions.parquet` (track, genre, split, proba_<genre> x 10); all
numbers here are computed from those tables, so evaluation never re-runs a model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, log_loss, precision_recall_fscore_support

from .io import atomic_path
from .models.predictor import PREDICTIONS_FILE, ModelMeta, proba_columns


def predicted_labels(*, frame: pd.DataFrame, classes: list[str]) -> np.ndarray:
    """Top-1 genre of each row (ties go to the first genre in params order, like argmax)."""
    return np.asarray(classes)[frame[proba_columns(classes)].to_numpy().argmax(axis=1)]


def split_metrics(*, frame: pd.DataFrame, classes: list[str]) -> dict[str, Any]:
    """Accuracy, macro-F1, log loss, per-genre P/R/F1 and the confusion matrix of one split."""
    truth = frame["genre"].to_numpy()
    proba = frame[proba_columns(classes)].to_numpy(dtype=float)
    predicted = predicted_labels(frame=frame, classes=classes)
    precision, recall, f1, support = precision_recall_fscore_support(truth, predicted, labels=classes, zero_division=0)
    # renormalise: stored float32 probabilities may sum to 1 only within rounding
    proba = np.clip(proba, 1e-15, 1.0)
    proba /= proba.sum(axis=1, keepdims=True)
    return {
        "n_tracks": int(len(frame)),
        "accuracy": float(accuracy_score(truth, predicted)),
        # sklearn's default label set: genres in the truth or the predictions of this split
        "macro_f1": float(f1_score(truth, predicted, average="macro", zero_division=0)),
        "log_loss": float(log_loss(truth, proba, labels=classes)),
        "per_genre": {
            genre: {"precision": float(p), "recall": float(r), "f1": float(s), "support": int(n)}
            for genre, p, r, s, n in zip(classes, precision, recall, f1, support)
        },
        "confusion": confusion_matrix(truth, predicted, labels=classes).tolist(),
    }


def evaluate_predictions(*, frame: pd.DataFrame, classes: list[str], splits: list[str]) -> dict[str, Any]:
    """Metrics of every split present, plus the train-vs-test accuracy gap (overfitting)."""
    result = {
        split: split_metrics(frame=frame[frame["split"] == split], classes=classes)
        for split in splits
        if (frame["split"] == split).any()
    }
    if "train" in result and "test" in result:
        result["train_test_gap"] = result["train"]["accuracy"] - result["test"]["accuracy"]
    return result


def confusion_pairs(*, frame: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """actual/predicted per track: the input of DVC's confusion-matrix plot template."""
    return pd.DataFrame(
        {
            "track": frame["track"].to_numpy(),
            "actual": frame["genre"].to_numpy(),
            "predicted": predicted_labels(frame=frame, classes=classes),
        }
    )


def top_predictions(*, row: pd.Series, classes: list[str], k: int) -> list[dict[str, Any]]:
    proba = row[proba_columns(classes)].to_numpy(dtype=float)
    order = np.argsort(-proba, kind="stable")[:k]
    return [{"genre": classes[i], "probability": round(float(proba[i]), 4)} for i in order]


def misclassifications(*, frame: pd.DataFrame, classes: list[str], top_k: int) -> list[dict[str, Any]]:
    """Wrong tracks grouped by (true -> predicted), most frequent confusion first."""
    pairs = confusion_pairs(frame=frame, classes=classes)
    wrong = frame.assign(predicted=pairs["predicted"].to_numpy())[
        pairs["actual"].to_numpy() != pairs["predicted"].to_numpy()
    ]
    groups = []
    for (actual, predicted), rows in wrong.groupby(["genre", "predicted"], sort=False):
        tracks = [
            {"track": row["track"], "top": top_predictions(row=row, classes=classes, k=top_k)}
            for _, row in rows.sort_values("track").iterrows()
        ]
        groups.append({"actual": actual, "predicted": predicted, "count": len(tracks), "tracks": tracks})
    return sorted(groups, key=lambda group: (-group["count"], group["actual"], group["predicted"]))


def plot_confusion(*, matrix: list[list[int]], classes: list[str], title: str, target: Path) -> None:
    """A labelled confusion-matrix PNG for people (DVC renders the interactive one)."""
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on servers or CI
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    figure, axes = plt.subplots(figsize=(7, 6))
    ConfusionMatrixDisplay(np.asarray(matrix), display_labels=classes).plot(
        ax=axes, colorbar=False, xticks_rotation=45, cmap="Blues"
    )
    axes.set_title(title)
    figure.tight_layout()
    with atomic_path(target, suffix=".png") as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)


def load_run(model_dir: Path) -> tuple[ModelMeta, pd.DataFrame]:
    """meta.json and predictions.parquet of one trained model/protocol directory."""
    return ModelMeta.read(model_dir), pd.read_parquet(model_dir / PREDICTIONS_FILE)
