"""One interface over every model: TrackFeatures in, (n_tracks, n_genres) probabilities out.

A model directory holds the fitted model, meta.json and predictions.parquet; `load_predictor`
rebuilds the right Predictor from meta.json, so evaluation, registration and serving share it.
"""
from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from musicgenre.extraction import TrackFeatures

META_FILE = "meta.json"
PREDICTIONS_FILE = "predictions.parquet"


class Predictor(ABC):
    """Per-track genre probabilities in `classes` order; subclasses know their inputs and files."""

    family: str
    embedding: Any = None  # an EmbeddingConfig when the model needs TrackFeatures.embedding (transfer models)
    needs_features: bool = True  # False when the model reads only the embedding: serving skips the classic extraction

    def __init__(self, *, classes: list[str], input: str):
        self.classes = list(classes)
        self.input = input

    @abstractmethod
    def predict_proba(self, items: list[TrackFeatures]) -> np.ndarray:
        """(len(items), len(classes)) probabilities, each row summing to 1."""

    @abstractmethod
    def save(self, directory: Path) -> None:
        """Write the fitted model files (not meta.json) into `directory`."""

    @classmethod
    @abstractmethod
    def load(cls, directory: Path, meta: dict[str, Any]) -> "Predictor":
        """Rebuild from the files `save` wrote and the directory's meta.json."""

    def predict(self, items: list[TrackFeatures]) -> list[str]:
        return [self.classes[i] for i in self.predict_proba(items).argmax(axis=1)]


def load_predictor(model_dir: Path) -> Predictor:
    """The Predictor stored in a model directory (artifacts/models/<model>/<protocol>)."""
    model_dir = Path(model_dir)
    meta_path = model_dir / META_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path} missing: not a model directory")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("family") == "classic":
        from musicgenre.models.classic import ClassicPredictor
        return ClassicPredictor.load(model_dir, meta)
    if meta.get("family") == "deep":
        from musicgenre.models.deep import DeepPredictor  # TensorFlow only when a deep model is asked for
        return DeepPredictor.load(model_dir, meta)
    if meta.get("family") == "transfer":
        from musicgenre.models.transfer import TransferPredictor
        return TransferPredictor.load(model_dir, meta)
    raise ValueError(f"{meta_path}: unknown model family {meta.get('family')!r}")


def mean_by_track(*, proba: np.ndarray, counts: list[int]) -> np.ndarray:
    """Average consecutive row blocks of `proba` (one block of segments per track) into track rows."""
    bounds = np.cumsum([0, *counts])
    return np.stack([proba[start:stop].mean(axis=0) for start, stop in zip(bounds[:-1], bounds[1:])])


def require_segments(*, items: list[TrackFeatures], counts: list[int]) -> None:
    """Segment-level models need at least one whole segment per track."""
    empty = [item.key for item, count in zip(items, counts) if count == 0]
    if empty:
        raise ValueError(f"no whole segment to classify in {empty[:5]} (audio shorter than one segment)")


def normalise_rows(proba: np.ndarray) -> np.ndarray:
    """Rows summing exactly to 1 (float32 softmax and averaging drift by ~1e-7)."""
    proba = np.clip(np.asarray(proba, np.float64), 0.0, None)
    return proba / proba.sum(axis=1, keepdims=True)
