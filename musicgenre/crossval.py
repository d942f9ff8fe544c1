"""Repeated artist-grouped k-fold cross-validation of a configured model, refitted per fold.

The fixed test split holds only ~35 tracks, so one accuracy moves by ~3 points per track; k folds x
repeats over the other split tracks (the grouped test split is left out) give a mean and a spread.
Folds come from musicgenre.splits.grouped_folds (no artist on both sides); repeat r shuffles with seed + r.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from .models.data import Tables
from .oof import out_of_fold
from .selection import cv_summary, fold_scores
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
    # the per-fold scores and their mean / sample std are evaluate's own (musicgenre.selection)
    summary = cv_summary(scores=fold_scores(oof=oof.assign(model=name), classes=classes))[name]
    return {**summary, "cv_folds": folds, "cv_repeats": repeats, "cv_tracks": len(tracks)}
