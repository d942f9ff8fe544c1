"""Calibration and genre-set coverage of one model, measured on its out-of-fold probabilities.

What is served: a temperature fitted on ALL of the model's OOF rows and a split-conformal (LAC)
threshold fitted on those rows once calibrated (hand-written split-conformal, musicgenre.calibration;
MAPIE is not in the environment), and the accuracy shift: how far a held-out fold's accuracy strays
from its cross-fitted confidence beyond binomial noise (the label-free estimate's tau). What is
reported is cross-fitted, so it is not judged on the rows it was fitted on: for each held-out fold,
the temperature and the threshold are fitted on the other folds of the same repeat, then the fold's
ECE rows, coverage and set sizes are measured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .calibration import (
    accuracy_shift,
    apply_temperature,
    conformal_threshold,
    ece_edge_range,
    expected_calibration_error,
    fit_temperature,
    genre_sets,
    reliability,
)
from .io import atomic_path
from .models.predictor import proba_columns


def cross_fitted(*, oof: pd.DataFrame, classes: list[str], coverage: float) -> dict[str, np.ndarray]:
    """Per OOF row: probabilities calibrated by a temperature fitted on the other folds of its repeat,
    whether the genre set (threshold from those folds) holds the truth, and the set's size."""
    proba, labels = oof[proba_columns(classes)].to_numpy(float), oof["genre"].map(classes.index).to_numpy()
    calibrated, covered, sizes = np.empty_like(proba), np.zeros(len(oof), bool), np.zeros(len(oof), int)
    repeat, fold = oof["repeat"].to_numpy(), oof["fold"].to_numpy()
    for r, k in sorted(set(zip(repeat.tolist(), fold.tolist()))):
        held = (repeat == r) & (fold == k)
        other = (repeat == r) & (fold != k)
        temperature = fit_temperature(proba[other], labels[other])
        threshold = conformal_threshold(apply_temperature(proba[other], temperature), labels[other], coverage=coverage)
        calibrated[held] = apply_temperature(proba[held], temperature)
        sets = genre_sets(calibrated[held], threshold=threshold)
        covered[held] = [label in chosen for label, chosen in zip(labels[held], sets)]
        sizes[held] = [len(chosen) for chosen in sets]
    return {"proba": proba, "labels": labels, "calibrated": calibrated, "covered": covered, "sizes": sizes}


def ece_floor(*, proba: np.ndarray, bins: int, draws: int, seed: int) -> float:
    """The ECE perfectly calibrated probabilities would show on this many rows (labels drawn from the rows
    themselves): with ~400 rows in 15 bins, sampling noise alone gives a few points, so an ECE is read
    against it."""
    rng, cumulative = np.random.default_rng(seed), np.cumsum(proba, axis=1)
    values = []
    for _ in range(draws):  # inverse-CDF draw of one label per row
        labels = np.minimum((rng.random((len(proba), 1)) > cumulative).sum(axis=1), proba.shape[1] - 1)
        values.append(expected_calibration_error(proba, labels, bins=bins))
    return float(np.mean(values))


def calibration_summary(
    *,
    oof: pd.DataFrame,
    classes: list[str],
    bins: int,
    edge_positions: int,
    coverage: float,
    floor_draws: int,
    seed: int,
) -> dict[str, Any]:
    """The served temperature and threshold, the between-fold accuracy shift (tau of the label-free accuracy
    estimate's interval), and the cross-fitted ECE (with its noise floor and its range over bin-edge
    positions), coverage and mean set size."""
    rows = cross_fitted(oof=oof, classes=classes, coverage=coverage)
    proba, labels = rows["proba"], rows["labels"]
    temperature = fit_temperature(proba, labels)
    # pooled over repeats (each track once per repeat): the finite-sample correction then counts
    # tracks x repeats rows, slightly less conservative than one repeat's rows would be
    threshold = conformal_threshold(apply_temperature(proba, temperature), labels, coverage=coverage)
    per_fold = pd.Series(rows["covered"]).groupby([oof["repeat"].to_numpy(), oof["fold"].to_numpy()]).mean()
    return {
        "temperature": temperature,
        "threshold": threshold,
        "coverage_target": coverage,
        # each held-out fold is one batch of unseen artists, its rows calibrated by the other folds' temperature
        "accuracy_shift": accuracy_shift(
            proba=rows["calibrated"], labels=labels, batches=oof.groupby(["repeat", "fold"]).ngroup().to_numpy()
        ),
        "ece_raw": expected_calibration_error(proba, labels, bins=bins),
        "ece": expected_calibration_error(rows["calibrated"], labels, bins=bins),
        "ece_edge_range": ece_edge_range(rows["calibrated"], labels, bins=bins, positions=edge_positions),
        "ece_floor": ece_floor(proba=rows["calibrated"], bins=bins, draws=floor_draws, seed=seed),
        "coverage": float(rows["covered"].mean()),
        "coverage_min_fold": float(per_fold.min()),
        "set_size": float(rows["sizes"].mean()),
        "reliability_raw": reliability(proba, labels, bins=bins),
        "reliability": reliability(rows["calibrated"], labels, bins=bins),
    }


def plot_reliability(*, summary: dict[str, Any], title: str, target: Path) -> None:
    """Reliability diagram (accuracy against mean confidence per bin), raw and cross-fitted calibrated."""
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on servers or CI
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 5))
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect")
    for key, label in (("reliability_raw", "raw"), ("reliability", "temperature-scaled")):
        used = [row for row in summary[key] if row["count"]]
        ece = summary["ece_raw" if key == "reliability_raw" else "ece"]
        axes.plot(
            [r["confidence"] for r in used], [r["accuracy"] for r in used], marker="o", label=f"{label} (ECE {ece:.3f})"
        )
    axes.set(xlim=(0, 1), ylim=(0, 1), xlabel="mean confidence (top-1 probability)", ylabel="accuracy", title=title)
    axes.legend(loc="upper left")
    figure.tight_layout()
    with atomic_path(target, suffix=".png") as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)
