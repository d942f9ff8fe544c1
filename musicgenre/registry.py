"""MLflow model registry: each version an immutable bundle, promotion by a recorded rule.

A registered version is a pyfunc whose artifact is a bundle (musicgenre.serving.bundle): the model
folder with its ONNX graphs, the feature settings, and the project's code as it was at registration.
The pyfunc (pyfunc_model.py) opens the bundle with the bundle's own code, so a version gives the same
outputs after the project changes; its logged requirements are the serving runtime's (ONNX Runtime,
not TensorFlow). The version's `bundle_sha256` tag lets every reader check what it loads.

Promotion rule (musicgenre.selection.paired_gain): a new version becomes `champion` only if its
grouped-CV metric beats the current champion's on the SAME folds (same fold plan, same tracks, same
audio hashes: the `cv_fingerprint` tag) by more than fold noise explains: the mean per-fold gain's
paired-bootstrap interval (register.gate: resamples, confidence) must lie above 0. The champion's
per-fold scores are its version's `cv_fold_scores` tag when its fingerprint matches, else this run's
scores of the champion's configuration (same model name and logged model params, re-cross-validated on
the current folds). A champion that cannot be scored on the current folds is kept, and the record says
why. The first version becomes champion. The rule is written into every promotion record.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
from filelock import FileLock
from mlflow.models import ModelSignature
from mlflow.pyfunc import PyFuncModel
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, Schema, TensorSpec

from .config import load_params, project_root, resolve
from .features import FeatureConfig
from .models.predictor import ModelMeta, proba_columns
from .selection import paired_gain
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
    """The model with the best mean grouped-CV `metric` under `protocol` (never valid or test; the lower
    fold spread breaks ties). Models that were not cross-validated on every fold cannot be chosen."""
    key = f"cv_{metric}_mean"
    candidates = [(model, runs[protocol]) for model, runs in metrics.items() if key in runs.get(protocol, {})]
    # the paired gate needs the challenger's scores on every fold: a model cross-validated on fewer
    # repeats (evaluate.deep.repeats) is reported but cannot be chosen
    most = max((scores.get("cv_fits", 0) for _, scores in candidates), default=0)
    candidates = [(model, scores) for model, scores in candidates if scores.get("cv_fits", 0) == most]
    if not candidates:
        raise ValueError(f"no model has grouped-CV {metric} under protocol {protocol!r}")
    return max(candidates, key=lambda item: (item[1][key], -item[1][f"cv_{metric}_std"], item[0]))[0]


def gate_rule(*, metric: str, gate: dict[str, Any]) -> str:
    """The promotion rule in words, as written into every record."""
    return (
        f"promote iff the lower end of the {gate['confidence']:.0%} paired-bootstrap interval "
        f"({gate['resamples']} resamples over folds) of the mean per-fold gain in grouped-CV {metric} "
        "(challenger - champion, same folds) is above 0"
    )


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


def log_version(
    *, model_dir: Path, scores: dict[str, Any], params: dict[str, Any], uri: str, calibration: dict[str, Any] | None
) -> str:
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
        runtime = {"features": features, "limits": params["limits"]}
        # the served probabilities are temperature-scaled and carry the genre-set threshold (runtime.json)
        runtime.update({"calibration": calibration} if calibration else {})
        bundle_sha = build_bundle(model_dir=model_dir, target=bundle, settings=runtime)
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
        mlflow.log_metrics({name: value for name, value in scores.items() if isinstance(value, (int, float))})
        folds = scores.get("cv_fold_scores", {})
        lineage = {
            "git_commit": git_commit(),
            "data_md5": data_md5(),
            "cv_fingerprint": folds.get("fingerprint", "none"),
            "cv_fold_scores": json.dumps(folds.get("scores", [])),
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
    for key, value in lineage.items():
        client.set_model_version_tag(settings["model_name"], version, key, str(value))
    return version


def champion_folds(
    *, client: MlflowClient, current: Any, fingerprint: str, rivals: dict[str, list[float]], params: dict[str, Any]
) -> tuple[list[float] | None, str]:
    """The champion's per-fold scores on the challenger's folds, and where they come from."""
    if current.tags.get("cv_fingerprint") == fingerprint:
        return json.loads(current.tags["cv_fold_scores"]), "stored fold scores, same folds"
    model = current.tags.get("model")
    logged = {k: v for k, v in client.get_run(current.run_id).data.params.items() if k.startswith("model.")}
    configured = {k: str(v) for k, v in flatten("model", params["models"].get(model, {})).items()}
    same_config = bool(configured) and all(logged.get(k) == v for k, v in configured.items())
    if model in rivals and same_config:
        return rivals[model], "champion's configuration re-cross-validated on the current folds"
    return None, f"champion ({model}) has no scores on the current folds and its configuration was not re-run"


def is_refresh(*, client: MlflowClient, name: str, version: str, current: Any) -> bool:
    """Whether the challenger version is the champion's model (same name) registered again: a tie then moves
    the alias, so newer code and calibration (e.g. a new field of runtime.json) reach serving."""
    challenger = client.get_model_version(name, version)
    return challenger.tags.get("model") is not None and challenger.tags.get("model") == current.tags.get("model")


def decide(
    *,
    client: MlflowClient,
    params: dict[str, Any],
    version: str,
    scores: dict[str, Any],
    rivals: dict[str, list[float]],
) -> dict[str, Any]:
    """Compare the challenger with the current champion on the same folds (paired gate); record the decision."""
    settings = params["register"]
    name, alias, metric = settings["model_name"], settings["alias"], settings["metric"]
    try:
        current = client.get_model_version_by_alias(name, alias)
    except mlflow.exceptions.MlflowException:
        current = None
    record: dict[str, Any] = {
        "timestamp": datetime.now(timezone.utc).isoformat(),
        "model_name": name,
        "metric": f"grouped_cv_{metric}",
        "rule": gate_rule(metric=metric, gate=settings["gate"]),
        "challenger_version": version,
        "challenger_score": scores.get(f"cv_{metric}_mean"),
        "previous_version": str(current.version) if current else None,
        "previous_score": None,
        "basis": "no previous champion",
    }
    promote = current is None
    if current is not None:
        folds = scores["cv_fold_scores"]  # a challenger without them cannot be compared: KeyError
        record["challenger_score"] = sum(folds["scores"]) / len(folds["scores"])
        theirs, record["basis"] = champion_folds(
            client=client, current=current, fingerprint=folds["fingerprint"], rivals=rivals, params=params
        )
        if theirs is not None:
            gate = paired_gain(challenger=folds["scores"], champion=theirs, seed=params["seed"], **settings["gate"])
            record.update(previous_score=sum(theirs) / len(theirs), gate=gate)
            promote = gate["promote"]
            refresh = not promote and is_refresh(client=client, name=name, version=version, current=current)
            refresh = refresh and list(folds["scores"]) == list(theirs)
            if refresh:  # the same model, scored the same on the same folds: only its bundle is newer
                record["decision"] = "refreshed: the champion's model with identical fold scores, newer bundle"
                client.set_registered_model_alias(name, alias, version)
                return record
    record["decision"] = "promoted" if promote else "kept previous champion"
    if promote:
        client.set_registered_model_alias(name, alias, version)
    return record


def register(
    *,
    model_dir: Path,
    scores: dict[str, Any],
    params: dict[str, Any],
    rivals: dict[str, list[float]] | None = None,
    calibration: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Register the model of `model_dir` and promote it to the alias if it beats the champion.

    `scores`: its scalar metrics ({"valid": {...}, "test": {...}, "cv_<metric>_mean": ...}) and
    `cv_fold_scores` ({"fingerprint", "scores": per-fold register.metric}); `rivals`: this run's per-fold
    scores of the other models on the same folds; `calibration`: temperature and genre-set threshold the
    bundle serves with (None: raw probabilities, no sets)."""
    settings = params["register"]
    uri = resolve_tracking_uri(params=params)
    report_dir = resolve(settings["report_dir"])
    report_dir.mkdir(parents=True, exist_ok=True)
    # the whole registration holds the registry lock: sqlite takes one writer at a time, and the
    # compare-and-set of the alias must see the champion as it is now, so racing runs are serialised
    with FileLock(str(lock_path(uri=uri, fallback_dir=report_dir)), timeout=settings["lock_timeout_s"]):
        version = log_version(model_dir=model_dir, scores=scores, params=params, uri=uri, calibration=calibration)
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        record = decide(client=client, params=params, version=version, scores=scores, rivals=rivals or {})
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
