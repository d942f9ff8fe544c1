"""The label-free accuracy estimate's interval with a between-batch shift (musicgenre.calibration), on
simulated batches whose shift is known, and the fall-back to the binomial-only interval for a bundle
registered before the shift was measured (monitoring.scoring.Champion.accuracy_shift)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from monitoring.scoring import Champion
from monitoring.summary import AccuracyEstimate
from musicgenre.calibration import accuracy_shift, estimated_accuracy, shift_variance


def shifted_batches(*, batches: int, size: int, tau: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, 2) probabilities, labels and batch ids: every batch's tracks are right with probability
    max(p) + its own shift ~ N(0, tau**2), the calibration shift of a batch of unseen artists."""
    rng = np.random.default_rng(seed)
    confidence = rng.uniform(0.5, 0.95, batches * size)
    batch = np.repeat(np.arange(batches), size)
    truth = np.clip(confidence + rng.normal(0.0, tau, batches)[batch], 0.0, 1.0)
    labels = np.where(rng.random(len(truth)) < truth, 0, 1)  # class 0 is the argmax
    return np.column_stack([confidence, 1.0 - confidence]), labels, batch


def coverage(*, proba: np.ndarray, labels: np.ndarray, batch: np.ndarray, shift: float) -> float:
    """Share of batches whose realized accuracy is inside the 90 % interval."""
    hits = []
    for b in np.unique(batch):
        found = estimated_accuracy(proba[batch == b], level=0.9, shift=shift)
        realized = float((labels[batch == b] == 0).mean())
        hits.append(found["low"] <= realized <= found["high"])
    return float(np.mean(hits))


def test_no_shift_is_the_binomial_interval_and_a_shift_widens_it():
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.7, 0.3], [0.8, 0.2]])
    plain, wide = estimated_accuracy(proba, level=0.9), estimated_accuracy(proba, level=0.9, shift=0.1)
    half = 1.6448536 * np.sqrt(0.09 + 0.24 + 0.21 + 0.16) / 4  # Poisson-binomial SD of the mean
    assert plain["estimate"] == wide["estimate"] == pytest.approx(0.75)
    assert plain["estimate"] - plain["low"] == pytest.approx(half, rel=1e-6)  # high is clipped at 1
    assert wide["estimate"] - wide["low"] == pytest.approx(1.6448536 * np.sqrt((half / 1.6448536) ** 2 + 0.01))
    assert 0.0 <= wide["low"] < plain["low"] and wide["high"] == plain["high"] == 1.0


def test_shift_variance_is_the_excess_over_binomial_noise_and_never_negative():
    assert shift_variance(errors=np.array([0.1, -0.1]), binomial=np.array([0.004, 0.006])) == pytest.approx(0.005)
    assert shift_variance(errors=np.array([0.01, -0.02]), binomial=np.array([0.004, 0.004])) == 0.0
    assert shift_variance(errors=np.array([]), binomial=np.array([])) == 0.0


def test_shift_fitted_on_some_batches_covers_fresh_batches_near_nominal():
    proba, labels, batch = shifted_batches(batches=300, size=40, tau=0.08, seed=0)
    tau = accuracy_shift(proba=proba, labels=labels, batches=batch)
    assert tau == pytest.approx(0.08, abs=0.02)
    fresh = shifted_batches(batches=600, size=40, tau=0.08, seed=1)
    assert 0.86 <= coverage(proba=fresh[0], labels=fresh[1], batch=fresh[2], shift=tau) <= 0.94
    assert coverage(proba=fresh[0], labels=fresh[1], batch=fresh[2], shift=0.0) < 0.8  # binomial only: too narrow


def test_without_a_shift_batches_measure_none():
    proba, labels, batch = shifted_batches(batches=300, size=40, tau=0.0, seed=2)
    assert accuracy_shift(proba=proba, labels=labels, batches=batch) < 0.035  # MoM noise of 300 batches of 40


def test_a_bundle_without_a_shift_keeps_the_binomial_interval():
    def champion(calibration: dict | None) -> Champion:
        model = SimpleNamespace(calibration=calibration) if calibration is not None else SimpleNamespace()
        return Champion(name="gtzan-genre", version="1", model=model, classes=["a", "b"])

    assert champion({"temperature": 0.9, "threshold": 0.9}).accuracy_shift == 0.0
    assert champion(None).accuracy_shift == 0.0  # a runtime object without a calibration attribute
    assert champion({"temperature": 0.9, "accuracy_shift": 0.07}).accuracy_shift == 0.07
    older = {"estimate": 0.55, "low": 0.4, "high": 0.7, "level": 0.9}  # summary.json written before the shift
    assert AccuracyEstimate(**older).shift == 0.0
