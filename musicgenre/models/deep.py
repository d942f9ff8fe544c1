"""Deep models in Keras 3 on the 3-s log-mel segments: a small CNN and a CRNN (convolutions, then a GRU
over time). A track's probability is the mean over its segments. Inputs are standardised per mel band
with statistics of the training split only, stored beside the model (norm.json).

Segments stream from the tracks' arrays batch by batch (musicgenre.models.segments: memory-mapped
logmel.npy views in training), with SpecAugment masks and mixup on the training batches, label
smoothing, and early stopping on the validation tracks (an inner artist-grouped split in CV).

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
from .predictor import ExportSettings, TrainedModel, mean_by_track, normalise_rows
from .segments import SegmentRows, band_statistics, gather, mixup, spec_augment
from .served import standardise_segments

tf = tensorflow()  # before keras, which would import it with the start-up notices
import keras  # noqa: E402
from keras import layers  # noqa: E402

KERAS_FILE = "model.keras"
ONNX_FILE = "model.onnx"
NORM_FILE = "norm.json"
CHECK_SEGMENTS = 64  # training segments on which the ONNX export must match Keras


def configure_runtime(*, threads: int, seed: int) -> None:
    """Bound TensorFlow's thread pools (the machine is shared; only possible before TF starts running),
    make its kernels deterministic, and seed Python, numpy and TensorFlow for this fit."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # already initialised in this process: the earlier setting stays
    tf.config.experimental.enable_op_determinism()  # same host, same seed -> same weights
    keras.utils.set_random_seed(seed)


def _conv_blocks(x: keras.KerasTensor, *, h: dict[str, Any]) -> keras.KerasTensor:
    for filters in h["filters"]:
        x = layers.Conv2D(filters, h["kernel_size"], padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(momentum=h["bn_momentum"])(x)  # few steps per epoch: fast-moving stats
        x = layers.Activation("relu")(x)
        x = layers.MaxPooling2D(tuple(h["pool_size"]))(x)
    return x


def _time_statistics(x: keras.KerasTensor) -> keras.KerasTensor:
    """Mean and max over the time axis only, per (mel band, channel): where in the spectrum a pattern
    sits (the timbre) matters for genre, so the frequency axis is not averaged away."""
    mean = layers.Flatten()(layers.AveragePooling2D((1, x.shape[2]))(x))
    peak = layers.Flatten()(layers.MaxPooling2D((1, x.shape[2]))(x))
    return layers.Concatenate()([mean, peak])


def build_network(*, architecture: str, h: dict[str, Any], input_shape: tuple[int, int], n_classes: int) -> keras.Model:
    """cnn: conv blocks -> pooling (`global`: over time and frequency; `time`: mean and max over time per
    band) -> dense; crnn: conv blocks -> GRU over the time axis -> dense."""
    inputs = keras.Input(shape=(*input_shape, 1))
    x = layers.AveragePooling2D(tuple(h["input_pool"]))(inputs)  # coarser time-frequency grid: CPU budget
    x = _conv_blocks(x, h=h)
    if architecture == "cnn" and h["pooling"] == "global":
        x = layers.GlobalAveragePooling2D()(x)
    elif architecture == "cnn" and h["pooling"] == "time":
        x = _time_statistics(x)
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
    return keras.Model(inputs, outputs, name=architecture)


def compile_network(network: keras.Model, *, h: dict[str, Any], steps: int) -> None:
    """Adam with a cosine-decayed rate over the whole run (the last epochs take small steps, so the
    result depends less on where exactly training stops) and label-smoothed cross-entropy on one-hot
    (mixed) targets."""
    rate = keras.optimizers.schedules.CosineDecay(h["learning_rate"], decay_steps=max(steps * h["epochs"], 1))
    network.compile(
        optimizer=keras.optimizers.Adam(rate),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=h["label_smoothing"]),
        metrics=["accuracy"],
    )


class SegmentBatches(keras.utils.PyDataset):
    """Standardised segments of `items` read batch by batch (never all at once as float32). With
    `targets` (one-hot, per segment) it is a training or validation set: (x, y, sample weight) batches,
    reshuffled every epoch when `shuffle`, augmented when `augment` is given; without, prediction inputs in order."""

    def __init__(
        self,
        *,
        items: list[TrackFeatures],
        mean: np.ndarray,
        std: np.ndarray,
        batch_size: int,
        targets: np.ndarray | None = None,
        weights: np.ndarray | None = None,
        augment: dict[str, Any] | None = None,
        shuffle: bool = False,
        seed: int = 0,
    ):
        super().__init__()  # one worker, in this process: the CPU is shared and batches are cheap
        self.items, self.rows, self.mean, self.std = items, SegmentRows.of(items), mean, std
        self.batch_size, self.targets, self.weights, self.augment = batch_size, targets, weights, augment
        self.shuffle = shuffle
        self.rng = np.random.default_rng(seed)
        self.order = np.arange(len(self.rows))
        self.on_epoch_end()

    def __len__(self) -> int:
        return -(-len(self.rows) // self.batch_size)

    def __getitem__(self, index: int) -> Any:
        positions = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        x = standardise_segments(
            gather(items=self.items, rows=self.rows, positions=positions), mean=self.mean, std=self.std
        )
        if self.targets is None:
            return x
        y = self.targets[positions]
        w = self.weights[positions] if self.weights is not None else np.ones(len(positions), np.float32)
        if self.augment is not None:
            x = spec_augment(x[..., 0], rng=self.rng, augment=self.augment)[..., None]
            x, y, w = mixup(x, y, w, rng=self.rng, alpha=self.augment["mixup_alpha"])
        return x, y, w

    def on_epoch_end(self) -> None:
        if self.shuffle:  # a training set: a new order per epoch
            self.order = self.rng.permutation(len(self.rows))


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
        batches = SegmentBatches(items=items, mean=self.mean, std=self.std, batch_size=self.batch_size)
        proba = np.concatenate([np.asarray(self.network(batches[i], training=False)) for i in range(len(batches))])
        return normalise_rows(mean_by_track(proba=proba, counts=batches.rows.counts))

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


def segment_targets(
    *, items: list[TrackFeatures], labels: np.ndarray, n_classes: int, balanced: bool
) -> tuple[np.ndarray, np.ndarray]:
    """One-hot targets and sample weights per segment (balanced class weights when `balanced`)."""
    rows = SegmentRows.of(items)
    per_segment = np.asarray(labels)[rows.track]
    weights = np.ones(len(per_segment), np.float32)
    if balanced:
        present = np.unique(per_segment)
        table = dict(zip(present.tolist(), compute_class_weight("balanced", classes=present, y=per_segment)))
        weights = np.asarray([table[label] for label in per_segment], np.float32)
    return np.eye(n_classes, dtype=np.float32)[per_segment], weights


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
    """Train on streamed, augmented training segments; with `patience`, early-stop on the validation
    segments (best weights restored), else run all `epochs`."""
    configure_runtime(threads=threads, seed=seed)
    h, n_classes = settings["hyper"], len(classes)
    rows = SegmentRows.of(train_items)
    stats = band_statistics(items=train_items, rows=rows, chunk=h["stats_chunk"], floor=h["std_floor"])
    mean, std = (value.astype(np.float32) for value in stats)  # as served reads norm.json: same inputs
    y, w = segment_targets(items=train_items, labels=train_labels, n_classes=n_classes, balanced=h["class_weight"])
    train = SegmentBatches(
        items=train_items,
        mean=mean,
        std=std,
        batch_size=h["batch_size"],
        targets=y,
        weights=w,
        augment=h["augment"],
        shuffle=True,
        seed=seed,
    )
    network = build_network(
        architecture=settings["architecture"],
        h=h,
        input_shape=train_items[0].classic()[2].shape[1:],
        n_classes=n_classes,
    )
    compile_network(network, h=h, steps=len(train))
    callbacks, validation = [], None
    if h["patience"] is not None and valid_items:
        y_valid, _ = segment_targets(items=valid_items, labels=valid_labels, n_classes=n_classes, balanced=False)
        validation = SegmentBatches(items=valid_items, mean=mean, std=std, batch_size=h["batch_size"], targets=y_valid)
        callbacks = [
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=h["patience"], restore_best_weights=True)
        ]
    network.fit(train, validation_data=validation, epochs=h["epochs"], callbacks=callbacks, verbose=h["verbose"])
    check = gather(items=train_items, rows=rows, positions=np.arange(min(CHECK_SEGMENTS, len(rows))))
    return DeepPredictor(network=network, mean=mean, std=std, classes=classes, batch_size=h["batch_size"], check=check)
