"""Per-file novelty: how far a scored file sits from the reference (GTZAN training) tracks in the tagger's
embedding space, as a percentile of the reference tracks' own leave-one-out scores.

Score = mean Euclidean distance to the k nearest reference tracks, on embeddings standardised with the
reference's mean and SD (so no unit dominates). A reference track is scored against the reference tracks of
other artist groups (leave-group-out: GTZAN repeats artists, and a same-artist neighbour makes a track look
far more familiar than an unseen artist's file would), which is what an unseen GTZAN-like file faces;
percentile 100 = beyond every one of them. Measured: GTZAN test-split tracks land at a median percentile of
~43 (6 % above 99), the modern clips ~47 (8 % above 99, 20 % above 90): in the tagger's space the modern
clips are only slightly more novel than GTZAN music by unseen artists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from monitoring.reference import reference_tracks
from musicgenre.config import resolve
from musicgenre.tagger import EmbeddingConfig, TaggerRef


@dataclass(frozen=True)
class NoveltyModel:
    mean: np.ndarray
    scale: np.ndarray
    reference: np.ndarray  # standardised reference embeddings
    loo_scores: np.ndarray  # sorted leave-group-out scores of the reference tracks
    k: int
    block_mb: float = 256  # monitoring.novelty.block_mb


def tagger(*, params: dict[str, Any]) -> TaggerRef:
    """The exported tagger the embeddings artifact was computed with (paths.tagger_dir, params.embeddings)."""
    return TaggerRef(str(resolve(params["paths"]["tagger_dir"])), EmbeddingConfig.from_params(params))


def knn_scores(
    *, reference: np.ndarray, points: np.ndarray, k: int, groups: np.ndarray | None = None, block_mb: float = 256
) -> np.ndarray:
    """Mean distance of each point to its k nearest reference rows. With `groups` the points are the reference
    rows themselves, each scored without the rows of its own group (itself included). Points go in blocks of
    at most `block_mb` of differences (all at once: 1000 files x 600 reference tracks x 400 units = 1.9 GB);
    each row's arithmetic is the same whatever the block, so the scores are too."""
    rows = max(1, int(block_mb * 2**20) // max(1, reference.size * 8))
    scores = np.empty(len(points))
    for start in range(0, len(points), rows):
        block = points[start : start + rows]
        distances = np.sqrt(np.maximum(((block[:, None, :] - reference[None, :, :]) ** 2).sum(axis=2), 0.0))
        if groups is not None:
            distances[groups[start : start + rows, None] == groups[None, :]] = np.inf
        scores[start : start + rows] = np.sort(distances, axis=1)[:, :k].mean(axis=1)
    return scores


def fit_novelty(*, params: dict[str, Any]) -> NoveltyModel:
    """The reference tracks' standardised embeddings and their leave-group-out scores (groups: the splits'
    monitoring.novelty.group_column, GTZAN's artist groups)."""
    embeddings = pd.read_parquet(resolve(params["paths"]["embeddings"])).set_index("track")
    columns = [c for c in embeddings.columns if c.startswith("emb_")]
    tracks = reference_tracks(params=params)
    splits = pd.read_csv(resolve(params["paths"]["splits"]), dtype=str).set_index("track")
    groups = splits.loc[tracks, params["monitoring"]["novelty"]["group_column"]].to_numpy()
    values = embeddings.loc[tracks, columns].to_numpy(np.float64)
    mean, scale = values.mean(axis=0), values.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)  # a constant unit carries no distance
    settings = params["monitoring"]["novelty"]
    reference, k = (values - mean) / scale, int(settings["k"])
    loo = knn_scores(reference=reference, points=reference, k=k, groups=groups, block_mb=settings["block_mb"])
    return NoveltyModel(
        mean=mean, scale=scale, reference=reference, loo_scores=np.sort(loo), k=k, block_mb=settings["block_mb"]
    )


def novelty(*, model: NoveltyModel, embeddings: np.ndarray) -> pd.DataFrame:
    """novelty (the k-NN score) and novelty_percentile (share of the reference's leave-group-out scores at or
    below it, in %)."""
    points = (np.asarray(embeddings, np.float64) - model.mean) / model.scale
    scores = knn_scores(reference=model.reference, points=points, k=model.k, block_mb=model.block_mb)
    percentile = 100.0 * np.searchsorted(model.loo_scores, scores, side="right") / len(model.loo_scores)
    return pd.DataFrame({"novelty": scores, "novelty_percentile": percentile})
