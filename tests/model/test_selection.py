"""Selection on paired grouped folds, the promotion gate and cross-fitted calibration, on hand-built
fold tables and simulated out-of-fold probabilities whose answers are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from musicgenre.calibrated import calibration_summary
from musicgenre.selection import (
    best_model,
    complete_models,
    fold_fingerprint,
    fold_scores,
    nested_estimate,
    paired_gain,
)

CLASSES = ["a", "b", "c", "d"]


def fold_table(values: dict[str, list[float]], *, repeats: int = 1) -> pd.DataFrame:
    """model, repeat, fold, accuracy, macro_f1 (= accuracy) from per-model fold lists."""
    rows = []
    for model, scores in values.items():
        folds = len(scores) // repeats
        for i, score in enumerate(scores):
            rows.append({"model": model, "repeat": i // folds, "fold": i % folds, "accuracy": score, "macro_f1": score})
    return pd.DataFrame(rows)


def test_nested_picks_on_inner_folds_and_scores_the_outer_one():
    # b wins folds 0-2 by a lot, a wins fold 3 by a little: outer fold 3's inner folds (0-2) pick b
    scores = fold_table({"a": [0.5, 0.5, 0.5, 0.9], "b": [0.8, 0.8, 0.8, 0.6]})
    assert best_model(scores=scores, metric="macro_f1") == "b"
    nested = nested_estimate(scores=scores, metric="macro_f1")
    assert nested["chosen"] == {"b": 4}
    assert nested["accuracy_mean"] == pytest.approx(np.mean([0.8, 0.8, 0.8, 0.6]))
    # the naive "best mean" of the chosen model equals it here; with a winner that flips per fold it is lower
    flip = fold_table({"a": [0.9, 0.5, 0.9, 0.5], "b": [0.5, 0.9, 0.5, 0.9]})
    assert nested_estimate(scores=flip, metric="accuracy")["accuracy_mean"] < 0.7


def test_a_model_on_fewer_repeats_competes_only_on_the_folds_it_shares():
    # deep has repeat 0 only (evaluate.deep.repeats = 1 of 2): best there, but absent from repeat 1
    scores = fold_table({"a": [0.5, 0.5, 0.6, 0.6], "b": [0.4, 0.4, 0.7, 0.7]}, repeats=2)
    scores = pd.concat([scores, fold_table({"deep": [0.9, 0.9]})], ignore_index=True)
    assert complete_models(scores=scores) == ["a", "b"]
    nested = nested_estimate(scores=scores, metric="accuracy")
    assert nested["chosen"] == {"b": 2, "deep": 2}  # repeat 0: deep wins its inner fold; repeat 1: b
    assert nested["accuracy_mean"] == pytest.approx(np.mean([0.9, 0.9, 0.7, 0.7]))


def test_gate_promotes_a_consistent_gain_and_not_one_fold_noise_explains():
    champion = [0.60, 0.70, 0.55, 0.65, 0.62, 0.58, 0.66, 0.71, 0.59, 0.64]
    steady = [s + 0.03 for s in champion]
    noisy = [s + g for s, g in zip(champion, [0.15, -0.12, 0.10, -0.09, 0.11, -0.10, 0.12, -0.08, 0.09, -0.07])]
    common = {"resamples": 4000, "confidence": 0.95, "seed": 0}
    gain = paired_gain(challenger=steady, champion=champion, **common)
    assert gain["promote"] and gain["gain"] == pytest.approx(0.03) and gain["low"] > 0
    noise = paired_gain(challenger=noisy, champion=champion, **common)
    assert noise["gain"] > 0 and not noise["promote"] and noise["low"] < 0 < noise["high"]
    assert not paired_gain(challenger=champion, champion=champion, **common)["promote"]  # a tie keeps the champion
    with pytest.raises(ValueError, match="equal"):
        paired_gain(challenger=steady[:5], champion=champion, **common)


def test_fold_fingerprint_changes_with_folds_and_audio():
    plan = pd.DataFrame({"repeat": [0, 0, 0], "fold": [0, 0, 1], "track": ["t1", "t2", "t3"]})
    hashes = {"t1": "h1", "t2": "h2", "t3": "h3"}
    base = fold_fingerprint(plan=plan, hashes=hashes)
    assert fold_fingerprint(plan=plan.iloc[::-1], hashes=hashes) == base  # row order is not identity
    assert fold_fingerprint(plan=plan.assign(fold=[0, 1, 1]), hashes=hashes) != base
    assert fold_fingerprint(plan=plan, hashes={**hashes, "t3": "changed"}) != base


def simulated_oof(*, tracks: int, repeats: int, folds: int, seed: int) -> pd.DataFrame:
    """Over-confident OOF rows: labels drawn from softmax(z), rows reporting softmax(3 z), so the
    temperature that fixes them is ~3."""
    rng = np.random.default_rng(seed)
    parts = []
    for repeat in range(repeats):
        logits = rng.normal(0, 1.2, (tracks, len(CLASSES)))
        truth = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        labels = np.array([rng.choice(len(CLASSES), p=row) for row in truth])
        proba = np.exp(3 * logits) / np.exp(3 * logits).sum(axis=1, keepdims=True)
        frame = pd.DataFrame(proba, columns=[f"proba_{c}" for c in CLASSES])
        frame.insert(0, "genre", np.asarray(CLASSES)[labels])
        frame.insert(0, "track", [f"t{i}" for i in range(tracks)])
        frame.insert(0, "fold", np.arange(tracks) % folds)
        frame.insert(0, "repeat", repeat)
        parts.append(frame)
    return pd.concat(parts, ignore_index=True).assign(model="m")


def test_cross_fitted_calibration_fixes_over_confidence_and_sets_cover():
    oof = simulated_oof(tracks=400, repeats=2, folds=5, seed=1)
    summary = calibration_summary(
        oof=oof, classes=CLASSES, bins=10, edge_positions=5, coverage=0.9, floor_draws=10, seed=0
    )
    assert summary["temperature"] == pytest.approx(3.0, rel=0.25)  # over-confident rows are softened
    assert summary["ece_raw"] > 0.15 and summary["ece"] < 0.05
    assert 0.0 < summary["ece_floor"] < 0.05  # 800 rows: sampling noise alone gives a little ECE
    low, high = summary["ece_edge_range"]
    assert low <= summary["ece"] <= high and high < 0.05  # the usual edges are one of the positions
    assert 0.87 <= summary["coverage"] <= 0.95  # held-out folds, threshold from the other folds
    assert 1.0 <= summary["set_size"] < len(CLASSES)
    assert summary["accuracy_shift"] < 0.03  # calibrated rows, no artist effect: folds stray by binomial noise only
    scores = fold_scores(oof=oof, classes=CLASSES)
    assert len(scores) == 10 and scores["accuracy"].between(0.4, 0.9).all()
