"""Every pipeline run in MLflow: one parent run, a child run per model and protocol (params, grouped CV,
test metrics, calibration, confusion and reliability PNGs), in the registry's tracking store and
experiment. Nothing here registers a model: only `registry.register` does, for the chosen one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow

from .config import resolve
from .registry import data_md5, experiment_id, flatten, git_commit

SPLIT_METRICS = ("valid", "test")


def run_metrics(scores: dict[str, Any]) -> dict[str, float]:
    """The numbers of one model/protocol entry of metrics.json, flattened (valid_accuracy, cv_macro_f1_mean...)."""
    flat = {f"{split}_{name}": value for split in SPLIT_METRICS for name, value in scores.get(split, {}).items()}
    flat.update({name: value for name, value in scores.items() if name not in SPLIT_METRICS})
    return {name: float(value) for name, value in flat.items() if isinstance(value, (int, float))}


def log_model_run(
    *, model: str, protocol: str, scores: dict[str, Any], params: dict[str, Any], figures: Path, experiment: str
) -> None:
    """One child run: the model's params.models section, its metrics and its figures."""
    # a nested run lands in the default experiment (and ./mlruns) unless given the parent's experiment
    with mlflow.start_run(experiment_id=experiment, run_name=f"{model}-{protocol}", nested=True):
        mlflow.log_params({**flatten("model", params["models"].get(model, {})), "protocol": protocol})
        mlflow.log_metrics(run_metrics(scores))
        mlflow.set_tags({"model": model, "protocol": protocol})
        for png in (figures / f"{model}_{protocol}.png", figures / f"reliability_{model}.png"):
            if png.is_file() and (protocol == "grouped" or not png.name.startswith("reliability_")):
                mlflow.log_artifact(str(png), artifact_path="figures")


def log_pipeline_runs(*, params: dict[str, Any], metrics: dict[str, Any], selection: dict[str, Any], uri: str) -> str:
    """The parent run of this pipeline run (selection, nested estimate, lineage) and a child per model
    and protocol; returns the parent's run id."""
    settings, evaluate = params["register"], params["evaluate"]
    mlflow.set_tracking_uri(uri)
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    exp = experiment_id(client=client, name=settings["experiment"], artifact_root=resolve(settings["artifact_dir"]))
    figures = resolve(evaluate["report_dir"]) / "figures"
    with mlflow.start_run(experiment_id=exp, run_name="pipeline") as parent:
        mlflow.set_tags({"git_commit": git_commit(), "data_md5": data_md5(), "selected": selection["champion"]})
        mlflow.log_params(
            {
                "seed": params["seed"],
                "cv_folds": evaluate["cv_folds"],
                "cv_repeats": evaluate["cv_repeats"],
                "selection_metric": settings["metric"],
            }
        )
        nested = selection.get("nested") or {}
        mlflow.log_metrics({f"nested_{k}": float(v) for k, v in nested.items() if isinstance(v, (int, float))})
        for model, by_protocol in sorted(metrics.items()):
            for protocol, scores in sorted(by_protocol.items()):
                log_model_run(
                    model=model, protocol=protocol, scores=scores, params=params, figures=figures, experiment=exp
                )
        return parent.info.run_id
