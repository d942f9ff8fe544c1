"""Per-file novelty: how far a scored file sits from the reference (GTZAN training) tracks in the tagger's
embedding space, as a percentile of the reference tracks' own leave-one-out scores.

Score = mean Euclidean distance to the k nearest reference tracks, on embeddings standardised with the
reference's mean and SD (so no unit dominates). A reference track is scored against the others
(leave-one-out), which is what an unseen GTZAN-like file faces; percentile 100 = beyond every one of them.
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
    loo_scores: np.ndarray  # sorted leave-one-out scores of the reference tracks
    k: int


def tagger(*, params: dict[str, Any]) -> TaggerRef:
    """The exported tagger the embeddings artifact was computed with (paths.tagger_dir, params.embeddings)."""
    return TaggerRef(str(resolve(params["paths"]["tagger_dir"])), EmbeddingConfig.from_params(params))


def knn_scores(*, reference: np.ndarray, points: np.ndarray, k: int, leave_one_out: bool = False) -> np.ndarray:
    """Mean distance of each point to its k nearest reference rows (itself excluded when leave_one_out)."""
    distances = np.sqrt(np.maximum(((points[:, None, :] - reference[None, :, :]) ** 2).sum(axis=2), 0.0))
    if leave_one_out:
        np.fill_diagonal(distances, np.inf)
    return np.sort(distances, axis=1)[:, :k].mean(axis=1)


def fit_novelty(*, params: dict[str, Any]) -> NoveltyModel:
    """The reference tracks' standardised embeddings and their leave-one-out scores."""
    embeddings = pd.read_parquet(resolve(params["paths"]["embeddings"])).set_index("track")
    columns = [c for c in embeddings.columns if c.startswith("emb_")]
    values = embeddings.loc[reference_tracks(params=params), columns].to_numpy(np.float64)
    mean, scale = values.mean(axis=0), values.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)  # a constant unit carries no distance
    reference, k = (values - mean) / scale, int(params["monitoring"]["novelty"]["k"])
    loo = knn_scores(reference=reference, points=reference, k=k, leave_one_out=True)
    return NoveltyModel(mean=mean, scale=scale, reference=reference, loo_scores=np.sort(loo), k=k)


def novelty(*, model: NoveltyModel, embeddings: np.ndarray) -> pd.DataFrame:
    """novelty (the k-NN score) and novelty_percentile (share of reference LOO scores at or below it, in %)."""
    points = (np.asarray(embeddings, np.float64) - model.mean) / model.scale
    scores = knn_scores(reference=model.reference, points=points, k=model.k)
    percentile = 100.0 * np.searchsorted(model.loo_scores, scores, side="right") / len(model.loo_scores)
    return pd.DataFrame({"novelty": scores, "novelty_percentile": percentile})
