"""Stage register: log the best grouped-CV model to MLflow, calibrated; promote it if it passes the paired gate."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
from mlflow.tracking import MlflowClient

from musicgenre.config import resolve
from musicgenre.io import write_json
from musicgenre.registry import choose_champion, register, resolve_tracking_uri
from musicgenre.selection import fold_fingerprint
from musicgenre.tracking import log_pipeline_runs
from stages._cli import StageError, run_stage


def read_report(params: dict[str, Any], *, key: str) -> Any:
    """One of the evaluate stage's reports (metrics.json, selection.json), or a StageError naming it."""
    path = resolve(params["evaluate"]["report_dir"]) / key
    if not path.is_file():
        raise StageError(f"{path} missing: run the evaluate stage first")
    return json.loads(path.read_text(encoding="utf-8"))


def fold_identity(params: dict[str, Any]) -> str:
    """The fingerprint of the OOF fold plan: (repeat, fold, track) and every track's audio hash."""
    oof = pd.read_parquet(resolve(params["evaluate"]["report_dir"]) / params["evaluate"]["oof_file"])
    manifest = pd.read_csv(resolve(params["paths"]["manifest"]), usecols=["track", "sha256"])
    return fold_fingerprint(plan=oof, hashes=dict(zip(manifest["track"], manifest["sha256"])))


def register_stage(params: dict[str, Any]) -> dict[str, Any]:
    """Pick the champion candidate on grouped CV, register it with its calibration, record the decision."""
    settings, metric = params["register"], params["register"]["metric"]
    metrics = read_report(params, key="metrics.json")
    selection = read_report(params, key=params["evaluate"]["selection_file"])
    try:
        model = choose_champion(metrics=metrics, protocol=settings["protocol"], metric=metric)
    except ValueError as exc:
        raise StageError(str(exc)) from None
    model_dir = resolve(params["paths"]["models"]) / model / settings["protocol"]
    rivals = {name: folds[metric] for name, folds in selection["scores"].items()}
    scores = {
        **metrics[model][settings["protocol"]],
        "cv_fold_scores": {"fingerprint": fold_identity(params), "scores": rivals[model]},
    }
    # accuracy_shift (tau of the label-free accuracy estimate) is absent from a selection.json written before it
    kept = ("temperature", "threshold", "coverage_target", "accuracy_shift")
    calibration = {k: v for k, v in selection["calibration"][model].items() if k in kept}
    # every model of this run as MLflow runs under one parent (not registered), then the chosen one registered
    log_pipeline_runs(params=params, metrics=metrics, selection=selection, uri=resolve_tracking_uri(params=params))
    record = register(model_dir=model_dir, scores=scores, params=params, rivals=rivals, calibration=calibration)
    client = MlflowClient(tracking_uri=resolve_tracking_uri(params=params))
    champion = client.get_model_version_by_alias(settings["model_name"], settings["alias"])
    summary = {
        "candidate": {
            "model": model,
            "version": record["challenger_version"],
            f"grouped_cv_{metric}": record["challenger_score"],
            "calibration": calibration,
            "test": scores.get("test", {}),
        },
        "decision": record["decision"],
        "basis": record["basis"],
        "rule": record["rule"],
        "gate": record.get("gate"),
        "champion": {"version": str(champion.version), "model": champion.tags.get("model")},
        "registered_model": settings["model_name"],
        "alias": settings["alias"],
    }
    write_json(resolve(settings["report_dir"]) / "champion.json", summary)
    return summary


if __name__ == "__main__":
    run_stage(register_stage)
