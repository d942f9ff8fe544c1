"""Classic models on the aggregated feature vectors: sklearn Pipelines (scaler fitted on training data).

`input: track` fits one vector per track; `input: segment` fits every 3-s segment with its track's
label and votes by averaging segment probabilities per track.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import skops.io as sio
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

from musicgenre.extraction import TrackFeatures
from musicgenre.models.predictor import Predictor, mean_by_track, normalise_rows, require_segments

MODEL_FILE = "model.skops"
# skops refuses unknown types on load; only these libraries' types may be in our own model files
TRUSTED_PREFIXES = ("sklearn.", "xgboost.", "numpy.", "scipy.", "builtins.")


def _lr_bagging(h: dict[str, Any], seed: int) -> ClassifierMixin:
    base = LogisticRegression(C=h["C"], max_iter=h["max_iter"], class_weight="balanced")
    return BaggingClassifier(base, n_estimators=h["n_estimators"], max_samples=h["max_samples"],
                             max_features=h["max_features"], random_state=seed, n_jobs=h["n_jobs"])


def _knn_bagging(h: dict[str, Any], seed: int) -> ClassifierMixin:
    base = KNeighborsClassifier(n_neighbors=h["n_neighbors"], weights=h["weights"])
    return BaggingClassifier(base, n_estimators=h["n_estimators"], max_samples=h["max_samples"],
                             max_features=h["max_features"], random_state=seed, n_jobs=h["n_jobs"])


def _random_forest(h: dict[str, Any], seed: int) -> ClassifierMixin:
    return RandomForestClassifier(n_estimators=h["n_estimators"], min_samples_leaf=h["min_samples_leaf"],
                                  max_features=h["max_features"], class_weight="balanced_subsample",
                                  random_state=seed, n_jobs=h["n_jobs"])


def _svm(h: dict[str, Any], seed: int) -> ClassifierMixin:
    # Platt scaling on held-out folds: what SVC(probability=True) did, the form sklearn 1.9 asks for
    svc = SVC(C=h["C"], kernel=h["kernel"], gamma=h["gamma"], class_weight="balanced", random_state=seed)
    return CalibratedClassifierCV(svc, method="sigmoid", cv=h["calibration_folds"], ensemble=False)


def _gradient_boosting(h: dict[str, Any], seed: int) -> ClassifierMixin:
    return HistGradientBoostingClassifier(max_iter=h["max_iter"], learning_rate=h["learning_rate"],
                                          max_leaf_nodes=h["max_leaf_nodes"], l2_regularization=h["l2_regularization"],
                                          early_stopping=False, class_weight="balanced", random_state=seed)


def _xgboost(h: dict[str, Any], seed: int) -> ClassifierMixin:
    return XGBClassifier(n_estimators=h["n_estimators"], max_depth=h["max_depth"], learning_rate=h["learning_rate"],
                         subsample=h["subsample"], colsample_bytree=h["colsample_bytree"], tree_method="hist",
                         n_jobs=h["n_jobs"], random_state=seed)


BUILDERS: dict[str, Callable[[dict[str, Any], int], ClassifierMixin]] = {
    "lr_bagging": _lr_bagging, "knn_bagging": _knn_bagging, "random_forest": _random_forest, "svm": _svm,
    "gradient_boosting": _gradient_boosting, "xgboost": _xgboost}
# estimators without a class_weight option get balanced sample weights instead (KNN takes neither)
SAMPLE_WEIGHTED = {"xgboost"}


def design_matrix(*, items: list[TrackFeatures], input: str) -> tuple[np.ndarray, list[int]]:
    """Rows to classify and how many belong to each track (1 per track for `track`)."""
    if input == "track":
        return np.stack([item.track_vector for item in items]), [1] * len(items)
    if input == "segment":
        require_segments(items=items, counts=[len(item.segment_vectors) for item in items])
        return np.concatenate([item.segment_vectors for item in items]), [len(item.segment_vectors) for item in items]
    raise ValueError(f"unknown classic input {input!r} (track or segment)")


class ClassicPredictor(Predictor):
    family = "classic"

    def __init__(self, *, pipeline: Pipeline, classes: list[str], input: str):
        super().__init__(classes=classes, input=input)
        self.pipeline = pipeline

    def predict_proba(self, items: list[TrackFeatures]) -> np.ndarray:
        rows, counts = design_matrix(items=items, input=self.input)
        partial = self.pipeline.predict_proba(rows)
        proba = np.zeros((len(rows), len(self.classes)))
        proba[:, self.pipeline.classes_.astype(int)] = partial  # a class absent from training gets 0
        return normalise_rows(mean_by_track(proba=proba, counts=counts))

    def save(self, directory: Path) -> None:
        sio.dump(self.pipeline, Path(directory) / MODEL_FILE)

    @classmethod
    def load(cls, directory: Path, meta: dict[str, Any]) -> "ClassicPredictor":
        path = Path(directory) / MODEL_FILE
        untrusted = sio.get_untrusted_types(file=path)
        foreign = [name for name in untrusted if not name.startswith(TRUSTED_PREFIXES)]
        if foreign:
            raise ValueError(f"{path} holds types outside sklearn/xgboost/numpy: {foreign}")
        return cls(pipeline=sio.load(path, trusted=untrusted), classes=meta["classes"], input=meta["input"])


def fit_classic(*, name: str, settings: dict[str, Any], seed: int, classes: list[str], threads: int,
                train_items: list[TrackFeatures], train_labels: np.ndarray) -> ClassicPredictor:
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
    return ClassicPredictor(pipeline=pipeline, classes=classes, input=settings["input"])
