"""MLflow model registry: the champion as a self-contained pyfunc, promotion by a recorded rule.

The registered model takes a DataFrame with a `path` column of audio files and returns the genre
probabilities: it decodes, extracts features with the logged feature config and runs the trained
Predictor itself, so a consumer needs only the tracking URI and the model name.

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
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from filelock import FileLock
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, Schema

from musicgenre.config import load_params, project_root, resolve
from musicgenre.evaluation import proba_columns
from musicgenre.extraction import Limits, extract_file
from musicgenre.features import FeatureConfig

TRACKING_ENV = "MLFLOW_TRACKING_URI"
# what the pyfunc needs at load time; versions pinned to what it was logged with
RUNTIME_PACKAGES = ("mlflow", "numpy", "pandas", "scikit-learn", "skops", "xgboost-cpu", "librosa", "soundfile",
                    "filelock")
# what some model families need on top (musicnn ships the tagger weights; install it with --no-deps)
FAMILY_PACKAGES = {"deep": ("tensorflow",), "transfer": ("tensorflow", "musicnn")}


class GenreClassifier(mlflow.pyfunc.PythonModel):
    """pyfunc: DataFrame[path] -> path, proba_<genre> x 10, genre (top-1), error (empty when ok)."""

    def load_context(self, context: Any) -> None:
        from musicgenre.models.predictor import load_predictor  # the trained model's own loader
        settings = context.model_config
        self.predictor = load_predictor(Path(context.artifacts["model_dir"]))
        self.config = FeatureConfig(**settings["features"])
        self.limits = Limits(**settings["limits"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        classes = self.predictor.classes
        paths = [str(path) for path in model_input["path"]]
        items, errors = {}, {}
        for index, path in enumerate(paths):
            try:  # one bad file must not stop the batch: its row carries the reason instead
                items[index] = extract_file(path, key=str(index), config=self.config, limits=self.limits,
                                            embedding=self.predictor.embedding,  # None unless a transfer model
                                            features=self.predictor.needs_features)
            except (ValueError, OSError) as exc:
                errors[index] = str(exc)
        proba = np.full((len(paths), len(classes)), np.nan)
        if items:
            proba[list(items)] = self.predictor.predict_proba(list(items.values()))
        out = pd.DataFrame(proba, columns=proba_columns(classes))
        out.insert(0, "path", paths)
        out["genre"] = [classes[int(np.argmax(row))] if i in items else None for i, row in enumerate(proba)]
        out["error"] = [errors.get(i, "") for i in range(len(paths))]
        return out


def resolve_tracking_uri(*, params: dict[str, Any] | None = None) -> str:
    """$MLFLOW_TRACKING_URI, else params register.tracking_uri with a relative sqlite path made absolute."""
    if os.environ.get(TRACKING_ENV):
        return os.environ[TRACKING_ENV]
    uri = (params or load_params())["register"]["tracking_uri"]
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix):].startswith("/"):
        return prefix + str(project_root() / uri[len(prefix):])
    return uri


def lock_path(*, uri: str, fallback_dir: Path) -> Path:
    """One lock per registry: beside its sqlite file, else in the report folder (single host only)."""
    prefix = "sqlite:///"
    return Path(uri[len(prefix):] + ".lock") if uri.startswith(prefix) else fallback_dir / "register.lock"


def choose_champion(*, metrics: dict[str, dict[str, Any]], protocol: str, metric: str) -> str:
    """The model with the best VALID metric under `protocol` (lower valid log loss breaks ties)."""
    candidates = [(model, runs[protocol]["valid"]) for model, runs in metrics.items()
                  if "valid" in runs.get(protocol, {})]
    if not candidates:
        raise ValueError(f"no model has valid-split metrics under protocol {protocol!r}")
    return max(candidates, key=lambda item: (item[1][metric], -item[1]["log_loss"], item[0]))[0]


def valid_fingerprint(*, tracks: list[str], hashes: dict[str, str]) -> str:
    """Identity of the evaluation data: the valid track ids and their audio content hashes."""
    lines = "\n".join(f"{track}:{hashes.get(track, '?')}" for track in sorted(tracks))
    return hashlib.sha256(lines.encode()).hexdigest()


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=project_root(), capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def data_md5() -> str:
    """The DVC hash of the imported GTZAN data (data.dvc outs)."""
    from musicgenre.datasource import read_data_dvc
    stage = read_data_dvc()
    return stage["outs"][0]["md5"] if stage else "unknown"


def flatten(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in flatten(f"{prefix}.{key}", item).items()}
    return {prefix: value}


def pip_requirements(*, family: str = "classic") -> list[str]:
    pins = []
    for package in (*RUNTIME_PACKAGES, *FAMILY_PACKAGES.get(family, ())):
        try:
            pins.append(f"{package}=={metadata.version(package)}")
        except metadata.PackageNotFoundError:
            continue
    return pins


def signature(*, classes: list[str]) -> ModelSignature:
    """Input: a `path` column of audio files; output: the probabilities, top-1 genre and per-file error."""
    outputs = [ColSpec("string", "path"), *(ColSpec("double", c) for c in proba_columns(classes)),
               ColSpec("string", "genre", required=False), ColSpec("string", "error")]
    return ModelSignature(inputs=Schema([ColSpec("string", "path")]), outputs=Schema(outputs))


def experiment_id(*, client: MlflowClient, name: str, artifact_root: Path) -> str:
    """The experiment, created with its artifacts inside the project (not ./mlruns of the cwd)."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    artifact_root.mkdir(parents=True, exist_ok=True)
    try:
        return client.create_experiment(name, artifact_location=artifact_root.resolve().as_uri())
    except mlflow.exceptions.MlflowException:  # created meanwhile by a racing registration
        return client.get_experiment_by_name(name).experiment_id


def log_version(*, model_dir: Path, scores: dict[str, Any], params: dict[str, Any], uri: str,
                fingerprint: str) -> str:
    """Log one run (params, metrics, lineage, the pyfunc) and register it; returns the new version."""
    settings, meta = params["register"], json.loads((model_dir / "meta.json").read_text())
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    exp = experiment_id(client=client, name=settings["experiment"], artifact_root=resolve(settings["artifact_dir"]))
    features = FeatureConfig.from_params(params).as_dict()
    with mlflow.start_run(experiment_id=exp, run_name=f"{meta['model']}-{meta['protocol']}"):
        mlflow.log_params({**flatten("model", meta["params"]), **flatten("features", features),
                           **flatten("embeddings", meta.get("embeddings", {})),  # transfer models only
                           "model.name": meta["model"], "model.input": meta["input"],
                           "protocol": meta["protocol"], "n_train_tracks": meta["n_train_tracks"]})
        mlflow.log_metrics({f"{split}_{name}": value for split in ("valid", "test")
                            for name, value in scores.get(split, {}).items()})
        mlflow.log_metrics({name: value for name, value in scores.items() if name.startswith("cv_")})
        lineage = {"git_commit": git_commit(), "data_md5": data_md5(), "valid_fingerprint": fingerprint,
                   "model": meta["model"], "protocol": meta["protocol"]}
        mlflow.set_tags(lineage)
        mlflow.log_dict({"features": features, "limits": params["limits"]}, "feature_config.json")
        info = mlflow.pyfunc.log_model(
            name="model", python_model=str(Path(__file__).with_name("pyfunc_model.py")), artifacts={"model_dir": str(model_dir)},
            model_config={"features": features, "limits": params["limits"]},
            signature=signature(classes=params["genres"]), pip_requirements=pip_requirements(family=meta["family"]),
            registered_model_name=settings["model_name"])
    version = str(info.registered_model_version)
    for key, value in {**lineage, f"valid_{settings['metric']}": scores["valid"][settings["metric"]]}.items():
        client.set_model_version_tag(settings["model_name"], version, key, str(value))
    return version


def rescore(*, uri: str, name: str, version: str, valid: pd.DataFrame, metric: str) -> float:
    """A version's valid metric recomputed through its pyfunc on the given valid tracks (path, genre)."""
    from musicgenre.evaluation import split_metrics
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    out = model.predict(valid[["path"]])
    if (out["error"] != "").any():
        raise ValueError(f"re-scoring version {version} failed on {out.loc[out['error'] != '', 'error'].tolist()[:3]}")
    frame = out.assign(genre=valid["genre"].to_numpy(), track=valid["track"].to_numpy())
    classes = [c[len("proba_"):] for c in out.columns if c.startswith("proba_")]
    return split_metrics(frame=frame, classes=classes)[metric]


def decide(*, client: MlflowClient, settings: dict[str, Any], version: str, score: float, fingerprint: str,
           valid: pd.DataFrame | None, uri: str) -> dict[str, Any]:
    """Compare the challenger with the current champion on the same data; record the decision."""
    name, alias, metric = settings["model_name"], settings["alias"], settings["metric"]
    try:
        current = client.get_model_version_by_alias(name, alias)
    except mlflow.exceptions.MlflowException:
        current = None
    record = {"timestamp": datetime.now(timezone.utc).isoformat(), "model_name": name, "metric": f"valid_{metric}",
              "challenger_version": version, "challenger_score": score,
              "previous_version": str(current.version) if current else None, "previous_score": None}
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


def register(*, model_dir: Path, scores: dict[str, Any], params: dict[str, Any], valid: pd.DataFrame | None = None,
             hashes: dict[str, str] | None = None) -> dict[str, Any]:
    """Register the model of `model_dir` and promote it to the alias if it beats the champion.

    `scores`: {"valid": {...}, "test": {...}} scalar metrics; `valid`: track, genre, path of the valid
    split (used only to re-score when the champion was evaluated on other data)."""
    settings = params["register"]
    uri = resolve_tracking_uri(params=params)
    tracks = pd.read_parquet(model_dir / "predictions.parquet").query("split == 'valid'")["track"].tolist()
    fingerprint = valid_fingerprint(tracks=tracks, hashes=hashes or {})
    report_dir = resolve(settings["report_dir"])
    report_dir.mkdir(parents=True, exist_ok=True)
    # the whole registration holds the registry lock: sqlite takes one writer at a time, and the
    # compare-and-set of the alias must see the champion as it is now, so racing runs are serialised
    with FileLock(str(lock_path(uri=uri, fallback_dir=report_dir)), timeout=settings["lock_timeout_s"]):
        version = log_version(model_dir=model_dir, scores=scores, params=params, uri=uri, fingerprint=fingerprint)
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        record = decide(client=client, settings=settings, version=version, score=scores["valid"][settings["metric"]],
                        fingerprint=fingerprint, valid=valid, uri=uri)
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


def load_champion(tracking_uri: str | None = None, model_name: str | None = None,
                  params: dict[str, Any] | None = None) -> mlflow.pyfunc.PyFuncModel:
    """The current champion pyfunc, from the registry only (models:/NAME@alias)."""
    params = params or load_params()
    uri = tracking_uri or resolve_tracking_uri(params=params)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    name = model_name or params["register"]["model_name"]
    return mlflow.pyfunc.load_model(f"models:/{name}@{params['register']['alias']}")

