"""The calibrated drift verdict: a per-feature two-sample K-S test (scipy, the test Evidently's `ks`
method runs), the share of drifted features, and a share threshold that depends on the batch size.

The thresholds and their measured false-alarm rates come from `make drift-study` (monitoring/study.py)
and live in params.yaml (monitoring.drift_rule); a batch size between two calibrated sizes takes the
stricter (higher) of their thresholds, so the measured false-alarm bound holds on both sides.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import ks_2samp


@dataclass(frozen=True)
class Rule:
    """The verdict's threshold at one batch size and what the study measured there."""

    batch_size: int
    share_threshold: float
    false_alarm: float  # measured on GTZAN-only batches of the calibrated size(s) used
    calibrated_sizes: tuple[int, ...]  # the study's batch sizes the threshold was taken from


def ks_pvalues(*, reference: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Per column, the two-sample K-S p-value (scipy's default exact/asymptotic choice, as Evidently)."""
    with warnings.catch_warnings():  # ties in small samples: scipy warns, the p-values stay valid
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.asarray(ks_2samp(reference, current, axis=0).pvalue, dtype=np.float64)


def drifted_share(*, reference: np.ndarray, current: np.ndarray, alpha: float) -> float:
    """Share of the columns whose K-S p-value is below alpha (Evidently's share of drifted columns)."""
    return float((ks_pvalues(reference=reference, current=current) < alpha).mean())


def rule_for(*, batch_size: int, params: dict[str, Any]) -> Rule:
    """The threshold for a batch of `batch_size` files: the calibrated size itself, else the stricter of
    the two calibrated sizes around it (beyond the largest size, the largest size's threshold)."""
    settings = params["monitoring"]["drift_rule"]
    sizes = [int(n) for n in settings["batch_sizes"]]
    above = [i for i, n in enumerate(sizes) if n >= batch_size]
    below = [i for i, n in enumerate(sizes) if n <= batch_size]
    chosen = sorted({*(above[:1]), *(below[-1:])})
    best = max(chosen, key=lambda i: settings["share_thresholds"][i])
    return Rule(
        batch_size=batch_size,
        share_threshold=float(settings["share_thresholds"][best]),
        false_alarm=float(max(settings["false_alarm"][i] for i in chosen)),
        calibrated_sizes=tuple(sizes[i] for i in chosen),
    )
