"""A bundle's model as its own code serves it: audio paths in, genre probabilities out.

This module runs from the bundle's private copy of the package (serving.loader), so everything it
reaches must import relatively and must not import TensorFlow, Keras or MLflow. Its contract with the
code that opens it (RUNTIME_API): `BundleModel.open(folder, workers=...)`, `.classes`, and
`.predict_paths(paths) -> (probabilities, errors)`; since bundles carry a calibration, also
`.genre_sets(probabilities) -> genre lists` (an opener checks for it: older bundles lack it), and since
the embeddings are reused by monitoring, `.predict_paths_with_embeddings` and `.embedding_identity`
(likewise checked for).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..calibration import apply_temperature, genre_sets
from ..extraction import Limits, TrackFeatures, extract_file
from ..io import file_sha256
from ..models.predictor import proba_columns
from ..models.served import load_predictor
from ..tagger import MODEL_FILE as TAGGER_FILE
from ..tagger import TaggerRef
from .bundle import MODEL_FOLDER, RUNTIME_API, BundleError, verify_bundle


class BundleModel:
    """The served predictor of a bundle, with the feature settings and limits it was registered with."""

    def __init__(self, *, folder: Path, settings: dict[str, Any], workers: int):
        if settings.get("api") != RUNTIME_API:
            raise BundleError(f"{folder}: runtime API {settings.get('api')} is not {RUNTIME_API}")
        self.folder, self.workers = Path(folder), max(1, workers)
        self.predictor = load_predictor(self.folder / MODEL_FOLDER)
        if self.predictor.embedding is not None and self.workers > 1:  # files in parallel: one thread each
            self.predictor.embedding = self.predictor.embedding.single_threaded()
        self.config = None
        if self.predictor.needs_features:
            from ..features import FeatureConfig  # the classic feature code loads only for models that read it

            self.config = FeatureConfig(**settings["features"])
        self.limits = Limits(**settings["limits"])
        # fitted on the model's grouped out-of-fold probabilities at registration (absent: raw, no sets)
        self.calibration: dict[str, Any] = settings.get("calibration") or {}

    @classmethod
    def open(cls, folder: Path, *, expected_sha256: str | None = None, workers: int = 1) -> "BundleModel":
        settings = verify_bundle(folder, expected_sha256=expected_sha256)
        return cls(folder=folder, settings=settings, workers=workers)

    @property
    def classes(self) -> list[str]:
        return list(self.predictor.classes)

    @property
    def proba_columns(self) -> list[str]:
        return proba_columns(self.classes)

    def extract(self, path: str) -> TrackFeatures | str:
        """The model's inputs from one file, or the reason the file cannot be scored."""
        try:
            return extract_file(
                path,
                key=path,
                config=self.config,
                limits=self.limits,
                embedding=self.predictor.embedding,
                features=self.predictor.needs_features,
            )
        except (ValueError, OSError) as exc:
            return str(exc)

    def predict_paths(self, paths: list[str]) -> tuple[np.ndarray, list[str]]:
        """(files, classes) probabilities, a NaN row for a file that failed; per file its error or ''."""
        proba, errors, _ = self.predict_paths_with_embeddings(paths)
        return proba, errors

    def predict_paths_with_embeddings(self, paths: list[str]) -> tuple[np.ndarray, list[str], np.ndarray | None]:
        """predict_paths plus each file's tagger embedding (a NaN row for a failed file), or None when the
        model computes none (embeds_tracks): a caller that needs the embedding too (monitoring's novelty)
        need not run the tagger a second time. `embedding_identity` tells which tagger made them."""
        if self.workers == 1:  # one file at a time in this thread: the tagger uses every core itself
            outcomes = [self.extract(str(path)) for path in paths]
        else:
            with ThreadPoolExecutor(max_workers=self.workers) as pool:
                outcomes = list(pool.map(self.extract, [str(p) for p in paths]))
        proba = np.full((len(outcomes), len(self.classes)), np.nan)
        good = {i: outcome for i, outcome in enumerate(outcomes) if isinstance(outcome, TrackFeatures)}
        embeddings = None
        if good:
            raw = self.predictor.predict_proba(list(good.values()))
            temperature = self.calibration.get("temperature")
            proba[list(good)] = raw if temperature is None else apply_temperature(raw, temperature)
            if self.embeds_tracks:
                vectors = np.stack([item.tagger_embedding() for item in good.values()])
                embeddings = np.full((len(outcomes), vectors.shape[1]), np.nan)
                embeddings[list(good)] = vectors
        return proba, ["" if isinstance(outcome, TrackFeatures) else outcome for outcome in outcomes], embeddings

    def embedding_identity(self) -> dict[str, Any] | None:
        """Which tagger computes the model's track embeddings (tagger_identity); None when it computes none."""
        network = self.predictor.embedding
        return tagger_identity(network) if network is not None and self.embeds_tracks else None

    @property
    def embeds_tracks(self) -> bool:
        """Whether scoring computes a tagger embedding per track (a transfer model); a deep model's base
        gives per-patch outputs instead, a classic model no embedding."""
        network = self.predictor.embedding
        return network is not None and not network.config.per_patch

    def genre_sets(self, proba: np.ndarray) -> list[list[str]]:
        """Per row, the split-conformal genre set (holds the true genre with the bundle's coverage
        target on tracks like the grouped CV's); empty lists when the bundle has no threshold or the
        row is a failed file's NaN."""
        threshold = self.calibration.get("threshold")
        if threshold is None:
            return [[] for _ in proba]
        good = ~np.isnan(proba).any(axis=1)
        chosen = iter(genre_sets(proba[good], threshold=threshold)) if good.any() else iter([])
        return [[self.classes[i] for i in next(chosen)] if ok else [] for ok in good]


def tagger_identity(tagger: TaggerRef) -> dict[str, Any]:
    """What a tagger computes: its ONNX file's sha256 and its settings, threads aside (how to run, not
    what). Two taggers with the same identity give a file the same embedding."""
    settings = {key: value for key, value in asdict(tagger.config).items() if key != "threads"}
    return {"tagger_sha256": file_sha256(Path(tagger.folder) / TAGGER_FILE), "settings": settings}
