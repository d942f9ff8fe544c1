"""Stage register: log the best grouped-protocol model (by VALID metric) to MLflow; promote if it wins."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
from mlflow.tracking import MlflowClient

from musicgenre.config import resolve
from musicgenre.io import write_json
from musicgenre.models.predictor import PREDICTIONS_FILE
from musicgenre.registry import choose_champion, register, resolve_tracking_uri
from stages._cli import StageError, run_stage


def valid_audio(*, params: dict[str, Any], model_dir) -> tuple[pd.DataFrame, dict[str, str]]:
    """The valid tracks with their audio paths (for re-scoring) and every track's content hash."""
    manifest = pd.read_csv(resolve(params["paths"]["manifest"]))
    manifest["path"] = [str(resolve(path)) for path in manifest["path"]]
    predictions = pd.read_parquet(model_dir / PREDICTIONS_FILE)
    valid = predictions.loc[predictions["split"] == "valid", ["track", "genre"]]
    valid = valid.merge(manifest[["track", "path"]], on="track", how="left")
    return valid, dict(zip(manifest["track"], manifest["sha256"]))


def register_stage(params: dict[str, Any]) -> dict[str, Any]:
    """Pick the champion candidate on the valid split, register it, record the promotion decision."""
    settings = params["register"]
    metrics_path = resolve(params["evaluate"]["report_dir"]) / "metrics.json"
    if not metrics_path.is_file():
        raise StageError(f"{metrics_path} missing: run the evaluate stage first")
    metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    try:
        model = choose_champion(metrics=metrics, protocol=settings["protocol"], metric=settings["metric"])
    except ValueError as exc:
        raise StageError(str(exc)) from None
    model_dir = resolve(params["paths"]["models"]) / model / settings["protocol"]
    scores = metrics[model][settings["protocol"]]
    valid, hashes = valid_audio(params=params, model_dir=model_dir)
    record = register(model_dir=model_dir, scores=scores, params=params, valid=valid, hashes=hashes)
    client = MlflowClient(tracking_uri=resolve_tracking_uri(params=params))
    champion = client.get_model_version_by_alias(settings["model_name"], settings["alias"])
    summary = {
        "candidate": {
            "model": model,
            "version": record["challenger_version"],
            "valid": scores["valid"],
            "test": scores.get("test", {}),
        },
        "decision": record["decision"],
        "basis": record.get("basis", "no previous champion"),
        "champion": {
            "version": str(champion.version),
            "model": champion.tags.get("model"),
            f"valid_{settings['metric']}": float(champion.tags[f"valid_{settings['metric']}"]),
        },
        "registered_model": settings["model_name"],
        "alias": settings["alias"],
    }
    write_json(resolve(settings["report_dir"]) / "champion.json", summary)
    return summary


if __name__ == "__main__":
    run_stage(register_stage)
