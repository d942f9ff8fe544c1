"""A saved model folder as it serves: ONNX Runtime, never TensorFlow or Keras.

`load_predictor` reads meta.json and builds the family's served predictor from the files `save`
wrote. Evaluation, registration, `predict`, the scoring service and monitoring all go through it,
so what is scored is what is served.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

from ..extraction import TrackFeatures
from ..tagger import TAGGER_FILES, EmbeddingConfig, TaggerRef, onnx_session
from .heads import HeadFunction, load_head
from .predictor import ModelMeta, Predictor, mean_by_track, normalise_rows, require_segments, scatter_classes

# a transfer model's row: these parts in the order its `input` names them (one row per track)
TRANSFER_PARTS: dict[str, Callable[[TrackFeatures], np.ndarray]] = {
    "embedding": lambda item: item.tagger_embedding(),
    "pooled": lambda item: item.tagger_pooled(),
    "track": lambda item: item.classic()[0],
}
TRANSFER_INPUTS = ("embedding", "embedding+track", "embedding+pooled+track")


def reads_features(input: str) -> bool:
    """Whether a model with this input needs the classic features extracted (serving skips them if not)."""
    return input not in TRANSFER_INPUTS or "track" in input.split("+")


def design_matrix(*, items: list[TrackFeatures], input: str) -> tuple[np.ndarray, list[int]]:
    """Rows to classify and how many belong to each track."""
    if input == "track":
        return np.stack([item.classic()[0] for item in items]), [1] * len(items)
    if input == "segment":
        segments = [item.classic()[1] for item in items]
        counts = [len(rows) for rows in segments]
        require_segments(items=items, counts=counts)
        return np.concatenate(segments), counts
    if input in TRANSFER_INPUTS:
        parts = [np.stack([TRANSFER_PARTS[part](item) for item in items]) for part in input.split("+")]
        return np.hstack(parts), [1] * len(items)
    raise ValueError(f"unknown model input {input!r}")


PATCH_ARCHITECTURES = ("cnn", "crnn")  # deep models on the pretrained base: per patch, or a sequence of patches
BASE_FOLDER = "base"  # inside such a model's folder: the exported base it extracts patches with
PATCH_BATCH_ROWS = 256  # patch rows (cnn) or tracks (crnn) per network call


def standardise_rows(rows: np.ndarray, *, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Per-unit standardisation on the last axis with the training statistics, float32."""
    return ((np.asarray(rows, np.float32) - mean) / std).astype(np.float32)


def patch_proba(
    *,
    run: Callable[[np.ndarray], np.ndarray],
    items: list[TrackFeatures],
    architecture: str,
    mean: np.ndarray,
    std: np.ndarray,
) -> np.ndarray:
    """Track probabilities of a network on the base's patches: cnn averages its patch rows' probabilities,
    crnn reads each track's patches as one sequence (tracks of equal length batched together)."""
    patches = [item.base_patches() for item in items]
    if architecture == "cnn":
        rows = standardise_rows(np.concatenate(patches), mean=mean, std=std)
        proba = np.concatenate([run(rows[s : s + PATCH_BATCH_ROWS]) for s in range(0, len(rows), PATCH_BATCH_ROWS)])
        return normalise_rows(mean_by_track(proba=proba, counts=[len(p) for p in patches]))
    lengths = np.array([len(p) for p in patches])
    out: dict[int, np.ndarray] = {}
    for length in np.unique(lengths):
        members = np.flatnonzero(lengths == length)
        for start in range(0, len(members), PATCH_BATCH_ROWS):
            chosen = members[start : start + PATCH_BATCH_ROWS]
            sequences = standardise_rows(np.stack([patches[i] for i in chosen]), mean=mean, std=std)
            out.update(zip(chosen.tolist(), run(sequences)))
    return normalise_rows(np.stack([out[i] for i in range(len(items))]))


def check_onnx(
    *,
    path: Path,
    expected: np.ndarray,
    items: list[TrackFeatures],
    architecture: str,
    mean: np.ndarray,
    std: np.ndarray,
    atol: float,
) -> None:
    """The exported graph must give the trained network's track probabilities: there is no fallback."""
    session = onnx_session(path)
    name = session.get_inputs()[0].name
    got = patch_proba(
        run=lambda rows: session.run(None, {name: rows})[0], items=items, architecture=architecture, mean=mean, std=std
    )
    error = float(np.abs(got - expected).max())
    if error > atol:
        raise ValueError(f"{path}: the ONNX export differs from Keras by {error:.2e} (> {atol})")


def standardise_segments(segments: np.ndarray, *, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(n, mel, frames) -> (n, mel, frames, 1) float32 standardised per mel band (training statistics)."""
    return ((segments - mean[None, :, None]) / std[None, :, None])[..., None].astype(np.float32)


class ServedHead(Predictor):
    """Classic and transfer models: feature rows -> head probabilities -> mean over a track's rows."""

    def __init__(self, *, meta: ModelMeta, head: HeadFunction, embedding: TaggerRef | None):
        super().__init__(classes=meta.classes, input=meta.input)
        self.family, self.head, self.embedding = meta.family, head, embedding
        self.present = [int(c) for c in meta.served["classes"]]
        self.needs_features = reads_features(meta.input)

    def predict_proba(self, items: list[TrackFeatures]) -> np.ndarray:
        rows, counts = design_matrix(items=items, input=self.input)
        proba = scatter_classes(partial=self.head(rows), present=self.present, n_classes=len(self.classes))
        return normalise_rows(mean_by_track(proba=proba, counts=counts))


class ServedNetwork(Predictor):
    """CNN / CRNN: standardised log-mel segments through the exported network, mean over a track's segments."""

    family = "deep"

    def inputs(self, segments: np.ndarray) -> np.ndarray:
        return standardise_segments(np.asarray(segments, np.float32), mean=self.mean, std=self.std)

    def __init__(self, *, meta: ModelMeta, directory: Path):
        super().__init__(classes=meta.classes, input="logmel")
        stats = json.loads((directory / meta.served["norm"]).read_text(encoding="utf-8"))
        self.mean, self.std = np.asarray(stats["mean"], np.float32), np.asarray(stats["std"], np.float32)
        self.session = onnx_session(directory / meta.served["onnx"])
        self.batch_size = int(meta.served["batch_size"])

    def predict_proba(self, items: list[TrackFeatures]) -> np.ndarray:
        mels = [item.classic()[2] for item in items]
        counts = [len(segments) for segments in mels]
        require_segments(items=items, counts=counts)
        segments = np.concatenate(mels)  # the stored dtype (float16 from logmel.npy): cast batch by batch
        name = self.session.get_inputs()[0].name
        proba = np.concatenate(
            [
                self.session.run(None, {name: self.inputs(segments[start : start + self.batch_size])})[0]
                for start in range(0, len(segments), self.batch_size)
            ]
        )
        return normalise_rows(mean_by_track(proba=proba, counts=counts))


class ServedPatchNetwork(Predictor):
    """cnn / crnn on the pretrained base: the base's per-patch outputs (extracted with the folder's own copy
    of the base) through the exported network."""

    family = "deep"

    def __init__(self, *, meta: ModelMeta, directory: Path):
        super().__init__(classes=meta.classes, input="patches")
        stats = json.loads((directory / meta.served["norm"]).read_text(encoding="utf-8"))
        self.mean, self.std = np.asarray(stats["mean"], np.float32), np.asarray(stats["std"], np.float32)
        self.session = onnx_session(directory / meta.served["onnx"])
        self.architecture = meta.served["architecture"]
        self.embedding = carried_network(meta=meta, folder=directory / meta.served["base"])
        self.needs_features = False

    def run(self, rows: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.session.get_inputs()[0].name: rows})[0]

    def predict_proba(self, items: list[TrackFeatures]) -> np.ndarray:
        return patch_proba(run=self.run, items=items, architecture=self.architecture, mean=self.mean, std=self.std)


def carried_network(*, meta: ModelMeta, folder: Path) -> TaggerRef:
    """The pretrained network a model folder carries (a transfer model's tagger/, a deep model's base/), run
    with its recorded settings on every core of the serving machine."""
    return TaggerRef(str(folder), EmbeddingConfig(**{**(meta.embeddings or {}), "threads": 0}))


def copy_network(*, network: TaggerRef, target: Path) -> None:
    """Copy an exported network's files into a model folder, so the folder serves from audio by itself."""
    target.mkdir()
    for name in TAGGER_FILES:
        shutil.copy2(Path(network.folder) / name, target / name)


def _head_model(meta: ModelMeta, directory: Path) -> Predictor:
    embedding = None
    if meta.family == "transfer":
        embedding = carried_network(meta=meta, folder=directory / meta.served["tagger"])
    return ServedHead(meta=meta, head=load_head(directory=directory, served=meta.served), embedding=embedding)


def _network(meta: ModelMeta, directory: Path) -> Predictor:
    if meta.input == "patches":
        return ServedPatchNetwork(meta=meta, directory=directory)
    return ServedNetwork(meta=meta, directory=directory)


FAMILIES: dict[str, Callable[[ModelMeta, Path], Predictor]] = {
    "classic": _head_model,
    "transfer": _head_model,
    "deep": _network,
}


def load_predictor(model_dir: Path) -> Predictor:
    """The served Predictor of a model directory (artifacts/models/<model>/<protocol>, or a bundle's model/)."""
    model_dir = Path(model_dir)
    meta = ModelMeta.read(model_dir)
    if meta.family not in FAMILIES:
        raise ValueError(f"{model_dir}: unknown model family {meta.family!r}")
    return FAMILIES[meta.family](meta, model_dir)
