"""Classic models on the aggregated feature vectors: sklearn Pipelines (scaler fitted on training data).

`input: track` fits one vector per track; `input: segment` fits every 3-s segment with its track's
label and votes by averaging segment probabilities per track.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import BaggingClassifier, HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.utils.class_weight import compute_sample_weight
from threadpoolctl import threadpool_limits
from xgboost import XGBClassifier

from ..extraction import TrackFeatures
from .heads import save_head
from .predictor import ExportSettings, TrainedModel, mean_by_track, normalise_rows, scatter_classes
from .served import design_matrix


def _lr_bagging(h: dict[str, Any], seed: int) -> ClassifierMixin:
    base = LogisticRegression(C=h["C"], max_iter=h["max_iter"], class_weight="balanced")
    return BaggingClassifier(
        base,
        n_estimators=h["n_estimators"],
        max_samples=h["max_samples"],
        max_features=h["max_features"],
        random_state=seed,
        n_jobs=h["n_jobs"],
    )


def _knn_bagging(h: dict[str, Any], seed: int) -> ClassifierMixin:
    base = KNeighborsClassifier(n_neighbors=h["n_neighbors"], weights=h["weights"])
    return BaggingClassifier(
        base,
        n_estimators=h["n_estimators"],
        max_samples=h["max_samples"],
        max_features=h["max_features"],
        random_state=seed,
        n_jobs=h["n_jobs"],
    )


def _random_forest(h: dict[str, Any], seed: int) -> ClassifierMixin:
    return RandomForestClassifier(
        n_estimators=h["n_estimators"],
        min_samples_leaf=h["min_samples_leaf"],
        max_leaf_nodes=h.get("max_leaf_nodes"),
        max_features=h["max_features"],
        class_weight="balanced_subsample",
        random_state=seed,
        n_jobs=h["n_jobs"],
    )


def _svm(h: dict[str, Any], seed: int) -> ClassifierMixin:
    # Platt scaling on held-out folds: what SVC(probability=True) did, the form sklearn 1.9 asks for
    svc = SVC(C=h["C"], kernel=h["kernel"], gamma=h["gamma"], class_weight="balanced", random_state=seed)
    return CalibratedClassifierCV(svc, method="sigmoid", cv=h["calibration_folds"], ensemble=False)


def _gradient_boosting(h: dict[str, Any], seed: int) -> ClassifierMixin:
    return HistGradientBoostingClassifier(
        max_iter=h["max_iter"],
        learning_rate=h["learning_rate"],
        max_leaf_nodes=h["max_leaf_nodes"],
        l2_regularization=h["l2_regularization"],
        early_stopping=False,
        class_weight="balanced",
        random_state=seed,
    )


def _xgboost(h: dict[str, Any], seed: int) -> ClassifierMixin:
    return XGBClassifier(
        n_estimators=h["n_estimators"],
        max_depth=h["max_depth"],
        learning_rate=h["learning_rate"],
        subsample=h["subsample"],
        colsample_bytree=h["colsample_bytree"],
        tree_method="hist",
        n_jobs=h["n_jobs"],
        random_state=seed,
    )


BUILDERS: dict[str, Callable[[dict[str, Any], int], ClassifierMixin]] = {
    "lr_bagging": _lr_bagging,
    "knn_bagging": _knn_bagging,
    "random_forest": _random_forest,
    "svm": _svm,
    "gradient_boosting": _gradient_boosting,
    "xgboost": _xgboost,
}
# estimators without a class_weight option get balanced sample weights instead (KNN takes neither)
SAMPLE_WEIGHTED = {"xgboost"}


class ClassicPredictor(TrainedModel):
    """A fitted scaler + estimator pipeline, in memory (training, cross-validation)."""

    family = "classic"

    def __init__(self, *, pipeline: Pipeline, classes: list[str], input: str, rows: np.ndarray | None = None):
        super().__init__(classes=classes, input=input)
        self.pipeline = pipeline
        self.rows = rows  # training rows: the ONNX head is checked on them when saved

    def predict_proba(self, items: list[TrackFeatures]) -> np.ndarray:
        rows, counts = design_matrix(items=items, input=self.input)
        proba = scatter_classes(
            partial=self.pipeline.predict_proba(rows),
            present=self.pipeline.classes_.astype(int).tolist(),
            n_classes=len(self.classes),
        )
        return normalise_rows(mean_by_track(proba=proba, counts=counts))

    def save(self, directory: Path, *, export: ExportSettings) -> dict[str, Any]:
        if self.rows is None:
            raise ValueError("save: the training rows are needed to check the ONNX head")
        return save_head(pipeline=self.pipeline, rows=self.rows, directory=directory, export=export)


def fit_classic(
    *,
    name: str,
    settings: dict[str, Any],
    seed: int,
    classes: list[str],
    threads: int,
    train_items: list[TrackFeatures],
    train_labels: np.ndarray,
) -> ClassicPredictor:
    """Fit scaler + estimator on the training tracks (labels are indices into `classes`); OpenMP/BLAS
    pools are capped at `threads` since spinning threads on a shared, oversubscribed CPU crawl."""
    if name not in BUILDERS:
        raise ValueError(f"no classic model called {name!r}; known: {sorted(BUILDERS)}")
    rows, counts = design_matrix(items=train_items, input=settings["input"])
    labels = np.repeat(np.asarray(train_labels), counts)
    pipeline = Pipeline([("scale", StandardScaler()), ("model", BUILDERS[name](settings["hyper"], seed))])
    fit_params = {"model__sample_weight": compute_sample_weight("balanced", labels)} if name in SAMPLE_WEIGHTED else {}
    with threadpool_limits(limits=threads):
        pipeline.fit(rows, labels, **fit_params)
    return ClassicPredictor(pipeline=pipeline, classes=classes, input=settings["input"], rows=rows)
