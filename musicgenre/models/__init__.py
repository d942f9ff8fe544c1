"""Genre models behind one Predictor interface: classic sklearn/XGBoost pipelines and Keras networks.

`fit_predictor` trains any model named in params.models (transfer models also get the tagger's
EmbeddingConfig, since their inputs come from it); `load_predictor` reads a saved model directory.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from musicgenre.extraction import TrackFeatures
from musicgenre.models.predictor import Predictor, load_predictor

__all__ = ["Predictor", "fit_predictor", "load_predictor", "model_names"]


def model_names(params: dict[str, Any]) -> list[str]:
    """Every trainable model: params.models.names (dvc.yaml `train`) and models.transfer_names
    (dvc.yaml `train_transfer`, whose stages also depend on the tagger embeddings)."""
    return [*params["models"]["names"], *params["models"].get("transfer_names", [])]


def fit_predictor(*, name: str, settings: dict[str, Any], seed: int, classes: list[str], threads: int,
                  train_items: list[TrackFeatures], train_labels: np.ndarray,
                  valid_items: list[TrackFeatures], valid_labels: np.ndarray, embedding: Any = None) -> Predictor:
    """Fit the model `name` configured by `settings` (its params.models section); labels index `classes`."""
    inputs = dict(name=name, settings=settings, seed=seed, classes=classes, threads=threads,
                  train_items=train_items, train_labels=train_labels)
    if settings["family"] == "classic":
        from musicgenre.models.classic import fit_classic
        return fit_classic(**inputs)
    if settings["family"] == "deep":
        from musicgenre.models.deep import fit_deep  # TensorFlow is imported only for deep models
        return fit_deep(**inputs, valid_items=valid_items, valid_labels=valid_labels)
    if settings["family"] == "transfer":
        if embedding is None:
            raise ValueError(f"model {name!r}: a transfer model needs the embedding config it was fed")
        from musicgenre.models.transfer import fit_transfer
        return fit_transfer(**inputs, embedding=embedding)
    raise ValueError(f"model {name!r}: unknown family {settings['family']!r} (classic, deep or transfer)")
