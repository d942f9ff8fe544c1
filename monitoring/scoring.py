"""Batch scoring: validate a folder of audio, extract the training features for the drift report,
score with the registry champion and append the predictions to the store.

The drift features are the project's (they are compared with the features artifact); the champion
scores the files with its own bundle's code on ONNX Runtime (serving.runtime), files in parallel,
so a registered version gives the predictions it gave when it was registered.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monitoring.batch import BatchFile, Rejection, discover, new_batch_id
from monitoring.store import write_batch
from musicgenre.cluster import chunked, map_chunks, runner_kind
from musicgenre.config import resolve
from musicgenre.extraction import Limits, TrackFeatures, extract_batch, to_tables
from musicgenre.features import FeatureConfig
from musicgenre.io import file_sha256
from musicgenre.models.predictor import proba_columns

log = logging.getLogger(__name__)


@dataclass
class Champion:
    name: str
    version: str
    model: Any  # the version's serving.runtime.BundleModel (from the bundle's own code)
    classes: list[str]
    bundle: str | None = None  # the version's bundle folder: a Dask worker opens the same version from it
    bundle_sha256: str | None = None
    workers: int = 1

    @property
    def accuracy_shift(self) -> float:
        """tau of the label-free accuracy estimate's interval from the bundle's calibration (runtime.json);
        0, the binomial-only interval, for a bundle registered before it was measured."""
        calibration = getattr(self.model, "calibration", None) or {}
        return float(calibration.get("accuracy_shift") or 0.0)


@dataclass
class ChunkScores:
    """One chunk of a batch, scored: the files kept, their drift features, embeddings and probabilities."""

    kept: list[BatchFile]
    features: pd.DataFrame
    embeddings: np.ndarray  # (kept, dimensions) pipeline-tagger embeddings, for novelty
    proba: np.ndarray  # (kept, genres) in the champion's class order
    rejected: list[Rejection]


@dataclass
class ScoredBatch:
    batch_id: str
    predictions: pd.DataFrame  # one row per scored file
    features: pd.DataFrame  # file + the track-level features (segment -1)
    rejected: list[Rejection] = field(default_factory=list)


def load_scoring_model(*, params: dict[str, Any], tracking_uri: str | None = None) -> Champion:
    """The registry's champion (name + version from the alias), opened for batch scoring on every core."""
    from musicgenre.serving.champion import bundle_folder, open_champion, resolve_tracking_uri

    settings = params["register"]
    found, model = open_champion(
        uri=tracking_uri or resolve_tracking_uri(params=params),
        name=settings["model_name"],
        alias=settings["alias"],
        workers=params["monitoring"]["n_jobs"],
    )
    return Champion(
        name=found.name,
        version=found.version,
        model=model,
        classes=model.classes,
        bundle=str(bundle_folder(found)),
        bundle_sha256=found.bundle_sha256,
        workers=params["monitoring"]["n_jobs"],
    )


def champion_proba(*, champion: Champion, paths: list[str]) -> tuple[np.ndarray, list[str]]:
    """(files, genres) probabilities in champion.classes order, and per file its error or ''."""
    return champion.model.predict_paths(paths)


def reuses_embeddings(*, champion: Champion, params: dict[str, Any]) -> bool:
    """Whether the champion's bundle computes the embedding novelty is measured in (the same tagger file
    and settings as the embeddings artifact): then its embeddings stand in for a second tagger run.
    No for a model without a tagger and for a bundle registered before the runtime offered them."""
    from monitoring.novelty import tagger
    from musicgenre.serving.runtime import tagger_identity

    identity = getattr(champion.model, "embedding_identity", None)
    return identity is not None and identity() == tagger_identity(tagger(params=params))


def prediction_table(
    *, files: list[BatchFile], proba: np.ndarray, champion: Champion, hashes: dict[str, str], top_k: int
) -> pd.DataFrame:
    """file, sha256, scored_at, model, top-k genres, confidence and every genre's probability."""
    classes = np.asarray(champion.classes)
    order = np.argsort(-proba, axis=1)[:, :top_k]
    frame = pd.DataFrame(
        {
            "file": [f.key for f in files],
            "path": [str(f.path) for f in files],
            "sha256": [hashes[f.key] for f in files],
            "scored_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "model_name": champion.name,
            "model_version": champion.version,
        }
    )
    for rank in range(top_k):
        frame[f"genre_{rank + 1}"] = classes[order[:, rank]]
    frame["predicted_genre"] = frame["genre_1"]
    frame["confidence"] = proba.max(axis=1)
    return pd.concat([frame, pd.DataFrame(proba, columns=proba_columns(champion.classes))], axis=1)


def with_novelty(*, predictions: pd.DataFrame, embeddings: np.ndarray, params: dict[str, Any]) -> pd.DataFrame:
    """The predictions with each file's novelty score and percentile (stored with them)."""
    from monitoring.novelty import fit_novelty, novelty

    scores = novelty(model=fit_novelty(params=params), embeddings=embeddings)
    return pd.concat([predictions.reset_index(drop=True), scores], axis=1)


def extract(
    *,
    files: list[BatchFile],
    params: dict[str, Any],
    show_progress: bool = False,
    n_jobs: int | None = None,
    embed: bool = True,
) -> tuple[list[BatchFile], list[TrackFeatures], pd.DataFrame, list[Rejection]]:
    """Training features and (with `embed`) tagger embedding of each file; files that fail to decode become
    rejections naming the reason. `n_jobs` (default monitoring.n_jobs) worker processes; 1 in a Dask task."""
    from monitoring.novelty import tagger  # novelty reads the reference, which reads this module

    config = FeatureConfig.from_params(params)
    results, failures = extract_batch(
        [(f.key, f.path) for f in files],
        config=config,
        limits=Limits.from_params(params),
        n_jobs=n_jobs or params["monitoring"]["n_jobs"],
        show_progress=show_progress,
        embedding=tagger(params=params) if embed else None,  # the tagger embedding too, for novelty
    )
    by_key = {item.key: item for item in results}
    kept = [f for f in files if f.key in by_key]  # batch order, not completion order
    items = [by_key[f.key] for f in kept]
    table, _, _ = to_tables(items, config)
    tracks = table[table["segment"] == -1].drop(columns="segment").rename(columns={"track": "file"})
    rejected = [Rejection(key=f.key, path=f.path, reason=f"{f.path}: {f.reason}") for f in failures]
    return kept, items, tracks.reset_index(drop=True), rejected


def score_chunk(
    files: list[BatchFile], *, params: dict[str, Any], champion: Champion, n_jobs: int | None = None
) -> ChunkScores:
    """Drift features, embeddings and champion probabilities of one chunk of files (at most
    scale.batch_tracks of audio in memory); files that fail either step become rejections. The tagger runs
    once per file: in the champion's bundle when it computes novelty's embedding (reuses_embeddings), else
    here."""
    reuse = reuses_embeddings(champion=champion, params=params)
    kept, items, features, failed = extract(files=files, params=params, n_jobs=n_jobs, embed=not reuse)
    paths = [str(f.path) for f in kept]
    if reuse:  # the bundle's embeddings: NaN rows for the files it could not score
        proba, errors, vectors = champion.model.predict_paths_with_embeddings(paths)
    else:
        proba, errors = champion_proba(champion=champion, paths=paths)
        vectors = np.stack([item.tagger_embedding() for item in items]) if items else None
    scored = np.asarray([error == "" for error in errors], bool)
    failed += [Rejection(key=f.key, path=str(f.path), reason=error) for f, error in zip(kept, errors) if error]
    kept, proba = [f for f, ok in zip(kept, scored) if ok], proba[scored]
    features = features[features["file"].isin({f.key for f in kept})].reset_index(drop=True)
    vectors = vectors[scored] if kept and vectors is not None else np.empty((0, 0))
    return ChunkScores(kept=kept, features=features, embeddings=vectors, proba=proba, rejected=failed)


def score_chunk_remote(files: list[BatchFile], *, params: dict[str, Any], champion: Champion) -> ChunkScores:
    """A Dask task: the same chunk scoring, with the champion version reopened from its bundle in the
    worker (once per worker process) and extraction on one process (the worker is the unit of parallelism)."""
    model = _worker_model(bundle=champion.bundle, sha256=champion.bundle_sha256, workers=champion.workers)
    return score_chunk(files, params=params, champion=replace(champion, model=model), n_jobs=1)


@functools.lru_cache(maxsize=2)
def _worker_model(*, bundle: str | None, sha256: str | None, workers: int) -> Any:
    from musicgenre.serving.loader import open_bundle

    if bundle is None:
        raise ValueError("the champion has no bundle folder: open it with load_scoring_model to score on Dask")
    return open_bundle(Path(bundle), expected_sha256=sha256, workers=workers)


def score_chunks(*, files: list[BatchFile], params: dict[str, Any], champion: Champion) -> ChunkScores:
    """Every file in chunks of scale.batch_tracks, here or one Dask task per chunk
    (orchestration.task_runner); the chunks' scores joined in batch order."""
    chunks = chunked(files, size=params["scale"]["batch_tracks"]) or [[]]  # an empty batch keeps its columns
    if runner_kind(params) == "local":
        parts = [score_chunk(chunk, params=params, champion=champion) for chunk in chunks]
    else:
        remote = replace(champion, model=None)  # the opened model stays here; workers open the bundle
        shared = {"params": params, "champion": remote}
        parts = list(map_chunks(score_chunk_remote, chunks, params=params, shared=shared))
    scored = [part for part in parts if part.kept] or parts[:1]
    return ChunkScores(
        kept=[f for part in parts for f in part.kept],
        features=pd.concat([part.features for part in scored], ignore_index=True),
        embeddings=np.concatenate([part.embeddings for part in scored]),
        proba=np.concatenate([part.proba for part in scored]),
        rejected=[r for part in parts for r in part.rejected],
    )


def score_batch(
    *,
    folder: Path,
    params: dict[str, Any],
    champion: Champion,
    batch_id: str | None = None,
    show_progress: bool = False,
) -> ScoredBatch:
    """Score every acceptable audio file under `folder` in chunks; store predictions and features for the
    batch. (`show_progress` is kept for callers; chunks report nothing.)"""
    settings, batch_id = params["monitoring"], batch_id or new_batch_id()
    files, rejected = discover(folder=Path(folder), extensions=params["predict"]["extensions"])
    scores = score_chunks(files=files, params=params, champion=champion)
    kept, proba, features = scores.kept, scores.proba, scores.features
    rejected += scores.rejected
    for item in rejected:
        log.warning("refused %s", item.reason)
    if not kept:
        return ScoredBatch(batch_id=batch_id, predictions=pd.DataFrame(), features=features, rejected=rejected)
    hashes = {f.key: file_sha256(f.path) for f in kept}
    predictions = prediction_table(files=kept, proba=proba, champion=champion, hashes=hashes, top_k=settings["top_k"])
    predictions = with_novelty(predictions=predictions, embeddings=scores.embeddings, params=params)
    store = resolve(settings["store"])
    write_batch(store=store, table="predictions", batch_id=batch_id, frame=predictions)
    write_batch(store=store, table="features", batch_id=batch_id, frame=features)
    write_batch(
        store=store,
        table="rejected",
        batch_id=batch_id,
        frame=pd.DataFrame([vars(r) for r in rejected], columns=["key", "path", "reason"]).astype(str),
    )
    return ScoredBatch(batch_id=batch_id, predictions=predictions, features=features, rejected=rejected)
