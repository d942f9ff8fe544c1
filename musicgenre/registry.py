"""MLflow model registry: each version an immutable bundle, promotion by a recorded rule.

A registered version is a pyfunc whose artifact is a bundle (musicgenre.serving.bundle): the model
folder with its ONNX graphs, the feature settings, and the project's code as it was at registration.
The pyfunc (pyfunc_model.py) opens the bundle with the bundle's own code, so a version gives the same
outputs after the project changes; its logged requirements are the serving runtime's (ONNX Runtime,
not TensorFlow). The version's `bundle_sha256` tag lets every reader check what it loads.

Promotion rule: a new version becomes `champion` only if its valid-split metric beats the current
champion's on the SAME evaluation data (same valid tracks with the same audio hashes). If the
champion was scored on other data, both are re-scored through their pyfuncs on the current valid
tracks before comparing. Ties keep the current champion.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from filelock import FileLock
from mlflow.models import ModelSignature
from mlflow.pyfunc import PyFuncModel
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, Schema, TensorSpec

from .config import load_params, project_root, resolve
from .features import FeatureConfig
from .models.predictor import PREDICTIONS_FILE, ModelMeta, classes_of, proba_columns
from .serving.bundle import build_bundle
from .serving.champion import BUNDLE_ARTIFACT, BUNDLE_TAG, resolve_tracking_uri

__all__ = ["register", "load_champion", "resolve_tracking_uri"]
# what the pyfunc needs to serve, pinned to what it was logged with; never TensorFlow
RUNTIME_PACKAGES = ("mlflow", "numpy", "onnxruntime", "soundfile", "soxr")
FEATURE_PACKAGES = ("librosa", "pyFFTW", "scipy", "threadpoolctl")  # models that read the classic features
SKOPS_PACKAGES = ("scikit-learn", "skops", "xgboost-cpu")  # a head that did not convert to ONNX


def lock_path(*, uri: str, fallback_dir: Path) -> Path:
    """One lock per registry: beside its sqlite file, else in the report folder (single host only)."""
    prefix = "sqlite:///"
    return Path(uri[len(prefix) :] + ".lock") if uri.startswith(prefix) else fallback_dir / "register.lock"


def choose_champion(*, metrics: dict[str, dict[str, Any]], protocol: str, metric: str) -> str:
    """The model with the best VALID metric under `protocol` (lower valid log loss breaks ties)."""
    candidates = [
        (model, runs[protocol]["valid"]) for model, runs in metrics.items() if "valid" in runs.get(protocol, {})
    ]
    if not candidates:
        raise ValueError(f"no model has valid-split metrics under protocol {protocol!r}")
    return max(candidates, key=lambda item: (item[1][metric], -item[1]["log_loss"], item[0]))[0]


def valid_fingerprint(*, tracks: list[str], hashes: dict[str, str]) -> str:
    """Identity of the evaluation data: the valid track ids and their audio content hashes."""
    lines = "\n".join(f"{track}:{hashes.get(track, '?')}" for track in sorted(tracks))
    return hashlib.sha256(lines.encode()).hexdigest()


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=project_root(), capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def data_md5() -> str:
    """The DVC hash of the imported GTZAN data (data.dvc outs)."""
    from .datasource import read_data_dvc

    stage = read_data_dvc()
    return stage["outs"][0]["md5"] if stage else "unknown"


def flatten(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in flatten(f"{prefix}.{key}", item).items()}
    return {prefix: value}


def pip_requirements(*, meta: ModelMeta) -> list[str]:
    """The serving runtime of this model, pinned to the installed versions."""
    packages = [*RUNTIME_PACKAGES]
    if meta.input != "embedding":
        packages += FEATURE_PACKAGES
    if meta.served.get("format") != "onnx":
        packages += SKOPS_PACKAGES
    pins = []
    for package in packages:
        try:
            pins.append(f"{package}=={metadata.version(package)}")
        except metadata.PackageNotFoundError:
            continue
    return pins


def signature(*, classes: list[str]) -> ModelSignature:
    """Input: a `path` column of audio files; output: the probabilities, top-1 genre and per-file error."""
    outputs: list[ColSpec | TensorSpec] = [
        ColSpec("string", "path"),
        *(ColSpec("double", c) for c in proba_columns(classes)),
        ColSpec("string", "genre", required=False),
        ColSpec("string", "error"),
    ]
    inputs: list[ColSpec | TensorSpec] = [ColSpec("string", "path")]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))


def experiment_id(*, client: MlflowClient, name: str, artifact_root: Path) -> str:
    """The experiment, created with its artifacts inside the project (not ./mlruns of the cwd)."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    artifact_root.mkdir(parents=True, exist_ok=True)
    try:
        return client.create_experiment(name, artifact_location=artifact_root.resolve().as_uri())
    except mlflow.exceptions.MlflowException:  # created meanwhile by a racing registration
        raced = client.get_experiment_by_name(name)
        if raced is None:
            raise
        return raced.experiment_id


def log_version(*, model_dir: Path, scores: dict[str, Any], params: dict[str, Any], uri: str, fingerprint: str) -> str:
    """Log one run (params, metrics, lineage, the pyfunc over its bundle) and register it; returns the version."""
    settings, meta = params["register"], ModelMeta.read(model_dir)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    exp = experiment_id(client=client, name=settings["experiment"], artifact_root=resolve(settings["artifact_dir"]))
    features = FeatureConfig.from_params(params).as_dict()
    with (
        tempfile.TemporaryDirectory(prefix="bundle-") as scratch,
        mlflow.start_run(experiment_id=exp, run_name=f"{meta.model}-{meta.protocol}"),
    ):
        bundle = Path(scratch) / BUNDLE_ARTIFACT
        bundle_sha = build_bundle(
            model_dir=model_dir, target=bundle, settings={"features": features, "limits": params["limits"]}
        )
        mlflow.log_params(
            {
                **flatten("model", meta.params),
                **flatten("features", features),
                **flatten("embeddings", meta.embeddings or {}),  # transfer models only
                "model.name": meta.model,
                "model.input": meta.input,
                "model.served_by": meta.served["format"],
                "protocol": meta.protocol,
                "n_train_tracks": meta.n_train_tracks,
            }
        )
        mlflow.log_metrics(
            {f"{split}_{name}": value for split in ("valid", "test") for name, value in scores.get(split, {}).items()}
        )
        mlflow.log_metrics({name: value for name, value in scores.items() if name.startswith("cv_")})
        lineage = {
            "git_commit": git_commit(),
            "data_md5": data_md5(),
            "valid_fingerprint": fingerprint,
            "model": meta.model,
            "protocol": meta.protocol,
            BUNDLE_TAG: bundle_sha,
        }
        mlflow.set_tags(lineage)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(__file__).with_name("pyfunc_model.py")),
            artifacts={BUNDLE_ARTIFACT: str(bundle)},
            signature=signature(classes=params["genres"]),
            pip_requirements=pip_requirements(meta=meta),
            registered_model_name=settings["model_name"],
        )
    version = str(info.registered_model_version)
    for key, value in {**lineage, f"valid_{settings['metric']}": scores["valid"][settings["metric"]]}.items():
        client.set_model_version_tag(settings["model_name"], version, key, str(value))
    return version


def rescore(*, uri: str, name: str, version: str, valid: pd.DataFrame, metric: str) -> float:
    """A version's valid metric recomputed through its pyfunc on the given valid tracks (path, genre)."""
    from .evaluation import split_metrics

    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    out = model.predict(valid[["path"]])
    if (out["error"] != "").any():
        raise ValueError(f"re-scoring version {version} failed on {out.loc[out['error'] != '', 'error'].tolist()[:3]}")
    frame = out.assign(genre=valid["genre"].to_numpy(), track=valid["track"].to_numpy())
    classes = classes_of(list(out.columns))
    return split_metrics(frame=frame, classes=classes)[metric]


def decide(
    *,
    client: MlflowClient,
    settings: dict[str, Any],
    version: str,
    score: float,
    fingerprint: str,
    valid: pd.DataFrame | None,
    uri: str,
) -> dict[str, Any]:
    """Compare the challenger with the current champion on the same data; record the decision."""
    name, alias, metric = settings["model_name"], settings["alias"], settings["metric"]
    try:
        current = client.get_model_version_by_alias(name, alias)
    except mlflow.exceptions.MlflowException:
        current = None
    record = {
        "timestamp": datetime.now(timezone.utc).isoformat(),
        "model_name": name,
        "metric": f"valid_{metric}",
        "challenger_version": version,
        "challenger_score": score,
        "previous_version": str(current.version) if current else None,
        "previous_score": None,
    }
    if current is not None and current.tags.get("valid_fingerprint") == fingerprint:
        record["previous_score"] = float(current.tags[f"valid_{metric}"])
        record["basis"] = "stored metrics, same valid tracks"
    elif current is not None:
        if valid is None:
            raise ValueError("champion was scored on other data and no valid audio was given to re-score it")
        record["previous_score"] = rescore(uri=uri, name=name, version=current.version, valid=valid, metric=metric)
        record["challenger_score"] = rescore(uri=uri, name=name, version=version, valid=valid, metric=metric)
        record["basis"] = "re-scored through the pyfuncs on the current valid tracks"
    promote = current is None or record["challenger_score"] > record["previous_score"]
    record["decision"] = "promoted" if promote else "kept previous champion"
    if promote:
        client.set_registered_model_alias(name, alias, version)
    return record


def register(
    *,
    model_dir: Path,
    scores: dict[str, Any],
    params: dict[str, Any],
    valid: pd.DataFrame | None = None,
    hashes: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Register the model of `model_dir` and promote it to the alias if it beats the champion.

    `scores`: {"valid": {...}, "test": {...}} scalar metrics; `valid`: track, genre, path of the valid
    split (used only to re-score when the champion was evaluated on other data)."""
    settings = params["register"]
    uri = resolve_tracking_uri(params=params)
    tracks = pd.read_parquet(model_dir / PREDICTIONS_FILE).query("split == 'valid'")["track"].tolist()
    fingerprint = valid_fingerprint(tracks=tracks, hashes=hashes or {})
    report_dir = resolve(settings["report_dir"])
    report_dir.mkdir(parents=True, exist_ok=True)
    # the whole registration holds the registry lock: sqlite takes one writer at a time, and the
    # compare-and-set of the alias must see the champion as it is now, so racing runs are serialised
    with FileLock(str(lock_path(uri=uri, fallback_dir=report_dir)), timeout=settings["lock_timeout_s"]):
        version = log_version(model_dir=model_dir, scores=scores, params=params, uri=uri, fingerprint=fingerprint)
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        record = decide(
            client=client,
            settings=settings,
            version=version,
            score=scores["valid"][settings["metric"]],
            fingerprint=fingerprint,
            valid=valid,
            uri=uri,
        )
        client.set_model_version_tag(settings["model_name"], version, "promotion", record["decision"])
        client.update_model_version(settings["model_name"], version, description=json.dumps(record))
        append_jsonl(report_dir / "promotions.jsonl", record)
    return record


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append-only log: one line per decision, flushed to disk before the lock is released."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def load_champion(
    tracking_uri: str | None = None, model_name: str | None = None, params: dict[str, Any] | None = None
) -> PyFuncModel:
    """The current champion pyfunc, from the registry only (models:/NAME@alias)."""
    params = params or load_params()
    uri = tracking_uri or resolve_tracking_uri(params=params)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    name = model_name or params["register"]["model_name"]
    return mlflow.pyfunc.load_model(f"models:/{name}@{params['register']['alias']}")
