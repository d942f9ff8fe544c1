"""Transfer heads without the tagger: the row layout of each transfer input, and the ridge head served as
a softmax of its scores (same argmax, real probabilities, an ONNX conversion that reproduces them)."""

from __future__ import annotations

import numpy as np
import pytest

from musicgenre.extraction import TrackFeatures
from musicgenre.models.served import design_matrix, reads_features
from musicgenre.models.transfer import fit_transfer, ridge_as_softmax
from musicgenre.tagger import TaggerRef

GENRES = [f"g{i}" for i in range(10)]
RIDGE = {"family": "transfer", "input": "embedding+pooled+track", "estimator": "ridge"}


def items(count: int, *, seed: int = 0) -> tuple[list[TrackFeatures], np.ndarray]:
    """Tracks whose three parts carry their genre in different dimensions (so every part matters)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % len(GENRES)
    made = []
    for index, label in enumerate(labels):
        embedding, pooled, track = rng.normal(size=6), rng.normal(size=12), rng.normal(size=4)
        pooled[label] += 6.0
        made.append(TrackFeatures(f"t{index}", track, track[None], np.zeros((1, 2, 2)), embedding, pooled))
    return made, labels


def test_transfer_rows_follow_the_input_order():
    tracks, _ = items(3)
    rows, counts = design_matrix(items=tracks, input="embedding+pooled+track")
    first = tracks[0]
    np.testing.assert_array_equal(rows[0], np.concatenate([first.embedding, first.pooled, first.track_vector]))
    assert rows.shape == (3, 22) and counts == [1, 1, 1]
    assert design_matrix(items=tracks, input="embedding")[0].shape == (3, 6)
    assert reads_features("embedding+pooled+track") and reads_features("segment") and not reads_features("embedding")


def test_missing_pooled_layer_is_named():
    tracks, _ = items(2)
    tracks[1].pooled = None
    with pytest.raises(ValueError, match="t1: no pooled tagger layer"):
        design_matrix(items=tracks, input="embedding+pooled+track")


def test_ridge_head_is_a_softmax_of_its_scores_and_converts_to_onnx(tmp_path):
    from skl2onnx import to_onnx
    from sklearn.linear_model import RidgeClassifier

    from musicgenre.tagger import onnx_session

    train, labels = items(80)
    rows = design_matrix(items=train, input="embedding+pooled+track")[0]
    ridge = RidgeClassifier(alpha=10.0, class_weight="balanced").fit(rows, labels)
    softmax = ridge_as_softmax(ridge, scale=5.0)
    rows = design_matrix(items=items(30, seed=1)[0], input="embedding+pooled+track")[0]
    scores = 5.0 * ridge.decision_function(rows)
    expected = np.exp(scores - scores.max(axis=1, keepdims=True))
    np.testing.assert_allclose(softmax.predict_proba(rows), expected / expected.sum(axis=1, keepdims=True), atol=1e-12)
    model = to_onnx(softmax, rows[:1].astype(np.float32), options={id(softmax): {"zipmap": False}})
    path = tmp_path / "head.onnx"
    path.write_bytes(model.SerializeToString())
    session = onnx_session(path)
    served = session.run(None, {session.get_inputs()[0].name: rows.astype(np.float32)})[1]
    np.testing.assert_allclose(served, softmax.predict_proba(rows), atol=1e-5)


def test_fit_transfer_ridge_learns_from_the_pooled_part():
    train, labels = items(100)
    held_out, truth = items(40, seed=2)
    predictor = fit_transfer(
        name="transfer_ridge",
        settings={**RIDGE, "hyper": {"alpha": 1.0, "softmax_scale": 5.0}},
        seed=0,
        classes=GENRES,
        threads=1,
        train_items=train,
        train_labels=labels,
        embedding=TaggerRef("unused", None),  # type: ignore[arg-type]
    )
    proba = predictor.predict_proba(held_out)
    assert np.allclose(proba.sum(axis=1), 1.0) and (proba.argmax(axis=1) == truth).mean() > 0.9
    assert predictor.needs_features
