"""Leakage-free splits: an artist group (and so every segment of a track) sits on one side only."""

from __future__ import annotations

import warnings
from importlib import resources

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from .errors import ConfigError, DataError

SPLITS = ("train", "valid", "test")


def group_keys(tracks: pd.DataFrame) -> pd.Series:
    """Sturm's artist group, or the track itself when its artist is unknown."""
    groups = tracks["artist_group"].fillna("").astype(str).str.strip()
    groups = groups.str.replace(r"\.0$", "", regex=True)  # ids read back as floats
    return ("artist:" + groups).where(groups != "", "track:" + tracks["track"])


def grouped_split(
    tracks: pd.DataFrame, *, test_size: float, valid_size: float, seed: int, candidates: int = 1
) -> pd.Series:
    """Stratified group split into train/valid/test; no group is on two sides.

    Large artist groups make one shuffle far from the target proportions, so `candidates` shuffles
    are tried and the one closest to the per-genre targets is kept (deterministic for a seed)."""
    sizes = {"train": 1.0 - test_size - valid_size, "valid": valid_size, "test": test_size}
    options = [
        _grouped_split_once(tracks, test_size=test_size, valid_size=valid_size, seed=seed + offset)
        for offset in range(candidates)
    ]
    return min(options, key=lambda split: stratification_error(tracks["genre"], split, sizes))


def stratification_error(labels: pd.Series, split: pd.Series, sizes: dict[str, float]) -> float:
    """Sum over genres and splits of |count - target count|."""
    counts = pd.crosstab(labels, split).reindex(columns=list(sizes), fill_value=0)
    targets = np.outer(labels.value_counts().reindex(counts.index).to_numpy(), list(sizes.values()))
    return float(np.abs(counts.to_numpy() - targets).sum())


def _grouped_split_once(tracks: pd.DataFrame, *, test_size: float, valid_size: float, seed: int) -> pd.Series:
    groups = group_keys(tracks).to_numpy()
    labels = tracks["genre"].to_numpy()
    split = np.full(len(tracks), "train", dtype=object)
    test_rows = _one_fold(labels, groups, n_splits=_folds(test_size), seed=seed)
    split[test_rows] = "test"
    rest = np.flatnonzero(split == "train")
    valid_fraction_of_rest = valid_size / (1.0 - test_size)
    valid_rows = _one_fold(labels[rest], groups[rest], n_splits=_folds(valid_fraction_of_rest), seed=seed)
    split[rest[valid_rows]] = "valid"
    return pd.Series(split, index=tracks.index, name="split_grouped")


def random_split(tracks: pd.DataFrame, *, test_size: float, valid_size: float, seed: int) -> pd.Series:
    """The comparison protocol: a stratified random track split that ignores artists."""
    labels = tracks["genre"]
    train_valid, test = train_test_split(tracks.index, test_size=test_size, stratify=labels, random_state=seed)
    train, valid = train_test_split(
        train_valid, test_size=valid_size / (1.0 - test_size), stratify=labels.loc[train_valid], random_state=seed
    )
    split = pd.Series("train", index=tracks.index, name="split_random", dtype=object)
    split.loc[valid], split.loc[test] = "valid", "test"
    return split


def standard_split(tracks: pd.DataFrame, *, min_coverage: float) -> pd.Series | None:
    """Kereliuk, Sturm & Larsen's fault-filtered split when enough of the full GTZAN is present.

    Tracks outside it (the faulty ones it filters) are marked `excluded`."""
    source = resources.files(f"{__package__}.resources") / "filtered_split.csv"
    with source.open("r", encoding="utf-8") as handle:
        standard = pd.read_csv(handle).set_index("track")["split"]
    coverage = standard.index.isin(tracks["track"]).mean()
    if coverage < min_coverage:
        return None
    return tracks["track"].map(standard).fillna("excluded").rename("split_grouped")


def grouped_folds(tracks: pd.DataFrame, *, n_splits: int, seed: int):
    """Artist-grouped stratified k-fold (train_idx, test_idx) pairs, for repeated cross-validation."""
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return list(folds.split(np.zeros(len(tracks)), tracks["genre"], group_keys(tracks)))


def _one_fold(labels: np.ndarray, groups: np.ndarray, *, n_splits: int, seed: int) -> np.ndarray:
    if len(set(groups)) < n_splits or pd.Series(labels).value_counts().max() < n_splits:
        raise DataError(
            f"too few tracks to split: {len(labels)} tracks in {len(set(groups))} artist groups "
            f"cannot be cut into {n_splits} stratified group folds"
        )
    # the largest groups always fill the first fold, so the held-out fold is drawn at random
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    chosen = np.random.default_rng(seed).integers(n_splits)
    with warnings.catch_warnings():  # a genre with fewer tracks than folds is expected on subsets
        warnings.simplefilter("ignore", UserWarning)
        held_out = [test for _, test in folds.split(np.zeros(len(labels)), labels, groups)][chosen]
    return held_out


def _folds(fraction: float) -> int:
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"split fraction must be in (0, 1), got {fraction}")
    return max(2, int(round(1.0 / fraction)))
