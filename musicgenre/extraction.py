"""Feature extraction over files: one file, or a batch in parallel with a progress bar.

A bad file becomes a named failure; the rest of the batch goes on. `extract_file` is also the serving
path's: it imports the classic feature code only when features are asked for and the tagger only
when an embedding is, so a transfer model serves without librosa, joblib or pandas.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable

import numpy as np

from .audio import AudioError, load_audio_at
from .tagger import TaggerRef

if TYPE_CHECKING:  # the classic feature code (librosa, FFTW) and pandas load only when used
    import pandas as pd
    from rich.progress import Progress

    from .features import FeatureConfig


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
    # the classic features; None when not extracted (a predictor that reads only the tagger embedding)
    track_vector: np.ndarray | None
    segment_vectors: np.ndarray | None
    log_mels: np.ndarray | None
    embedding: np.ndarray | None = None  # pretrained-tagger embedding, only for predictors that need it
    pooled: np.ndarray | None = None  # the tagger's pooled layer [mean, max], when its export has that output
    patches: np.ndarray | None = None  # (patches, units): a per-patch network's outputs (the deep models' base)

    def classic(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(track vector, segment vectors, log-mel segments); a clear error when they were not extracted."""
        if self.track_vector is None or self.segment_vectors is None or self.log_mels is None:
            raise ValueError(f"{self.key}: the classic features were not extracted")
        return self.track_vector, self.segment_vectors, self.log_mels

    def tagger_embedding(self) -> np.ndarray:
        if self.embedding is None:
            raise ValueError(f"{self.key}: no tagger embedding (extract with the model's tagger)")
        return self.embedding

    def base_patches(self) -> np.ndarray:
        if self.patches is None:
            raise ValueError(f"{self.key}: no per-patch outputs of the pretrained base (extract with the model's base)")
        return self.patches

    def tagger_pooled(self) -> np.ndarray:
        if self.pooled is None:
            raise ValueError(f"{self.key}: no pooled tagger layer (its tagger export has no pooled output)")
        return self.pooled


@dataclass
class Failure:
    key: str
    path: str
    reason: str


def extract_file(
    path: str | os.PathLike,
    *,
    key: str,
    config: FeatureConfig | None,
    limits: Limits,
    embedding: TaggerRef | None = None,
    features: bool = True,
) -> TrackFeatures:
    """Decode the file once; extract the classic features (unless `features` is False) and, with an
    `embedding` (the exported tagger to use), the tagger embedding at the tagger's own rate (or, for a
    per-patch network such as the deep models' base, its outputs per patch). Raises AudioError naming the file."""
    tagger = embedding.load() if embedding is not None else None
    rates = {"features": config.sample_rate} if features and config is not None else {}
    if tagger is not None:
        rates["embedding"] = tagger.sample_rate
    if not rates:
        raise ValueError("extract_file: nothing to extract (no feature config and no embedding asked for)")
    signals = load_audio_at(
        path,
        sample_rates=list(rates.values()),
        min_duration_s=limits.min_duration_s,
        max_duration_s=limits.max_duration_s,
        max_file_mb=limits.max_file_mb,
    )
    classic: tuple[np.ndarray | None, ...] = (None, None, None)
    vector = pooled = patches = None
    try:
        if config is not None and "features" in rates:
            from .features import extract

            classic = extract(signals[rates["features"]], config=config)
        if tagger is not None and tagger.config.per_patch:
            patches = tagger.patch_activations(signals[rates["embedding"]])
        elif tagger is not None:
            vector, *rest = tagger.embed_layers(signals[rates["embedding"]])
            pooled = rest[0] if rest else None
    except ValueError as exc:
        raise AudioError(path, str(exc)) from None
    track_vector, segment_vectors, log_mels = classic
    return TrackFeatures(key, track_vector, segment_vectors, log_mels, embedding=vector, pooled=pooled, patches=patches)


def _safe_extract(
    path: str, key: str, config: FeatureConfig | None, limits: Limits, embedding: TaggerRef | None
) -> TrackFeatures | Failure:
    try:
        return extract_file(path, key=key, config=config, limits=limits, embedding=embedding)
    except AudioError as exc:
        return Failure(key=key, path=str(path), reason=exc.reason)


def extract_batch(
    items: Iterable[tuple[str, str | os.PathLike]],
    *,
    config: FeatureConfig | None,
    limits: Limits,
    n_jobs: int = 1,
    show_progress: bool = True,
    embedding: TaggerRef | None = None,
    on_result: Callable[[TrackFeatures], TrackFeatures] | None = None,
) -> tuple[list[TrackFeatures], list[Failure]]:
    """Extract (key, path) pairs in parallel worker processes, one BLAS thread each (with an `embedding`,
    the tagger embedding too: each worker builds its own ONNX Runtime session once). `on_result` sees
    each result in input order as it arrives and returns what is kept (featurize writes the log-mels to
    disk there and keeps the small vectors, so memory does not grow with the audio)."""
    from joblib import Parallel, delayed, parallel_config

    items = list(items)
    if embedding is not None and n_jobs != 1:
        embedding = embedding.single_threaded()
    results: list[TrackFeatures] = []
    failures: list[Failure] = []
    with parallel_config(backend="loky", inner_max_num_threads=1), _progress(show_progress) as progress:
        task = progress.add_task("features", total=len(items))
        jobs = (delayed(_safe_extract)(str(path), key, config, limits, embedding) for key, path in items)
        for outcome in Parallel(n_jobs=n_jobs, return_as="generator")(jobs):
            if isinstance(outcome, Failure):
                failures.append(outcome)
            else:
                results.append(on_result(outcome) if on_result is not None else outcome)
            progress.advance(task)
    return results, failures


def feature_table(results: list[TrackFeatures], config: FeatureConfig) -> pd.DataFrame:
    """Tidy feature table (segment -1 = whole track, then its segments); log-mels are not needed."""
    import pandas as pd

    from .features import feature_names

    rows = []
    for item in results:
        if item.track_vector is None or item.segment_vectors is None:
            raise ValueError(f"{item.key}: the classic features were not extracted")
        rows.append([item.key, -1, *item.track_vector])
        rows += [[item.key, segment, *vector] for segment, vector in enumerate(item.segment_vectors)]
    table = pd.DataFrame(rows, columns=["track", "segment", *feature_names(config)])
    table["segment"] = table["segment"].astype("int32")
    return table


def to_tables(results: list[TrackFeatures], config: FeatureConfig) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """Tidy feature table (segment -1 = whole track), stacked log-mel segments and their index (all in
    memory: for a few files; featurize streams the log-mels to disk instead)."""
    import pandas as pd

    mels = [item.classic()[2] for item in results]
    index_rows = [(item.key, segment) for item in results for segment in range(len(item.classic()[1]))]
    log_mel = np.concatenate(mels) if mels else np.empty((0, config.n_mels, config.segment_frames), np.float32)
    return feature_table(results, config), log_mel, pd.DataFrame(index_rows, columns=["track", "segment"])


def _progress(enabled: bool) -> Progress:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), disable=not enabled
    )
