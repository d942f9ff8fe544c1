"""One interface over every model, and the model folder contract.

A model folder (artifacts/models/<model>/<protocol>/) holds `meta.json` (ModelMeta), the files its
family's `save` wrote, and `predictions.parquet` (track, genre, split, proba_<genre> x 10). Training
classes (classic, deep, transfer) fit and save; `musicgenre.models.served.load_predictor` reads a folder
back with ONNX Runtime (scikit-learn only for a head that did not convert), so evaluation,
registration and serving all score through what is served.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from ..extraction import TrackFeatures
from ..io import write_json
from ..tagger import TaggerRef

META_FILE = "meta.json"
PREDICTIONS_FILE = "predictions.parquet"
PROBA_PREFIX = "proba_"


def proba_columns(classes: list[str]) -> list[str]:
    return [f"{PROBA_PREFIX}{c}" for c in classes]


def classes_of(columns: list[str]) -> list[str]:
    """The genres of a frame's probability columns, in column order."""
    return [c[len(PROBA_PREFIX) :] for c in columns if c.startswith(PROBA_PREFIX)]


@dataclass
class ModelMeta:
    """meta.json: what was trained, on what, and which files serve it."""

    model: str
    family: str  # classic | deep | transfer
    input: str  # track | segment | logmel | embedding | embedding+track
    protocol: str  # the split protocol trained under (grouped, random)
    classes: list[str]
    params: dict[str, Any]  # the model's params.models section
    n_train_tracks: int
    seed: int
    feature_columns: list[str] = field(default_factory=list)
    embeddings: dict[str, Any] | None = None  # the tagger settings (transfer models)
    served: dict[str, Any] = field(default_factory=dict)  # what `save` wrote for serving (format, files)

    def write(self, directory: Path) -> None:
        write_json(Path(directory) / META_FILE, asdict(self))

    @classmethod
    def read(cls, directory: Path) -> "ModelMeta":
        path = Path(directory) / META_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path} missing: not a model directory")
        data = json.loads(path.read_text(encoding="utf-8"))
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"{path}: unknown fields {sorted(unknown)}")
        return cls(**data)


class Predictor(ABC):
    """Per-track genre probabilities in `classes` order; each knows which inputs it reads."""

    family: str
    embedding: TaggerRef | None = None  # the tagger whose embedding the model reads (transfer models)
    needs_features: bool = True  # False when the model reads only the embedding: serving skips the classic extraction

    def __init__(self, *, classes: list[str], input: str):
        self.classes = list(classes)
        self.input = input

    @abstractmethod
    def predict_proba(self, items: list[TrackFeatures]) -> np.ndarray:
        """(len(items), len(classes)) probabilities, each row summing to 1."""

    def predict(self, items: list[TrackFeatures]) -> list[str]:
        return [self.classes[i] for i in self.predict_proba(items).argmax(axis=1)]


@dataclass(frozen=True)
class ExportSettings:
    """params.train.onnx: how trained models are converted for ONNX Runtime."""

    opset: int
    atol: float  # largest |converted - original| probability accepted on the training rows

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "ExportSettings":
        return cls(**params["train"]["onnx"])


class TrainedModel(Predictor):
    """A model fresh from training: predicts in memory and saves what serving needs."""

    @abstractmethod
    def save(self, directory: Path, *, export: ExportSettings) -> dict[str, Any]:
        """Write the model files into `directory`; returns ModelMeta.served (format, files)."""


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


def scatter_classes(*, partial: np.ndarray, present: list[int], n_classes: int) -> np.ndarray:
    """Probabilities over the trained classes placed into all classes (a class absent from training gets 0)."""
    proba = np.zeros((len(partial), n_classes))
    proba[:, present] = partial
    return proba
