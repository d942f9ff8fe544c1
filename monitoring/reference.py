"""The reference: GTZAN training-split tracks (track-level features, from the features artifact) and
the champion's predictions on them (its bundle scores their audio, as it scores a batch)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from monitoring.scoring import Champion, champion_proba
from musicgenre.config import resolve
from musicgenre.errors import DataError
from musicgenre.features import FeatureConfig, feature_names
from musicgenre.io import write_parquet


def reference_tracks(*, params: dict[str, Any]) -> list[str]:
    """Track ids of the reference split (monitoring.reference_split of monitoring.split_column)."""
    settings = params["monitoring"]
    splits = pd.read_csv(resolve(params["paths"]["splits"]))
    tracks = splits.loc[splits[settings["split_column"]] == settings["reference_split"], "track"].tolist()
    if not tracks:
        raise DataError(
            f"{resolve(params['paths']['splits'])}: no {settings['reference_split']!r} tracks "
            f"in {settings['split_column']!r}"
        )
    return tracks


def reference_table(*, params: dict[str, Any], champion: Champion) -> pd.DataFrame:
    """file + the 88 track-level features + predicted_genre, confidence, proba_<genre> of the champion;
    cached in the store per champion version (the features artifact's mtime is part of the key)."""
    from musicgenre.models.data import load_tables, track_features

    features_path = resolve(params["paths"]["features"])
    cache = (
        resolve(params["monitoring"]["store"])
        / "reference"
        / f"{champion.name}-v{champion.version}-{int(features_path.stat().st_mtime)}.parquet"
    )
    if cache.is_file():
        return pd.read_parquet(cache)
    tracks, names = reference_tracks(params=params), feature_names(FeatureConfig.from_params(params))
    items = track_features(tables=load_tables(params=params), tracks=tracks)
    audio = pd.read_csv(resolve(params["paths"]["tracks"])).set_index("track")["path"]
    proba, errors = champion_proba(champion=champion, paths=[str(resolve(audio[track])) for track in tracks])
    if any(errors):
        raise DataError(f"the champion could not score reference tracks: {[e for e in errors if e][:3]}")
    frame = pd.DataFrame([item.track_vector for item in items], columns=names)
    frame.insert(0, "file", tracks)
    frame["predicted_genre"] = [champion.classes[i] for i in proba.argmax(axis=1)]
    frame["confidence"] = proba.max(axis=1)
    write_parquet(cache, frame)
    return frame
