"""Repeated artist-grouped k-fold cross-validation of a configured model, refitted per fold.

The fixed test split holds only ~35 tracks, so one accuracy moves by ~3 points per track; k folds x
repeats over the other split tracks (the grouped test split is left out) give a mean and a spread.
Folds come from musicgenre.splits.grouped_folds (no artist on both sides); repeat r shuffles with seed + r.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score

from .models.data import Tables
from .models.predictor import proba_columns
from .oof import out_of_fold
from .splits import SPLITS

HOLDOUT_PROTOCOL = "grouped"  # its test split is the final report's, so no CV fold ever holds it

if TYPE_CHECKING:  # for the annotation only: cross-validation passes the tagger through, never builds one
    from .tagger import TaggerRef


def cv_tracks(*, tables: Tables) -> pd.DataFrame:
    """track, genre, artist_group of every track the split stage kept (any protocol's train/valid/test),
    except the grouped protocol's test tracks: those stay untouched for the final report."""
    splits = tables.splits
    kept = splits[[c for c in splits.columns if c.startswith("split_")]].isin(SPLITS).any(axis=1)
    kept &= splits[f"split_{HOLDOUT_PROTOCOL}"] != "test"
    # the split table's `group` is already the artist key (artist:<id> or track:<id>)
    tracks = splits.loc[kept, ["track", "genre", "group"]].rename(columns={"group": "artist_group"})
    return tracks.reset_index(drop=True)


def fold_scores(*, truth: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Track accuracy and macro-F1 of one held-out fold (labels are class indices)."""
    predicted = proba.argmax(axis=1)
    return {
        "accuracy": float(accuracy_score(truth, predicted)),
        "macro_f1": float(f1_score(truth, predicted, average="macro", zero_division=0)),
    }


def cross_validate(
    *,
    name: str,
    settings: dict[str, Any],
    tables: Tables,
    classes: list[str],
    seed: int,
    folds: int,
    repeats: int,
    threads: int,
    embedding: TaggerRef | None = None,
) -> dict[str, Any]:
    """cv_<metric>_mean/_std over folds x repeats held-out folds of the model `name` (its out-of-fold rows)."""
    tracks = cv_tracks(tables=tables)
    oof = out_of_fold(
        name=name,
        settings=settings,
        tables=tables,
        tracks=tracks,
        classes=classes,
        seed=seed,
        folds=folds,
        repeats=repeats,
        threads=threads,
        embedding=embedding,
    )
    columns = proba_columns(classes)
    frame = pd.DataFrame(
        [
            fold_scores(truth=rows["genre"].map(classes.index).to_numpy(), proba=rows[columns].to_numpy())
            for _, rows in oof.groupby(["repeat", "fold"])
        ]
    )
    summary = {}
    for metric in ("accuracy", "macro_f1"):  # std over the folds x repeats scores (sample std, ddof=1)
        summary[f"cv_{metric}_mean"] = float(frame[metric].mean())
        summary[f"cv_{metric}_std"] = float(frame[metric].std(ddof=1)) if len(frame) > 1 else 0.0
    return {**summary, "cv_folds": folds, "cv_repeats": repeats, "cv_fits": len(frame), "cv_tracks": len(tracks)}
