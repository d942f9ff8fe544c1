"""Deep models in Keras 3 on the 3-s log-mel segments: a small CNN and a CRNN (convolutions, then a GRU
over time). A track's probability is the mean over its segments. Inputs are standardised per mel band
with statistics of the training split only, stored beside the model (norm.json).

Saved as Keras (`model.keras`, to inspect or fine-tune) and as ONNX (`model.onnx`, what serves): the
export is checked against Keras on training segments, so serving never needs TensorFlow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.utils.class_weight import compute_class_weight

from ..extraction import TrackFeatures
from ..io import write_json
from ..tagger import onnx_session
from ..tf_runtime import tensorflow
from .predictor import ExportSettings, TrainedModel, mean_by_track, normalise_rows, require_segments
from .served import standardise_segments

tf = tensorflow()  # before keras, which would import it with the start-up notices
import keras  # noqa: E402
from keras import layers  # noqa: E402

KERAS_FILE = "model.keras"
ONNX_FILE = "model.onnx"
NORM_FILE = "norm.json"
CHECK_SEGMENTS = 64  # training segments on which the ONNX export must match Keras


def configure_threads(*, threads: int) -> None:
    """Bound TensorFlow's thread pools (the machine is shared); only possible before TF starts running."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # already initialised in this process: the earlier setting stays


def stack_segments(items: list[TrackFeatures]) -> tuple[np.ndarray, list[int]]:
    """All log-mel segments of the items, (n, n_mels, frames), and how many belong to each track."""
    mels = [item.classic()[2] for item in items]
    counts = [len(segments) for segments in mels]
    require_segments(items=items, counts=counts)
    return np.concatenate(mels).astype(np.float32), counts


def _conv_blocks(x: keras.KerasTensor, *, h: dict[str, Any]) -> keras.KerasTensor:
    for filters in h["filters"]:
        x = layers.Conv2D(filters, h["kernel_size"], padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(momentum=h["bn_momentum"])(x)  # few steps per epoch: fast-moving stats
        x = layers.Activation("relu")(x)
        x = layers.MaxPooling2D(tuple(h["pool_size"]))(x)
    return x


def build_network(*, architecture: str, h: dict[str, Any], input_shape: tuple[int, int], n_classes: int) -> keras.Model:
    """cnn: conv blocks -> global pooling -> dense; crnn: conv blocks -> GRU over the time axis -> dense."""
    inputs = keras.Input(shape=(*input_shape, 1))
    x = layers.AveragePooling2D(tuple(h["input_pool"]))(inputs)  # coarser time-frequency grid: CPU budget
    x = _conv_blocks(x, h=h)
    if architecture == "cnn":
        x = layers.GlobalAveragePooling2D()(x)
    elif architecture == "crnn":
        x = layers.Permute((2, 1, 3))(x)  # (mel, time, ch) -> (time, mel, ch): the GRU walks time
        x = layers.Reshape((x.shape[1], x.shape[2] * x.shape[3]))(x)
        x = layers.GRU(h["gru_units"])(x)
    else:
        raise ValueError(f"unknown deep architecture {architecture!r} (cnn or crnn)")
    x = layers.Dropout(h["dropout"])(x)
    x = layers.Dense(h["dense_units"], activation="relu")(x)
    x = layers.Dropout(h["dropout"])(x)
    outputs = layers.Dense(n_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs, name=architecture)
    model.compile(
        optimizer=keras.optimizers.Adam(h["learning_rate"]),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


class DeepPredictor(TrainedModel):
    family = "deep"

    def __init__(
        self,
        *,
        network: keras.Model,
        mean: np.ndarray,
        std: np.ndarray,
        classes: list[str],
        batch_size: int,
        check: np.ndarray | None = None,
    ):
        super().__init__(classes=classes, input="logmel")
        self.network, self.mean, self.std, self.batch_size = network, mean, std, batch_size
        self.check = check  # raw training segments the ONNX export is checked on

    def normalise(self, segments: np.ndarray) -> np.ndarray:
        return standardise_segments(segments, mean=self.mean, std=self.std)

    def predict_proba(self, items: list[TrackFeatures]) -> np.ndarray:
        segments, counts = stack_segments(items)
        proba = self.network.predict(self.normalise(segments), batch_size=self.batch_size, verbose=0)
        return normalise_rows(mean_by_track(proba=proba, counts=counts))

    def save(self, directory: Path, *, export: ExportSettings) -> dict[str, Any]:
        directory = Path(directory)
        self.network.save(directory / KERAS_FILE)
        write_json(directory / NORM_FILE, {"mean": self.mean, "std": self.std, "axis": "mel"})
        self.network.export(str(directory / ONNX_FILE), format="onnx", verbose=False, opset_version=export.opset)
        if self.check is not None:
            check_export(
                network=self.network, path=directory / ONNX_FILE, inputs=self.normalise(self.check), atol=export.atol
            )
        return {
            "format": "onnx",
            "onnx": ONNX_FILE,
            "norm": NORM_FILE,
            "keras": KERAS_FILE,
            "batch_size": self.batch_size,
        }


def check_export(*, network: keras.Model, path: Path, inputs: np.ndarray, atol: float) -> None:
    """The ONNX graph must give Keras' probabilities: there is no fallback for a network."""
    session = onnx_session(path)  # the session serving builds
    converted = session.run(None, {session.get_inputs()[0].name: inputs})[0]
    error = float(np.abs(converted - network.predict(inputs, verbose=0)).max())
    if error > atol:
        raise ValueError(f"{path}: the ONNX export differs from Keras by {error:.2e} (> {atol})")


def fit_deep(
    *,
    name: str,
    settings: dict[str, Any],
    seed: int,
    classes: list[str],
    threads: int,
    train_items: list[TrackFeatures],
    train_labels: np.ndarray,
    valid_items: list[TrackFeatures],
    valid_labels: np.ndarray,
) -> DeepPredictor:
    """Train on training segments, early-stopping on validation segments (best weights restored)."""
    configure_threads(threads=threads)
    keras.utils.set_random_seed(seed)
    h = settings["hyper"]
    x_train, counts = stack_segments(train_items)
    y_train = np.repeat(np.asarray(train_labels), counts)
    mean, std = x_train.mean(axis=(0, 2)), x_train.std(axis=(0, 2)) + h["std_floor"]
    predictor = DeepPredictor(
        network=build_network(
            architecture=settings["architecture"], h=h, input_shape=x_train.shape[1:], n_classes=len(classes)
        ),
        mean=mean,
        std=std,
        classes=classes,
        batch_size=h["batch_size"],
        check=x_train[:CHECK_SEGMENTS],
    )
    x_valid, valid_counts = stack_segments(valid_items)
    validation = (predictor.normalise(x_valid), np.repeat(np.asarray(valid_labels), valid_counts))
    present = np.unique(y_train)
    weights = dict(zip(present.tolist(), compute_class_weight("balanced", classes=present, y=y_train)))
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=h["patience"], restore_best_weights=True)
    predictor.network.fit(
        predictor.normalise(x_train),
        y_train,
        validation_data=validation,
        epochs=h["epochs"],
        batch_size=h["batch_size"],
        class_weight=weights,
        callbacks=[stop],
        verbose=h["verbose"],
    )
    return predictor
