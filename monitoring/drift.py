"""Drift of a scored batch against the reference (GTZAN training tracks): Evidently 0.7 report,
which features moved and how, the predicted-genre distribution, the confidence, and a verdict.

Per feature a two-sample test (monitoring.stattest, p < stattest_threshold = drifted); the batch
drifts when the share of drifted features reaches the threshold calibrated for its size
(monitoring.drift_rule, monitoring/rule.py). The genre distribution and confidence signals are
reported, and decide the verdict only when listed in monitoring.verdict_on. The summary also carries
the champion's label-free accuracy estimate and the batch's most novel files.
"""

from __future__ import annotations

import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.metrics import MeanValue, UniqueValueCount, ValueDrift
from evidently.presets import DataDriftPreset

from monitoring.rule import rule_for
from monitoring.summary import (
    AccuracyEstimate,
    ConfidenceSignal,
    DriftSummary,
    FeatureSignal,
    GenreShare,
    GenreSignal,
    ModelRef,
    Signals,
)
from musicgenre.calibration import estimated_accuracy
from musicgenre.config import resolve
from musicgenre.features import FeatureConfig, feature_names
from musicgenre.io import write_json, write_text
from musicgenre.models.predictor import proba_columns

GENRE, CONFIDENCE = "predicted_genre", "confidence"
# Per-batch scalars the dashboard draws over time: Evidently panels read only snapshot metrics, so each
# travels as a constant column whose MeanValue is the scalar.
SCALARS = ["estimate_low", "estimate_high", "share_threshold", "false_alarm", "novel_share"]


def build_report(*, params: dict[str, Any], names: list[str]) -> Report:
    """Feature drift (preset), predicted-genre and confidence drift, mean confidence (= the CBPE accuracy
    estimate), the per-batch scalars, genre counts."""
    s = params["monitoring"]
    return Report(
        [
            DataDriftPreset(
                columns=names,
                method=s["stattest"],
                threshold=s["stattest_threshold"],
                # constant, not the batch-size threshold: the metric's config keys its dashboard series, so a
                # per-batch value split "drifted features" into one series per batch size. The verdict is ours.
                drift_share=s["report_drift_share"],
            ),
            *(ValueDrift(column=name, method=s["distance"], threshold=s["distance_threshold"]) for name in names),
            ValueDrift(column=GENRE, method=s["genre_stattest"], threshold=s["genre_stattest_threshold"]),
            ValueDrift(column=CONFIDENCE, method=s["stattest"], threshold=s["stattest_threshold"]),
            MeanValue(column=CONFIDENCE),
            *(MeanValue(column=name) for name in SCALARS),
            UniqueValueCount(column=GENRE),
        ]
    )


def run_report(
    *,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    params: dict[str, Any],
    batch_id: str,
    scalars: dict[str, float],
    timestamp: datetime | None = None,
) -> Any:
    """The Evidently snapshot of `current` (features + predicted_genre + confidence) vs `reference`,
    with the batch's `scalars` (SCALARS) as constant columns on both sides."""
    names = feature_names(FeatureConfig.from_params(params))
    definition = DataDefinition(numerical_columns=[*names, CONFIDENCE, *SCALARS], categorical_columns=[GENRE])
    columns = [*names, GENRE, CONFIDENCE]
    frames = [frame[columns].reset_index(drop=True).assign(**scalars) for frame in (current, reference)]
    with warnings.catch_warnings():  # scipy warns on ties in small samples; the p-values stay valid
        warnings.simplefilter("ignore", RuntimeWarning)
        return build_report(params=params, names=names).run(
            current_data=Dataset.from_pandas(frames[0], data_definition=definition),
            reference_data=Dataset.from_pandas(frames[1], data_definition=definition),
            timestamp=timestamp or datetime.now(timezone.utc).replace(tzinfo=None),
            name=batch_id,
            metadata={"batch_id": batch_id},
            tags=["batch"],
        )


def metric_values(snapshot: Any, *, distance: str) -> dict[str, Any]:
    """{'drift': {count, share}, 'pvalues': {column: p}, 'distances': {column: d}, 'mean_confidence': x}."""
    out: dict[str, Any] = {"pvalues": {}, "distances": {}}
    for metric in snapshot.dict()["metrics"]:
        kind, config = metric["config"]["type"].rsplit(":", 1)[-1], metric["config"]
        if kind == "DriftedColumnsCount":
            out["drift"] = metric["value"]
        elif kind == "ValueDrift":
            out["distances" if config["method"] == distance else "pvalues"][config["column"]] = float(metric["value"])
        elif kind == "MeanValue" and config["column"] == CONFIDENCE:
            out["mean_confidence"] = float(metric["value"])
    return out


def feature_movements(
    *,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    names: list[str],
    pvalues: dict[str, float],
    distances: dict[str, float],
    threshold: float,
) -> pd.DataFrame:
    """Per feature: p-value, distance, drifted, means, relative change of the mean and shift in reference SDs;
    most drifted first (the drifted ones by distance, largest move first)."""
    ref_mean, cur_mean = reference[names].mean(), current[names].mean()
    ref_sd = reference[names].std().replace(0.0, np.nan)
    frame = pd.DataFrame(
        {
            "feature": names,
            "p_value": [pvalues[n] for n in names],
            "distance": [distances[n] for n in names],
            "reference_mean": ref_mean.to_numpy(),
            "current_mean": cur_mean.to_numpy(),
            "change_pct": (100 * (cur_mean - ref_mean) / ref_mean.abs().replace(0.0, np.nan)).to_numpy(),
            "shift_sd": ((cur_mean - ref_mean) / ref_sd).to_numpy(),
        }
    )
    frame["drifted"] = frame["p_value"] < threshold
    frame["direction"] = np.where(frame["shift_sd"] >= 0, "up", "down")
    return frame.sort_values(["drifted", "distance", "p_value"], ascending=[False, False, True])


def describe(row: pd.Series) -> str:
    """`tempo mean up 12.3 % (+0.85 SD of GTZAN train), p=0.001`."""
    change = "" if pd.isna(row["change_pct"]) else f" {abs(row['change_pct']):.1f} %"
    return (
        f"{row['feature']} {row['direction']}{change} ({row['shift_sd']:+.2f} SD of the reference), "
        f"distance {row['distance']:.2f}, p={row['p_value']:.2g}"
    )


def genre_distribution(*, reference: pd.DataFrame, current: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """Share of files per predicted genre, reference vs batch, every genre listed."""
    share = {
        name: frame[GENRE].value_counts(normalize=True).reindex(classes, fill_value=0.0)
        for name, frame in (("reference", reference), ("current", current))
    }
    return pd.DataFrame(
        {
            "genre": classes,
            "reference_share": share["reference"].to_numpy(),
            "current_share": share["current"].to_numpy(),
        }
    )


def signals(
    *, values: dict[str, Any], reference: pd.DataFrame, current: pd.DataFrame, params: dict[str, Any]
) -> Signals:
    """Each drift signal with its measured value, threshold and whether it fired."""
    s, rule = params["monitoring"], rule_for(batch_size=len(current), params=params)
    ref_conf, cur_conf = float(reference[CONFIDENCE].mean()), float(current[CONFIDENCE].mean())
    share, genre_p = float(values["drift"]["share"]), float(values["pvalues"][GENRE])
    return Signals(
        features=FeatureSignal(
            share=share,
            count=int(values["drift"]["count"]),
            threshold=rule.share_threshold,
            fired=share >= rule.share_threshold - 1e-12,  # shares are k/88: compare with a float margin
            false_alarm=rule.false_alarm,
        ),
        genre_distribution=GenreSignal(
            p_value=genre_p, threshold=s["genre_stattest_threshold"], fired=genre_p < s["genre_stattest_threshold"]
        ),
        confidence=ConfidenceSignal(
            reference_mean=ref_conf,
            current_mean=cur_conf,
            drop=ref_conf - cur_conf,
            change_pct=100 * (cur_conf - ref_conf) / ref_conf,
            threshold=s["confidence_drop_threshold"],
            fired=ref_conf - cur_conf >= s["confidence_drop_threshold"],
        ),
    )


def analyse(
    *,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    params: dict[str, Any],
    batch_id: str,
    model: ModelRef,
    shift: float = 0.0,
) -> tuple[DriftSummary, Any]:
    """The batch's drift summary (verdict, signals, top features, genres) and the Evidently snapshot;
    `shift`: the champion's between-batch accuracy shift (Champion.accuracy_shift) for the estimate's interval."""
    s, names = params["monitoring"], feature_names(FeatureConfig.from_params(params))
    proba = current[proba_columns(params["genres"])].to_numpy()
    estimate = AccuracyEstimate(
        **estimated_accuracy(proba, level=s["estimate_level"], shift=shift), level=s["estimate_level"]
    )
    novel = current.sort_values("novelty", ascending=False)
    n_novel = int((current["novelty_percentile"] > s["novelty"]["novel_percentile"]).sum())
    rule = rule_for(batch_size=len(current), params=params)
    scalars = {
        "estimate_low": estimate.low,
        "estimate_high": estimate.high,
        "share_threshold": rule.share_threshold,
        "false_alarm": rule.false_alarm,
        "novel_share": n_novel / len(current),
    }
    snapshot = run_report(reference=reference, current=current, params=params, batch_id=batch_id, scalars=scalars)
    values = metric_values(snapshot, distance=s["distance"])
    moved = feature_movements(
        reference=reference,
        current=current,
        names=names,
        pvalues=values["pvalues"],
        distances=values["distances"],
        threshold=s["stattest_threshold"],
    )
    fired = signals(values=values, reference=reference, current=current, params=params)
    drift = any(fired.fired(name) for name in s["verdict_on"])
    top = moved.head(s["top_features"])
    shares = genre_distribution(reference=reference, current=current, classes=list(params["genres"]))
    summary = DriftSummary(
        batch_id=batch_id,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        verdict="drift" if drift else "no-drift",
        drift=drift,
        decided_by=list(s["verdict_on"]),
        n_current=len(current),
        n_reference=len(reference),
        model=model,
        test={"method": s["stattest"], "threshold": s["stattest_threshold"]},
        signals=fired,
        top_features=top.to_dict(orient="records"),
        top_features_text=[describe(r) for _, r in top.iterrows()],
        genre_distribution=[GenreShare(**row) for row in shares.to_dict(orient="records")],
        estimated_accuracy=estimate,
        novel_files=novel[["file", "novelty", "novelty_percentile"]]
        .head(s["novelty"]["top_files"])
        .to_dict(orient="records"),
        n_novel=n_novel,
    )
    return summary, snapshot


def save(*, summary: DriftSummary, snapshot: Any, params: dict[str, Any]) -> Path:
    """reports/drift/<batch_id>/: drift.html (Evidently), drift.json (Evidently), summary.json; atomic."""
    folder = resolve(params["monitoring"]["reports"]) / summary.batch_id
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / "drift.html", snapshot.get_html_str(as_iframe=False))
    write_text(folder / "drift.json", snapshot.json())
    write_json(folder / "summary.json", summary.to_dict())
    return folder
