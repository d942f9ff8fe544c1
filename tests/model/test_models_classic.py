"""Classic models on the real feature tables: each beats chance on held-out artist-disjoint tracks,
the segment vote works, and a saved model reloads to the same probabilities."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from musicgenre.extraction import TrackFeatures
from musicgenre.models import fit_predictor
from musicgenre.models.predictor import META_FILE
from tests.helpers import save_and_reload

CHANCE = 0.1


def fit(params, grouped, *, name: str, input: str):
    settings = copy.deepcopy(params["models"][name])
    settings["input"] = input
    items, labels = grouped["train"]
    return fit_predictor(
        name=name,
        settings=settings,
        seed=params["seed"],
        classes=params["genres"],
        threads=params["train"]["threads"],
        train_items=items,
        train_labels=labels,
        valid_items=[],
        valid_labels=labels[:0],
    )


@pytest.mark.parametrize("name", ["lr_bagging", "knn_bagging", "random_forest", "svm", "gradient_boosting", "xgboost"])
def test_classic_model_beats_chance_on_unseen_artists(params, grouped, name):
    predictor = fit(params, grouped, name=name, input="track")
    items, labels = grouped["held_out"]
    proba = predictor.predict_proba(items)
    assert proba.shape == (len(items), len(params["genres"]))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert (proba.argmax(axis=1) == labels).mean() > 2.5 * CHANCE


def test_segment_vote_averages_segment_probabilities(params, grouped):
    predictor = fit(params, grouped, name="svm", input="segment")
    items, labels = grouped["held_out"]
    proba = predictor.predict_proba(items)
    assert (proba.argmax(axis=1) == labels).mean() > 2.5 * CHANCE
    first = items[0]
    segment_mean = predictor.pipeline.predict_proba(first.segment_vectors).mean(axis=0)
    np.testing.assert_allclose(proba[0, predictor.pipeline.classes_.astype(int)], segment_mean, atol=1e-9)


@pytest.mark.parametrize("name, served_by", [("xgboost", "skops"), ("lr_bagging", "onnx"), ("svm", "onnx")])
def test_saved_classic_model_serves_the_same_probabilities(params, grouped, tmp_path, name, served_by):
    """Saved as the train stage saves it: an ONNX head when skl2onnx reproduces the pipeline, else skops."""
    predictor = fit(params, grouped, name=name, input="segment")
    reloaded = save_and_reload(predictor, params=params, directory=tmp_path, input="segment")
    assert reloaded.classes == params["genres"]
    assert json.loads((tmp_path / META_FILE).read_text())["served"]["format"] == served_by
    items = grouped["held_out"][0][:10]
    atol = 1e-12 if served_by == "skops" else params["train"]["onnx"]["atol"]
    np.testing.assert_allclose(reloaded.predict_proba(items), predictor.predict_proba(items), atol=atol)


def test_track_without_segments_is_refused_by_name(params, grouped):
    predictor = fit(params, grouped, name="knn_bagging", input="segment")
    item = grouped["held_out"][0][0]
    short = TrackFeatures(
        key="too_short.ogg",
        track_vector=item.track_vector,
        segment_vectors=item.segment_vectors[:0],
        log_mels=item.log_mels[:0],
    )
    with pytest.raises(ValueError, match="too_short.ogg"):
        predictor.predict_proba([item, short])


def test_track_features_match_the_tables(params, grouped):
    tables = grouped["tables"]
    item = grouped["train"][0][0]
    rows = tables.features[tables.features["track"] == item.key].sort_values("segment")
    np.testing.assert_array_equal(item.track_vector, rows[rows["segment"] == -1][tables.feature_columns].iloc[0])
    np.testing.assert_array_equal(item.segment_vectors, rows[rows["segment"] >= 0][tables.feature_columns])
    assert item.log_mels.dtype == tables.logmel.dtype  # the stored dtype, read lazily from the memmap
    assert isinstance(item.log_mels, np.memmap)
    assert item.log_mels.shape == (len(item.segment_vectors), *tables.logmel.shape[1:])
