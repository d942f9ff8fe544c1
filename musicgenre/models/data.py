"""The tables the featurize and split stages wrote, turned into the TrackFeatures that models consume.

Training, evaluation and serving all go through TrackFeatures (what `extract_file` returns for any
audio file), so a model never sees its inputs assembled two different ways.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
import pandas as pd

from ..config import resolve
from ..extraction import TrackFeatures
from ..features import FeatureConfig, feature_names
from ..splits import SPLITS
from ..tagger import BASE_PREFIX, EMBEDDING_PREFIX, POOLED_PREFIX


@dataclass
class Tables:
    features: pd.DataFrame  # track, genre, segment, then the feature columns
    logmel: np.ndarray  # (segments, n_mels, frames) memory-mapped read-only, rows described by logmel_index
    logmel_index: pd.DataFrame  # track, segment
    splits: pd.DataFrame  # track, genre, split_<protocol> ...
    feature_columns: list[str]
    embeddings: pd.DataFrame | None = None  # track, emb_* (the embed stage), read for transfer models only
    patches: pd.DataFrame | None = None  # track, patch, base_* (the embed stage), read for the deep models only


def load_tables(*, params: dict[str, Any], embeddings: bool = False, patches: bool = False) -> Tables:
    """Read the feature table, the log-mel stack and the splits named in params.paths (and the
    tagger embeddings or the base's patches when asked: only transfer / deep models need them)."""
    paths = params["paths"]
    columns = feature_names(FeatureConfig.from_params(params))
    features = pd.read_parquet(resolve(paths["features"]))
    missing = sorted(set(columns) - set(features.columns))
    if missing:
        raise ValueError(f"{resolve(paths['features'])} lacks feature columns {missing[:5]}")
    return Tables(
        features=features,
        logmel=np.load(resolve(paths["logmel"]), mmap_mode="r"),  # the deep models read it batch by batch
        logmel_index=pd.read_parquet(resolve(paths["logmel_index"])),
        splits=pd.read_csv(resolve(paths["splits"])),
        feature_columns=columns,
        embeddings=pd.read_parquet(resolve(paths["embeddings"])).set_index("track") if embeddings else None,
        patches=pd.read_parquet(resolve(paths["patches"])) if patches else None,
    )


def protocol_split(*, tables: Tables, protocol: str) -> pd.DataFrame:
    """track, genre, split of one protocol, keeping only train/valid/test (e.g. not `excluded`)."""
    column = f"split_{protocol}"
    if column not in tables.splits.columns:
        raise ValueError(f"splits table has no column {column!r}")
    frame = tables.splits[["track", "genre", column]].rename(columns={column: "split"})
    return frame[frame["split"].isin(SPLITS)].reset_index(drop=True)


def track_features(*, tables: Tables, tracks: Iterable[str]) -> list[TrackFeatures]:
    """One TrackFeatures per track, segments in order; log-mels in the stored dtype (float16), read lazily
    (consumers cast the batch they use to float32, as extract_file gives)."""
    rows = tables.features.groupby("track").indices
    mel_rows = tables.logmel_index.groupby("track").indices
    values = tables.features[tables.feature_columns].to_numpy(np.float64)
    segments = tables.features["segment"].to_numpy()
    mel_segments = tables.logmel_index["segment"].to_numpy()
    embeddings, pooled = embedding_rows(tables=tables), embedding_rows(tables=tables, prefix=POOLED_PREFIX)
    patches = patch_rows(tables=tables)
    items = []
    for track in tracks:
        if track not in rows:
            raise KeyError(f"track {track!r} has no rows in the feature table")
        own = rows[track][np.argsort(segments[rows[track]])]
        own_mels = mel_rows.get(track, np.empty(0, int))
        own_mels = own_mels[np.argsort(mel_segments[own_mels])]
        items.append(
            TrackFeatures(
                key=track,
                track_vector=values[own[segments[own] == -1][0]],
                segment_vectors=values[own[segments[own] >= 0]],
                log_mels=segment_rows(logmel=tables.logmel, rows=own_mels),
                embedding=_embedding_of(embeddings, track),
                pooled=_embedding_of(pooled, track),
                patches=_embedding_of(patches, track),
            )
        )
    return items


def segment_rows(*, logmel: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """A track's log-mel segments in its stored dtype: a view of the memory-mapped stack when its rows
    are contiguous (as featurize writes them), so nothing is read until a batch asks for it."""
    if len(rows) and np.array_equal(rows, np.arange(rows[0], rows[0] + len(rows))):
        return logmel[rows[0] : rows[0] + len(rows)]
    return np.asarray(logmel[rows])  # scattered rows: a copy of this track's segments only


def embedding_rows(*, tables: Tables, prefix: str = EMBEDDING_PREFIX) -> dict[str, np.ndarray] | None:
    """track -> its tagger embedding (emb_* columns in order; pool_* for the pooled layer), read from the
    table once rather than per track; None when embeddings were not loaded or have no such columns."""
    if tables.embeddings is None:
        return None
    columns = [c for c in tables.embeddings.columns if c.startswith(prefix)]
    if not columns:
        return None
    return dict(zip(tables.embeddings.index, tables.embeddings[columns].to_numpy(np.float64)))


def patch_rows(*, tables: Tables) -> dict[str, np.ndarray] | None:
    """track -> (patches, units) float32 outputs of the pretrained base, in patch order; None when not loaded."""
    if tables.patches is None:
        return None
    frame = tables.patches.sort_values(["track", "patch"], kind="stable")
    values = frame[[c for c in frame.columns if c.startswith(BASE_PREFIX)]].to_numpy(np.float32)
    return {track: values[rows] for track, rows in frame.groupby("track", sort=False).indices.items()}


def _embedding_of(rows: dict[str, np.ndarray] | None, track: str) -> np.ndarray | None:
    if rows is None:
        return None
    if track not in rows:
        raise KeyError(f"track {track!r} has no row in the embeddings table (run the embed stage)")
    return rows[track]
