"""Deep models on a pretrained convolutional base: the musicnn wheel's MSD_vgg network (params.embeddings.base),
its convolutional layers frozen and run once per 3-s patch by the embed stage, with new layers trained on top.

`cnn` classifies each patch (dropout, dense, softmax) and averages a track's patch probabilities; `crnn` reads
the track's patches in order as a sequence (a GRU over 3-s steps), one prediction per track. Training uses
mixup and label smoothing; inputs are standardised per unit with the training rows' statistics (norm.json).

Frozen, the base costs one network pass per patch for the whole run (cross-validation included), so a fit is
a few CPU seconds, and it carries what MSD pretraining learned: trained from scratch on ~110 tracks per fold,
the same kind of networks stay under the classic models (docs/DEEP_CV.md).

Saved as Keras (`model.keras`) and ONNX (`model.onnx`, checked against Keras), with the exported base copied
into the folder (`base/`), so the folder goes from audio to probabilities without TensorFlow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..extraction import TrackFeatures
from ..io import write_json
from ..tagger import TaggerRef
from ..tf_runtime import tensorflow
from .deep import configure_runtime
from .predictor import ExportSettings, TrainedModel
from .served import BASE_FOLDER, PATCH_ARCHITECTURES, check_onnx, copy_network, patch_proba, standardise_rows

tf = tensorflow()  # before keras, which would import it with the start-up notices
import keras  # noqa: E402
from keras import layers  # noqa: E402

KERAS_FILE, ONNX_FILE, NORM_FILE = "model.keras", "model.onnx", "norm.json"
CHECK_TRACKS = 16  # training tracks on which the ONNX export must match Keras


def build_patch_network(*, architecture: str, h: dict[str, Any], units: int, n_classes: int) -> keras.Model:
    """cnn: one patch (units,) -> genre probabilities; crnn: a sequence of patches (steps, units) -> GRU -> them."""
    if architecture not in PATCH_ARCHITECTURES:
        raise ValueError(f"unknown deep architecture {architecture!r} ({' or '.join(PATCH_ARCHITECTURES)})")
    if architecture == "cnn":
        x = inputs = keras.Input(shape=(units,))
    else:
        inputs = keras.Input(shape=(None, units))  # any number of patches: a short clip has fewer
        x = layers.GRU(h["gru_units"])(inputs)
    x = layers.Dropout(h["dropout"])(x)
    x = layers.Dense(h["dense_units"], activation="relu")(x)
    x = layers.Dropout(h["dropout"])(x)
    network = keras.Model(inputs, layers.Dense(n_classes, activation="softmax")(x), name=f"vgg_{architecture}")
    network.compile(
        optimizer=keras.optimizers.Adam(h["learning_rate"]),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=h["label_smoothing"]),
    )
    return network


def training_batches(
    *, lengths: np.ndarray, batch_size: int, rng: np.random.Generator, sequences: bool
) -> list[np.ndarray]:
    """One epoch of row positions in random batches; for sequences, each batch holds tracks of one length
    (GTZAN's clips all have 10 patches, other catalogues need not), so no padding is learned."""
    groups = [np.flatnonzero(lengths == n) for n in np.unique(lengths)] if sequences else [np.arange(len(lengths))]
    batches = []
    for members in groups:
        order = rng.permutation(members)
        batches += [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def mixed(x: np.ndarray, y: np.ndarray, *, rng: np.random.Generator, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Mixup (Zhang et al. 2018): rows and targets blended with a random partner of the batch."""
    if alpha <= 0:
        return x, y
    lam = rng.beta(alpha, alpha, size=len(x)).astype(np.float32)
    partner = rng.permutation(len(x))
    mix = lam.reshape(-1, *([1] * (x.ndim - 1)))
    return mix * x + (1 - mix) * x[partner], lam[:, None] * y + (1 - lam[:, None]) * y[partner]


class PatchNetwork(TrainedModel):
    family = "deep"

    def __init__(
        self,
        *,
        network: keras.Model,
        architecture: str,
        mean: np.ndarray,
        std: np.ndarray,
        classes: list[str],
        base: TaggerRef,
        check: list[TrackFeatures],
    ):
        super().__init__(classes=classes, input="patches")
        self.network, self.architecture, self.mean, self.std = network, architecture, mean, std
        self.embedding = self.base = base  # serving extracts the base's per-patch outputs with it
        self.needs_features = False
        self.check = check

    def run(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.network(rows, training=False))

    def predict_proba(self, items: list[TrackFeatures]) -> np.ndarray:
        return patch_proba(run=self.run, items=items, architecture=self.architecture, mean=self.mean, std=self.std)

    def save(self, directory: Path, *, export: ExportSettings) -> dict[str, Any]:
        directory = Path(directory)
        self.network.save(directory / KERAS_FILE)
        write_json(directory / NORM_FILE, {"mean": self.mean, "std": self.std, "axis": "unit"})
        self.network.export(str(directory / ONNX_FILE), format="onnx", verbose=False, opset_version=export.opset)
        check_onnx(
            path=directory / ONNX_FILE,
            expected=self.predict_proba(self.check),
            items=self.check,
            architecture=self.architecture,
            mean=self.mean,
            std=self.std,
            atol=export.atol,
        )
        copy_network(network=self.base, target=directory / BASE_FOLDER)
        return {
            "format": "onnx",
            "onnx": ONNX_FILE,
            "norm": NORM_FILE,
            "keras": KERAS_FILE,
            "base": BASE_FOLDER,
            "architecture": self.architecture,
        }


def training_rows(
    *, items: list[TrackFeatures], labels: np.ndarray, architecture: str, n_classes: int
) -> tuple[list[np.ndarray] | np.ndarray, np.ndarray, np.ndarray]:
    """cnn: every patch a row (its track's one-hot target); crnn: one sequence per track. Returns the rows
    (array, or list of per-track arrays), the one-hot targets and each row's length in patches."""
    targets = np.eye(n_classes, dtype=np.float32)[np.asarray(labels)]
    patches = [item.base_patches() for item in items]
    lengths = np.array([len(p) for p in patches])
    if architecture == "cnn":
        return np.concatenate(patches), np.repeat(targets, lengths, axis=0), np.ones(lengths.sum(), int)
    return patches, targets, lengths


def fit_patch_network(
    *,
    name: str,
    settings: dict[str, Any],
    seed: int,
    classes: list[str],
    threads: int,
    train_items: list[TrackFeatures],
    train_labels: np.ndarray,
    embedding: TaggerRef | None,
) -> PatchNetwork:
    """Train the new layers on the frozen base's per-patch outputs (mixup batches, all `epochs`)."""
    if embedding is None:
        raise ValueError(
            f"model {name!r}: a deep model on the pretrained base needs the base it reads (embeddings.base)"
        )
    configure_runtime(threads=threads, seed=seed)
    h, architecture, rng = settings["hyper"], settings["architecture"], np.random.default_rng(seed)
    rows, targets, lengths = training_rows(
        items=train_items, labels=train_labels, architecture=architecture, n_classes=len(classes)
    )
    stacked = np.concatenate(rows) if isinstance(rows, list) else rows
    mean = stacked.mean(axis=0).astype(np.float32)
    std = (stacked.std(axis=0) + h["std_floor"]).astype(np.float32)
    network = build_patch_network(architecture=architecture, h=h, units=stacked.shape[1], n_classes=len(classes))
    for _ in range(h["epochs"]):
        for batch in training_batches(
            lengths=lengths, batch_size=h["batch_size"], rng=rng, sequences=architecture == "crnn"
        ):
            x = np.stack([rows[i] for i in batch]) if isinstance(rows, list) else rows[batch]
            x, y = mixed(standardise_rows(x, mean=mean, std=std), targets[batch], rng=rng, alpha=h["mixup_alpha"])
            network.train_on_batch(x, y)
    return PatchNetwork(
        network=network,
        architecture=architecture,
        mean=mean,
        std=std,
        classes=classes,
        base=embedding,
        check=train_items[:CHECK_TRACKS],
    )
