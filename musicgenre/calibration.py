"""Probabilities that mean what they say: temperature scaling, expected calibration error, split-conformal
genre sets and confidence-based accuracy estimation, all on (n, classes) probability rows.

Everything here is fitted on out-of-fold probabilities (musicgenre.oof), never on the rows it is
judged on. Labels are class indices.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-12


def apply_temperature(proba: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T): T > 1 softens over-confident rows, T < 1 sharpens; argmax never changes."""
    logits = np.log(np.clip(np.asarray(proba, np.float64), EPS, None)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=1, keepdims=True)


def fit_temperature(proba: np.ndarray, labels: np.ndarray, *, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """The temperature minimising the negative log-likelihood of the true classes (Guo et al. 2017)."""
    from scipy.optimize import minimize_scalar  # fitting only: serving applies a stored temperature

    labels = np.asarray(labels, int)

    def nll(log_t: float) -> float:
        scaled = apply_temperature(proba, float(np.exp(log_t)))
        return float(-np.log(np.clip(scaled[np.arange(len(labels)), labels], EPS, None)).mean())

    found = minimize_scalar(nll, bounds=tuple(np.log(bounds)), method="bounded")
    return float(np.exp(found.x))


def reliability(proba: np.ndarray, labels: np.ndarray, *, bins: int, shift: float = 0.0) -> list[dict[str, float]]:
    """Per equal-width confidence bin: its rows, mean confidence and accuracy (the reliability diagram).
    `shift` moves the inner bin edges down by that fraction of a bin width (0 = the usual edges)."""
    if not 0.0 <= shift < 1.0:
        raise ValueError(f"shift is a fraction of a bin width in [0, 1), got {shift}")
    confidence, correct = proba.max(axis=1), proba.argmax(axis=1) == np.asarray(labels)
    edges = np.linspace(0.0, 1.0, bins + 1)
    edges[1:-1] -= shift / bins
    index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    return [
        {
            "low": float(edges[b]),
            "high": float(edges[b + 1]),
            "count": int((index == b).sum()),
            "confidence": float(confidence[index == b].mean()) if (index == b).any() else float("nan"),
            "accuracy": float(correct[index == b].mean()) if (index == b).any() else float("nan"),
        }
        for b in range(bins)
    ]


def expected_calibration_error(proba: np.ndarray, labels: np.ndarray, *, bins: int, shift: float = 0.0) -> float:
    """Sum over confidence bins of (share of rows) x |accuracy - mean confidence|."""
    table = reliability(proba, labels, bins=bins, shift=shift)
    total = sum(row["count"] for row in table)
    return float(sum(row["count"] / total * abs(row["accuracy"] - row["confidence"]) for row in table if row["count"]))


def ece_edge_range(proba: np.ndarray, labels: np.ndarray, *, bins: int, positions: int) -> tuple[float, float]:
    """Lowest and highest ECE as the bin edges move through one bin width in `positions` steps: on a few
    hundred rows the same probabilities score differently with where the edges fall, so this range is
    the resolution of one ECE figure (a gap to a target smaller than it is not measured)."""
    values = [expected_calibration_error(proba, labels, bins=bins, shift=k / positions) for k in range(positions)]
    return float(min(values)), float(max(values))


def conformal_threshold(proba: np.ndarray, labels: np.ndarray, *, coverage: float) -> float:
    """Split-conformal (LAC) score threshold: a set {genres with p >= 1 - q} holds the true genre with
    probability >= coverage on exchangeable new tracks (q the finite-sample corrected quantile)."""
    scores = 1.0 - np.asarray(proba)[np.arange(len(labels)), np.asarray(labels, int)]
    level = min(1.0, np.ceil((len(scores) + 1) * coverage) / len(scores))
    return float(np.quantile(scores, level, method="higher"))


def genre_sets(proba: np.ndarray, *, threshold: float) -> list[list[int]]:
    """Per row, the classes whose probability is at least 1 - threshold (most probable first; never empty)."""
    sets = []
    for row in np.asarray(proba):
        order = np.argsort(-row, kind="stable")
        chosen = [int(i) for i in order if row[i] >= 1.0 - threshold]
        sets.append(chosen or [int(order[0])])
    return sets


def estimated_accuracy(proba: np.ndarray, *, level: float = 0.9, shift: float = 0.0) -> dict[str, float]:
    """Confidence-based performance estimation (CBPE) of accuracy without labels: with calibrated
    probabilities each row is right with probability max(p), so accuracy ~ mean of those. The interval's
    variance is the Poisson-binomial count's (normal approximation) plus shift**2, the between-batch
    calibration shift (accuracy_shift): a batch's tracks share artists and recording sources, so its
    accuracy departs from its confidence by more than coin-flip noise. shift=0 is the binomial-only interval."""
    confidence = np.asarray(proba).max(axis=1)
    mean = float(confidence.mean())
    binomial = float((confidence * (1.0 - confidence)).sum()) / len(confidence) ** 2
    spread = float(np.sqrt(binomial + shift**2))
    z = float(np.sqrt(2.0) * _erfinv(level))
    return {"estimate": mean, "low": max(0.0, mean - z * spread), "high": min(1.0, mean + z * spread), "shift": shift}


def batch_errors(*, proba: np.ndarray, labels: np.ndarray, batches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per batch id (e.g. a held-out fold): CBPE estimate - realized accuracy, and the Poisson-binomial
    variance of that accuracy (the part of the error coin-flip noise explains)."""
    confidence = np.asarray(proba).max(axis=1)
    correct = np.asarray(proba).argmax(axis=1) == np.asarray(labels)
    errors, binomial = [], []
    for batch in np.unique(batches):
        rows = np.asarray(batches) == batch
        errors.append(float(confidence[rows].mean() - correct[rows].mean()))
        binomial.append(float((confidence[rows] * (1.0 - confidence[rows])).sum()) / int(rows.sum()) ** 2)
    return np.asarray(errors), np.asarray(binomial)


def shift_variance(*, errors: np.ndarray, binomial: np.ndarray) -> float:
    """tau**2 of the between-batch shift, method of moments over held-out batches: E[error**2] = binomial
    variance + tau**2. The error is taken about zero, not about its mean, so a bias the estimate keeps is
    absorbed into the interval; never negative (all of the spread may be coin-flip noise)."""
    if len(errors) == 0:
        return 0.0
    return max(0.0, float(np.mean(np.square(errors)) - np.mean(binomial)))


def accuracy_shift(*, proba: np.ndarray, labels: np.ndarray, batches: np.ndarray) -> float:
    """tau, the SD of the between-batch shift of realized accuracy around the CBPE estimate, measured on
    held-out batches (calibrated out-of-fold rows, `batches` their fold ids): estimated_accuracy's shift.
    Taken not to shrink with batch size: a production batch's artists are unknown, and one album's worth
    of tracks shifts as much as a fold's."""
    errors, binomial = batch_errors(proba=proba, labels=labels, batches=batches)
    return float(np.sqrt(shift_variance(errors=errors, binomial=binomial)))


def _erfinv(value: float) -> float:
    from scipy.special import erfinv

    return float(erfinv(value))
