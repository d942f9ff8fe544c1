"""Feature extraction over files: one file, or a batch in parallel with a progress bar.

A bad file becomes a named failure; the rest of the batch goes on.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
import pandas as pd
from joblib import Parallel, delayed, parallel_config
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from musicgenre.audio import AudioError, load_audio
from musicgenre.features import FeatureConfig, extract, feature_names


@dataclass(frozen=True)
class Limits:
    max_file_mb: float | None = None
    max_duration_s: float | None = None
    min_duration_s: float | None = None

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "Limits":
        return cls(**params.get("limits", {}))


@dataclass
class TrackFeatures:
    key: str
    track_vector: np.ndarray
    segment_vectors: np.ndarray
    log_mels: np.ndarray
    embedding: np.ndarray | None = None  # pretrained-tagger embedding, only for predictors that need it


@dataclass
class Failure:
    key: str
    path: str
    reason: str


def extract_file(path: str | os.PathLike, *, key: str, config: FeatureConfig, limits: Limits,
                 embedding: Any = None) -> TrackFeatures:
    """Load, resample and extract one file; raises AudioError naming the file. With an `embedding`
    config (musicgenre.embeddings.EmbeddingConfig) the tagger embedding is computed too."""
    y = load_audio(path, sample_rate=config.sample_rate, min_duration_s=limits.min_duration_s,
                   max_duration_s=limits.max_duration_s, max_file_mb=limits.max_file_mb)
    try:
        track_vector, segment_vectors, log_mels = extract(y, config=config)
    except ValueError as exc:
        raise AudioError(path, str(exc)) from None
    vector = None
    if embedding is not None:  # TensorFlow is imported only when a transfer model asks for it
        from musicgenre.embeddings import embed_file
        vector = embed_file(path, config=embedding, limits=limits)
    return TrackFeatures(key=key, track_vector=track_vector, segment_vectors=segment_vectors, log_mels=log_mels,
                         embedding=vector)


def _safe_extract(path: str, key: str, config: FeatureConfig, limits: Limits) -> TrackFeatures | Failure:
    try:
        return extract_file(path, key=key, config=config, limits=limits)
    except AudioError as exc:
        return Failure(key=key, path=str(path), reason=exc.reason)


def extract_batch(items: Iterable[tuple[str, str]], *, config: FeatureConfig, limits: Limits, n_jobs: int = 1,
                  show_progress: bool = True) -> tuple[list[TrackFeatures], list[Failure]]:
    """Extract (key, path) pairs in parallel worker processes, one BLAS thread each."""
    items = list(items)
    results: list[TrackFeatures] = []
    failures: list[Failure] = []
    with parallel_config(backend="loky", inner_max_num_threads=1), _progress(show_progress) as progress:
        task = progress.add_task("features", total=len(items))
        jobs = (delayed(_safe_extract)(str(path), key, config, limits) for key, path in items)
        for outcome in Parallel(n_jobs=n_jobs, return_as="generator")(jobs):
            (failures if isinstance(outcome, Failure) else results).append(outcome)
            progress.advance(task)
    return results, failures


def to_tables(results: list[TrackFeatures], config: FeatureConfig) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """Tidy feature table (segment -1 = whole track), stacked log-mel segments and their index."""
    names = feature_names(config)
    rows, index_rows, mels = [], [], []
    for item in results:
        rows.append([item.key, -1, *item.track_vector])
        for segment, vector in enumerate(item.segment_vectors):
            rows.append([item.key, segment, *vector])
            index_rows.append((item.key, segment))
        mels.append(item.log_mels)
    table = pd.DataFrame(rows, columns=["track", "segment", *names])
    table["segment"] = table["segment"].astype("int32")
    log_mel = np.concatenate(mels) if mels else np.empty((0, config.n_mels, config.segment_frames), np.float32)
    index = pd.DataFrame(index_rows, columns=["track", "segment"])
    return table, log_mel, index


def _progress(enabled: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    disable=not enabled)
