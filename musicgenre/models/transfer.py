"""Transfer models: a classic estimator on the pretrained tagger's embeddings (musicgenre.embeddings).

`input: embedding` sees the [mean, max] tagger embedding of the track; `input: embedding+track` sees it
concatenated with the classic whole-track feature vector. The embedding config is stored with the
model (meta.json), so at predict time extract_file computes the same embedding from the audio.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from musicgenre.embeddings import EmbeddingConfig
from musicgenre.extraction import TrackFeatures
from musicgenre.models.classic import BUILDERS, ClassicPredictor
from musicgenre.models.predictor import normalise_rows

INPUTS = ("embedding", "embedding+track")


def _logistic(h: dict[str, Any], seed: int) -> ClassifierMixin:
    # probabilistic by itself: no calibration folds, so a genre with one training track still fits
    return LogisticRegression(C=h["C"], max_iter=h["max_iter"], class_weight="balanced", random_state=seed)


# settings.estimator: the classic models' builders (e.g. svm) or a plain logistic regression
ESTIMATORS = {**BUILDERS, "logistic": _logistic}


def transfer_matrix(*, items: list[TrackFeatures], input: str) -> np.ndarray:
    """One row per track: the embedding, optionally followed by the classic track vector."""
    if input not in INPUTS:
        raise ValueError(f"unknown transfer input {input!r} ({' or '.join(INPUTS)})")
    missing = [item.key for item in items if item.embedding is None]
    if missing:
        raise ValueError(f"no tagger embedding for {missing[:5]}: extract with the predictor's embedding config")
    rows = np.stack([item.embedding for item in items])
    if input == "embedding+track":
        rows = np.hstack([rows, np.stack([item.track_vector for item in items])])
    return rows


class TransferPredictor(ClassicPredictor):
    """A scaler + estimator pipeline saved like the classic ones, plus the embedding it expects."""

    family = "transfer"

    def __init__(self, *, pipeline: Pipeline, classes: list[str], input: str, embedding: EmbeddingConfig):
        super().__init__(pipeline=pipeline, classes=classes, input=input)
        self.embedding = embedding  # read by extract_file's callers (pyfunc, monitoring) to fill TrackFeatures
        self.needs_features = input != "embedding"

    def predict_proba(self, items: list[TrackFeatures]) -> np.ndarray:
        partial = self.pipeline.predict_proba(transfer_matrix(items=items, input=self.input))
        proba = np.zeros((len(items), len(self.classes)))
        proba[:, self.pipeline.classes_.astype(int)] = partial  # a class absent from training gets 0
        return normalise_rows(proba)

    @classmethod
    def load(cls, directory: Path, meta: dict[str, Any]) -> "TransferPredictor":
        classic = ClassicPredictor.load(directory, meta)  # same skops file and trusted-type check
        # a loaded model embeds with every core of the machine it runs on, whatever the training run used
        embedding = dataclasses.replace(EmbeddingConfig(**meta["embeddings"]), threads=0)
        return cls(pipeline=classic.pipeline, classes=meta["classes"], input=meta["input"], embedding=embedding)


def capped_calibration(*, hyper: dict[str, Any], labels: np.ndarray) -> dict[str, Any]:
    """One row per track: an artist-grouped fold can leave a genre with only 3 training tracks (one
    artist holds 10 of the 13 classical tracks), and calibration needs every genre in every fold."""
    if "calibration_folds" not in hyper:
        return hyper
    smallest = int(np.bincount(labels)[np.bincount(labels) > 0].min())
    return {**hyper, "calibration_folds": max(2, min(hyper["calibration_folds"], smallest))}


def fit_transfer(*, name: str, settings: dict[str, Any], seed: int, classes: list[str], threads: int,
                 train_items: list[TrackFeatures], train_labels: np.ndarray,
                 embedding: EmbeddingConfig) -> TransferPredictor:
    """Standardise the embedding rows and fit the configured classic estimator (settings.estimator)."""
    if settings["estimator"] not in ESTIMATORS:
        raise ValueError(f"model {name!r}: no estimator {settings['estimator']!r}; known: {sorted(ESTIMATORS)}")
    rows = transfer_matrix(items=train_items, input=settings["input"])
    hyper = capped_calibration(hyper=settings["hyper"], labels=np.asarray(train_labels))
    pipeline = Pipeline([("scale", StandardScaler()), ("model", ESTIMATORS[settings["estimator"]](hyper, seed))])
    with threadpool_limits(limits=threads):
        pipeline.fit(rows, np.asarray(train_labels))
    return TransferPredictor(pipeline=pipeline, classes=classes, input=settings["input"], embedding=embedding)
