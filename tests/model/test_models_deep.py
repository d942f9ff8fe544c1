"""Deep models on the real log-mel segments: a short CNN run beats chance on unseen artists, the CRNN
builds and trains, and both serve from their ONNX export (model.onnx + norm.json) with Keras' probabilities."""

from __future__ import annotations

import copy

import numpy as np

from musicgenre.models import fit_predictor
from tests.helpers import save_and_reload

CHANCE = 0.1


def quick(params, *, name: str, epochs: int) -> dict:
    """The model's own settings, only shorter: a test budget, not a tuning."""
    settings = copy.deepcopy(params["models"][name])
    settings["hyper"].update(epochs=epochs, verbose=0)
    return settings


def fit(params, grouped, *, name: str, epochs: int, train_tracks: slice = slice(None)):
    items, labels = grouped["train"]
    return fit_predictor(
        name=name,
        settings=quick(params, name=name, epochs=epochs),
        seed=params["seed"],
        classes=params["genres"],
        threads=params["train"]["threads"],
        train_items=items[train_tracks],
        train_labels=labels[train_tracks],
        valid_items=grouped["valid"][0],
        valid_labels=grouped["valid"][1],
    )


def assert_round_trip(predictor, *, params, items, directory) -> np.ndarray:
    served = save_and_reload(predictor, params=params, directory=directory, family="deep", input="logmel")
    assert type(served).__module__ == "musicgenre.models.served"
    proba = predictor.predict_proba(items)
    np.testing.assert_allclose(served.predict_proba(items), proba, atol=params["train"]["onnx"]["atol"])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    return proba


def test_cnn_beats_chance_on_unseen_artists(params, grouped, tmp_path):
    predictor = fit(params, grouped, name="cnn", epochs=4)
    items, labels = grouped["test"]
    proba = assert_round_trip(predictor, params=params, items=items, directory=tmp_path)
    assert (proba.argmax(axis=1) == labels).mean() > 2 * CHANCE


def test_crnn_trains_and_reloads(params, grouped, tmp_path):
    predictor = fit(params, grouped, name="crnn", epochs=1, train_tracks=slice(0, None, 4))
    items = grouped["test"][0][:8]
    proba = assert_round_trip(predictor, params=params, items=items, directory=tmp_path)
    assert proba.shape == (len(items), len(params["genres"]))
    # the stored statistics are the training split's, one per mel band
    train_mels = np.concatenate([item.log_mels for item in grouped["train"][0][::4]])
    np.testing.assert_allclose(predictor.mean, train_mels.mean(axis=(0, 2)), rtol=1e-4, atol=1e-3)
