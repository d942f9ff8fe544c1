"""The from-scratch deep models (scratch_cnn, scratch_crnn) on the real log-mel segments: a short CNN run beats
chance on unseen artists, the CRNN builds and trains, and both serve from their ONNX export (model.onnx +
norm.json) with Keras' probabilities. (The pipeline's cnn / crnn on the pretrained base: test_patch_nets.py.)"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from musicgenre.crossval import cv_tracks
from musicgenre.models import fit_predictor
from musicgenre.models.predictor import proba_columns
from musicgenre.oof import fold_plan, out_of_fold
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
    predictor = fit(params, grouped, name="scratch_cnn", epochs=4)
    items, labels = grouped["test"]
    proba = assert_round_trip(predictor, params=params, items=items, directory=tmp_path)
    assert (proba.argmax(axis=1) == labels).mean() > 2 * CHANCE


def test_crnn_trains_and_reloads(params, grouped, tmp_path):
    predictor = fit(params, grouped, name="scratch_crnn", epochs=1, train_tracks=slice(0, None, 4))
    items = grouped["test"][0][:8]
    proba = assert_round_trip(predictor, params=params, items=items, directory=tmp_path)
    assert proba.shape == (len(items), len(params["genres"]))
    # the stored statistics are the training split's, one per mel band
    train_mels = np.concatenate([item.log_mels for item in grouped["train"][0][::4]]).astype(np.float32)
    np.testing.assert_allclose(predictor.mean, train_mels.mean(axis=(0, 2)), rtol=1e-4, atol=1e-3)


@pytest.mark.slow
def test_deep_cv_on_a_subset_scores_every_track_once_per_repeat_on_the_shared_folds(params, grouped):
    """The deep family's CV (evaluate.deep): fewer repeats than classic, but the plan's first ones, so its
    folds are the classic models' folds; every track held out once per repeat."""
    tracks = cv_tracks(tables=grouped["tables"]).groupby("genre").head(8).reset_index(drop=True)
    folds, repeats = params["evaluate"]["cv_folds"], 2
    settings = quick(params, name="scratch_cnn", epochs=1)
    settings["hyper"]["patience"] = 1  # early stopping on the inner artist-grouped split is exercised too
    rows = out_of_fold(
        name="cnn",
        settings=settings,
        tables=grouped["tables"],
        tracks=tracks,
        classes=params["genres"],
        seed=params["seed"],
        folds=folds,
        repeats=repeats,
        threads=params["train"]["threads"],
        inner_folds=params["evaluate"]["deep"]["inner_folds"],
        seed_per_repeat=True,
    )
    assert len(rows) == repeats * len(tracks)
    assert rows.groupby("repeat")["track"].apply(lambda t: sorted(t) == sorted(tracks["track"])).all()
    assert rows.groupby("repeat")["fold"].nunique().tolist() == [folds] * repeats
    classic = fold_plan(tracks, folds=folds, repeats=params["evaluate"]["cv_repeats"], seed=params["seed"])
    for repeat, fold, _, test_idx in classic[: folds * repeats]:
        held = rows[(rows["repeat"] == repeat) & (rows["fold"] == fold)]["track"]
        assert sorted(held) == sorted(tracks.loc[test_idx, "track"])
    np.testing.assert_allclose(rows[proba_columns(params["genres"])].sum(axis=1), 1.0, atol=1e-9)
