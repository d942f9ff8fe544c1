"""Batch scoring: validate a folder of audio, extract the training features for the drift report,
score with the registry champion and append the predictions to the store.

The drift features are the project's (they are compared with the features artifact); the champion
scores the files with its own bundle's code on ONNX Runtime (serving.runtime), files in parallel,
so a registered version gives the predictions it gave when it was registered.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monitoring.batch import BatchFile, Rejection, discover, new_batch_id
from monitoring.store import write_batch
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


@dataclass
class ScoredBatch:
    batch_id: str
    predictions: pd.DataFrame  # one row per scored file
    features: pd.DataFrame  # file + the track-level features (segment -1)
    rejected: list[Rejection] = field(default_factory=list)


def load_scoring_model(*, params: dict[str, Any], tracking_uri: str | None = None) -> Champion:
    """The registry's champion (name + version from the alias), opened for batch scoring on every core."""
    from musicgenre.serving.champion import open_champion, resolve_tracking_uri

    settings = params["register"]
    found, model = open_champion(
        uri=tracking_uri or resolve_tracking_uri(params=params),
        name=settings["model_name"],
        alias=settings["alias"],
        workers=params["monitoring"]["n_jobs"],
    )
    return Champion(name=found.name, version=found.version, model=model, classes=model.classes)


def champion_proba(*, champion: Champion, paths: list[str]) -> tuple[np.ndarray, list[str]]:
    """(files, genres) probabilities in champion.classes order, and per file its error or ''."""
    return champion.model.predict_paths(paths)


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
    *, files: list[BatchFile], params: dict[str, Any], show_progress: bool = False
) -> tuple[list[BatchFile], list[TrackFeatures], pd.DataFrame, list[Rejection]]:
    """Training features and tagger embedding of each file; files that fail to decode become rejections
    naming the reason."""
    from monitoring.novelty import tagger  # novelty reads the reference, which reads this module

    config = FeatureConfig.from_params(params)
    results, failures = extract_batch(
        [(f.key, f.path) for f in files],
        config=config,
        limits=Limits.from_params(params),
        n_jobs=params["monitoring"]["n_jobs"],
        show_progress=show_progress,
        embedding=tagger(params=params),  # the tagger embedding too, for each file's novelty
    )
    by_key = {item.key: item for item in results}
    kept = [f for f in files if f.key in by_key]  # batch order, not completion order
    items = [by_key[f.key] for f in kept]
    table, _, _ = to_tables(items, config)
    tracks = table[table["segment"] == -1].drop(columns="segment").rename(columns={"track": "file"})
    rejected = [Rejection(key=f.key, path=f.path, reason=f"{f.path}: {f.reason}") for f in failures]
    return kept, items, tracks.reset_index(drop=True), rejected


def score_batch(
    *,
    folder: Path,
    params: dict[str, Any],
    champion: Champion,
    batch_id: str | None = None,
    show_progress: bool = False,
) -> ScoredBatch:
    """Score every acceptable audio file under `folder`; store predictions and features for the batch."""
    settings, batch_id = params["monitoring"], batch_id or new_batch_id()
    files, rejected = discover(folder=Path(folder), extensions=params["predict"]["extensions"])
    kept, items, features, failed = extract(files=files, params=params, show_progress=show_progress)
    embeddings = {item.key: item.tagger_embedding() for item in items}
    proba, errors = champion_proba(champion=champion, paths=[str(f.path) for f in kept])
    scored = [error == "" for error in errors]
    failed += [Rejection(key=f.key, path=str(f.path), reason=error) for f, error in zip(kept, errors) if error]
    kept, proba = [f for f, ok in zip(kept, scored) if ok], proba[scored]
    features = features[features["file"].isin({f.key for f in kept})].reset_index(drop=True)
    rejected += failed
    for item in rejected:
        log.warning("refused %s", item.reason)
    if not kept:
        return ScoredBatch(batch_id=batch_id, predictions=pd.DataFrame(), features=features, rejected=rejected)
    hashes = {f.key: file_sha256(f.path) for f in kept}
    predictions = prediction_table(files=kept, proba=proba, champion=champion, hashes=hashes, top_k=settings["top_k"])
    predictions = with_novelty(
        predictions=predictions, embeddings=np.stack([embeddings[f.key] for f in kept]), params=params
    )
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
