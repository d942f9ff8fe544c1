"""Transfer models: a classic estimator on the pretrained tagger's embeddings (musicgenre.tagger).

`input: embedding` sees the [mean, max] tagger embedding of the track; `input: embedding+track` sees it
concatenated with the classic whole-track feature vector; `embedding+pooled+track` adds the tagger's
pooled mid-end layer in between. `estimator: ridge` fits a ridge classifier (one-vs-rest least squares,
strong L2 suits 3,500 dimensions on ~110 tracks) and serves it as the multinomial logistic model with
the same linear scores times `softmax_scale`, so it has probabilities (calibrated later by the OOF
temperature) and converts to ONNX like any logistic head. The embedding config is stored with the
model (meta.json) and the exported tagger is copied into the model folder (`tagger/`), so the folder
computes the same embedding from audio wherever it is served.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.linear_model import LogisticRegression, RidgeClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from ..extraction import TrackFeatures
from ..tagger import TaggerRef
from .classic import BUILDERS, ClassicPredictor
from .predictor import ExportSettings
from .served import TRANSFER_INPUTS, copy_network, design_matrix, reads_features

TAGGER_FOLDER = "tagger"  # inside a transfer model's folder: the exported tagger it embeds with


def _logistic(h: dict[str, Any], seed: int) -> ClassifierMixin:
    # probabilistic by itself: no calibration folds, so a genre with one training track still fits
    return LogisticRegression(C=h["C"], max_iter=h["max_iter"], class_weight="balanced", random_state=seed)


def _ridge(h: dict[str, Any], seed: int) -> ClassifierMixin:
    # copy_X=False: its input is the scaler's fresh output, so centring it in place saves one copy of the
    # 3,500-wide rows (~280 MB at 10k tracks)
    return RidgeClassifier(alpha=h["alpha"], class_weight="balanced", copy_X=False)


def ridge_as_softmax(ridge: RidgeClassifier, *, scale: float) -> LogisticRegression:
    """The fitted ridge's scores as a multinomial logistic model: softmax(scale * (X w + b)). Same argmax,
    probabilities instead of one-vs-rest scores, and a plain scikit-learn class that skl2onnx converts."""
    softmax = LogisticRegression()
    softmax.coef_ = scale * np.atleast_2d(ridge.coef_)
    softmax.intercept_ = scale * np.atleast_1d(ridge.intercept_)
    softmax.classes_, softmax.n_features_in_ = ridge.classes_, ridge.n_features_in_
    return softmax


# settings.estimator: the classic models' builders (e.g. svm), a plain logistic regression, or ridge
ESTIMATORS = {**BUILDERS, "logistic": _logistic, "ridge": _ridge}


class TransferPredictor(ClassicPredictor):
    """A scaler + estimator pipeline on embedding rows, plus the tagger that makes them."""

    family = "transfer"

    def __init__(
        self,
        *,
        pipeline: Pipeline,
        classes: list[str],
        input: str,
        embedding: TaggerRef,
        rows: np.ndarray | None = None,
    ):
        super().__init__(pipeline=pipeline, classes=classes, input=input, rows=rows)
        self.embedding = self.tagger = embedding
        self.needs_features = reads_features(input)

    def save(self, directory: Path, *, export: ExportSettings) -> dict[str, Any]:
        served = super().save(directory, export=export)
        copy_network(network=self.tagger, target=Path(directory) / TAGGER_FOLDER)
        return {**served, "tagger": TAGGER_FOLDER}


def capped_calibration(*, hyper: dict[str, Any], labels: np.ndarray) -> dict[str, Any]:
    """One row per track: an artist-grouped fold can leave a genre with only 3 training tracks (one
    artist holds 10 of the 13 classical tracks), and calibration needs every genre in every fold."""
    if "calibration_folds" not in hyper:
        return hyper
    smallest = int(np.bincount(labels)[np.bincount(labels) > 0].min())
    return {**hyper, "calibration_folds": max(2, min(hyper["calibration_folds"], smallest))}


def fit_transfer(
    *,
    name: str,
    settings: dict[str, Any],
    seed: int,
    classes: list[str],
    threads: int,
    train_items: list[TrackFeatures],
    train_labels: np.ndarray,
    embedding: TaggerRef,
) -> TransferPredictor:
    """Standardise the embedding rows and fit the configured classic estimator (settings.estimator)."""
    if settings["estimator"] not in ESTIMATORS:
        raise ValueError(f"model {name!r}: no estimator {settings['estimator']!r}; known: {sorted(ESTIMATORS)}")
    if settings["input"] not in TRANSFER_INPUTS:
        raise ValueError(
            f"model {name!r}: unknown transfer input {settings['input']!r} ({' or '.join(TRANSFER_INPUTS)})"
        )
    rows, _ = design_matrix(items=train_items, input=settings["input"])
    hyper = capped_calibration(hyper=settings["hyper"], labels=np.asarray(train_labels))
    pipeline = Pipeline([("scale", StandardScaler()), ("model", ESTIMATORS[settings["estimator"]](hyper, seed))])
    with threadpool_limits(limits=threads):
        pipeline.fit(rows, np.asarray(train_labels))
    if settings["estimator"] == "ridge":
        pipeline.steps[-1] = ("model", ridge_as_softmax(pipeline.steps[-1][1], scale=hyper["softmax_scale"]))
    return TransferPredictor(
        pipeline=pipeline, classes=classes, input=settings["input"], embedding=embedding, rows=rows
    )
