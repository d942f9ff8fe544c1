"""Out-of-fold probabilities: every track scored by a model that never saw its artist.

Repeated artist-grouped k-fold over the given tracks (musicgenre.splits.grouped_folds; repeat r uses
seed + r, so every model of one run sees the same folds and comparisons between models are paired).
The rows are the input of grouped-CV scores, calibration, conformal sets and accuracy estimation.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .models import fit_predictor
from .models.data import Tables, track_features
from .models.predictor import proba_columns
from .splits import grouped_folds

if TYPE_CHECKING:
    from .extraction import TrackFeatures
    from .tagger import TaggerRef


def fold_plan(
    tracks: pd.DataFrame, *, folds: int, repeats: int, seed: int
) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
    """(repeat, fold, train_idx, test_idx) of every fit, the same for every model given the same tracks."""
    plan = []
    for repeat in range(repeats):
        with warnings.catch_warnings():  # a genre with fewer artists than folds is expected on subsets
            warnings.simplefilter("ignore", UserWarning)
            pairs = grouped_folds(tracks, n_splits=folds, seed=seed + repeat)
        plan += [(repeat, fold, train, test) for fold, (train, test) in enumerate(pairs)]
    return plan


def inner_validation(
    tracks: pd.DataFrame, *, train_idx: np.ndarray, folds: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(fit, validation) positions of `tracks` inside a training fold: the validation tracks are one
    artist-grouped, genre-stratified fold of the training tracks, disjoint in artists from the rest."""
    _, _, fit, valid = fold_plan(tracks.iloc[train_idx].reset_index(drop=True), folds=folds, repeats=1, seed=seed)[0]
    return train_idx[fit], train_idx[valid]


def out_of_fold(
    *,
    name: str,
    settings: dict[str, Any],
    tables: Tables,
    tracks: pd.DataFrame,
    classes: list[str],
    seed: int,
    folds: int,
    repeats: int,
    threads: int,
    embedding: TaggerRef | None = None,
    inner_folds: int | None = None,
    seed_per_repeat: bool = False,
    items: list[TrackFeatures] | None = None,
) -> pd.DataFrame:
    """repeat, fold, track, genre, proba_<genre> x classes: one row per track per repeat.
    `tracks` needs track, genre and artist_group columns. With `inner_folds` (models that early-stop),
    one artist-grouped fold of each training fold is held back as their validation set, so the held-out
    fold never steers training; with `seed_per_repeat`, repeat r also fits with seed + r (repeats are
    then seeds too). `items` (in the order of `tracks`) replaces the tables' features, e.g. embeddings
    made with other settings."""
    tracks = tracks.reset_index(drop=True)
    labels = tracks["genre"].map(classes.index).to_numpy()
    items = items if items is not None else track_features(tables=tables, tracks=tracks["track"])
    parts = []
    for repeat, fold, train_idx, test_idx in fold_plan(tracks, folds=folds, repeats=repeats, seed=seed):
        held_out = [items[i] for i in test_idx]
        fit_idx, valid_idx = (train_idx, test_idx)  # models without early stopping ignore the valid items
        if inner_folds is not None:
            fit_idx, valid_idx = inner_validation(tracks, train_idx=train_idx, folds=inner_folds, seed=seed + repeat)
        predictor = fit_predictor(
            name=name,
            settings=settings,
            seed=seed + repeat if seed_per_repeat else seed,
            classes=classes,
            threads=threads,
            train_items=[items[i] for i in fit_idx],
            train_labels=labels[fit_idx],
            valid_items=[items[i] for i in valid_idx],
            valid_labels=labels[valid_idx],
            embedding=embedding,
        )
        rows = tracks.loc[test_idx, ["track", "genre"]].reset_index(drop=True)
        rows.insert(0, "fold", fold)
        rows.insert(0, "repeat", repeat)
        parts.append(
            pd.concat([rows, pd.DataFrame(predictor.predict_proba(held_out), columns=proba_columns(classes))], axis=1)
        )
    return pd.concat(parts, ignore_index=True)
