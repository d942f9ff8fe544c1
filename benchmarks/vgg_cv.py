"""Time-boxed experiment (docs/DEEP_CV.md): the musicnn wheel's MSD_vgg convolutional base (TF1
checkpoint, reimplemented in Keras, weights loaded with tf.compat.v1 NewCheckpointReader), frozen,
on musicnn's own 16 kHz 96-band log-mel patches (musicgenre.tagger front end); a new top
(dense, dropout, mixup, label smoothing) trained per grouped-CV fold; track = mean of patch probabilities.

The frozen base's pool5 (or pool4) outputs are computed once for all patches and reused by every fold
and seed. Not part of the pipeline: an honest measurement of what pretraining buys.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from musicgenre.audio import load_audio
from musicgenre.config import load_params, resolve
from musicgenre.crossval import cv_tracks
from musicgenre.models.data import load_tables
from musicgenre.oof import fold_plan
from musicgenre.tagger import EmbeddingConfig, Tagger
from musicgenre.tf_runtime import tensorflow

tf = tensorflow()
import keras  # noqa: E402
from keras import layers  # noqa: E402

CKPT = Path(__import__("musicnn").__file__).parent / "MSD_vgg"


def patches(params, tracks: pd.DataFrame, cache: Path) -> np.ndarray:
    if cache.is_file():
        return np.load(cache)
    config = dataclasses.replace(EmbeddingConfig.from_params(params), max_patches=None)
    tagger = Tagger(resolve(params["paths"]["tagger_dir"]), config=config)
    paths = pd.read_csv(resolve(params["paths"]["tracks"])).set_index("track")["path"]
    out = []
    for track in tracks["track"]:
        p = tagger.patches(load_audio(resolve(paths[track]), sample_rate=tagger.sample_rate))
        out.append(p[:10])
    stack = np.stack(out).astype(np.float32)  # (tracks, 10, 187, 96)
    np.save(cache, stack)
    return stack


def vgg_base(depth: int) -> keras.Model:
    reader = tf.compat.v1.train.NewCheckpointReader(str(CKPT) + "/")
    x = inputs = keras.Input((187, 96))
    x = layers.Reshape((187, 96, 1))(x)
    bn = layers.BatchNormalization(epsilon=1e-3)
    x = bn(x)
    bn.set_weights(
        [reader.get_tensor(f"batch_normalization/{k}") for k in ("gamma", "beta", "moving_mean", "moving_variance")]
    )
    pools = [((4, 1), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4))]
    for i in range(depth):
        conv = layers.Conv2D(128, 3, padding="same", activation="relu")
        x = conv(x)
        conv.set_weights([reader.get_tensor(f"{i + 1}CNN/kernel"), reader.get_tensor(f"{i + 1}CNN/bias")])
        bn = layers.BatchNormalization(epsilon=1e-3)
        x = bn(x)
        bn.set_weights(
            [
                reader.get_tensor(f"batch_normalization_{i + 1}/{k}")
                for k in ("gamma", "beta", "moving_mean", "moving_variance")
            ]
        )
        x = layers.MaxPooling2D(pools[i][0], strides=pools[i][1])(x)
    return keras.Model(inputs, x)


def head(shape, *, h) -> keras.Model:
    x = inputs = keras.Input(shape)
    if len(shape) == 3:
        x = (
            layers.GlobalMaxPooling2D()(x)
            if h["pool"] == "max"
            else layers.Concatenate()([layers.GlobalMaxPooling2D()(x), layers.GlobalAveragePooling2D()(x)])
        )
    x = layers.Dropout(h["dropout"])(x)
    x = layers.Dense(h["dense"], activation="relu")(x)
    x = layers.Dropout(h["dropout"])(x)
    model = keras.Model(inputs, layers.Dense(10, activation="softmax")(x))
    model.compile(keras.optimizers.Adam(h["lr"]), loss=keras.losses.CategoricalCrossentropy(label_smoothing=h["ls"]))
    return model


def fit_fold(feats, y, *, h, seed):
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    model = head(feats.shape[1:], h=h)
    target = np.eye(10, dtype=np.float32)[y]
    for _ in range(h["epochs"]):
        order = rng.permutation(len(feats))
        for start in range(0, len(order), 32):
            b = order[start : start + 32]
            lam = (
                rng.beta(h["mixup"], h["mixup"], size=len(b)).astype(np.float32)
                if h["mixup"]
                else np.ones(len(b), np.float32)
            )
            partner = rng.permutation(len(b))
            shape = (-1,) + (1,) * (feats.ndim - 1)
            xb = lam.reshape(shape) * feats[b] + (1 - lam.reshape(shape)) * feats[b][partner]
            yb = lam[:, None] * target[b] + (1 - lam[:, None]) * target[b][partner]
            model.train_on_batch(xb, yb)
    return model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--depth", type=int, default=5)
    parser.add_argument("--set", default="{}")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--noise", type=float, default=0.0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    h = {"epochs": 30, "dense": 128, "dropout": 0.5, "lr": 1e-3, "ls": 0.1, "mixup": 0.2, "pool": "maxmean"}
    h.update(json.loads(args.set))
    params = load_params()
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tracks = cv_tracks(tables=load_tables(params=params))
    stack = patches(params, tracks, Path("docs/deep_runs/vgg_patches.npy"))
    if args.noise:
        stack = stack * (1 + args.noise * np.random.default_rng(0).standard_normal(stack.shape, dtype=np.float32))
    started, cpu = time.perf_counter(), time.process_time()
    base = vgg_base(args.depth)
    flat = stack.reshape(-1, 187, 96)
    feats = np.concatenate([np.asarray(base(flat[s : s + 64], training=False)) for s in range(0, len(flat), 64)])
    base_cost = {"wall_s": time.perf_counter() - started, "cpu_s": time.process_time() - cpu}
    feats = feats.reshape(len(tracks), 10, *feats.shape[1:])
    labels = tracks["genre"].map(params["genres"].index).to_numpy()
    scores, fits = [], []
    for repeat, fold, train_idx, test_idx in fold_plan(
        tracks, folds=params["evaluate"]["cv_folds"], repeats=args.repeats, seed=params["seed"]
    ):
        wall, cpu = time.perf_counter(), time.process_time()
        x = feats[train_idx].reshape(-1, *feats.shape[2:])
        model = fit_fold(x, np.repeat(labels[train_idx], 10), h=h, seed=params["seed"] + repeat)
        proba = (
            np.asarray(model(feats[test_idx].reshape(-1, *feats.shape[2:]), training=False))
            .reshape(len(test_idx), 10, 10)
            .mean(axis=1)
        )
        scores.append(float((proba.argmax(axis=1) == labels[test_idx]).mean()))
        fits.append({"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu})
    result = {
        "depth": args.depth,
        "h": h,
        "noise": args.noise,
        "repeats": args.repeats,
        "acc_mean": float(np.mean(scores)),
        "acc_std": float(np.std(scores, ddof=1)),
        "fold_acc": scores,
        "base": base_cost,
        "fit_cpu_mean_s": float(np.mean([f["cpu_s"] for f in fits])),
        "fit_wall_mean_s": float(np.mean([f["wall_s"] for f in fits])),
    }
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
