"""What tests import (conftest.py files hold fixtures only): the shared data's location, a small real
model written to the trained-model contract, and subprocess / port helpers of the server tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

from monitoring import summary as ds
from monitoring.summary import DriftSummary
from musicgenre.config import PROJECT_ROOT

SHARED_DATA = Path(os.environ.get("MUSICGENRE_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))
GTZAN = SHARED_DATA / "gtzan"
MODERN = SHARED_DATA / "modern"

TIMEOUT_S = 180  # generous: the machine is shared

CROSS_HOST_LINES: list[str] = []  # filled by test_deep_cross_host, printed in the terminal summary


def host_description() -> str:
    """CPU vendor, model and widest x86 vector extension: the float results of the deep models can
    differ between host kinds (an AVX-512 Intel and an AVX2-only AMD host differed before)."""
    info = {}
    cpuinfo = Path("/proc/cpuinfo")
    for line in cpuinfo.read_text().splitlines() if cpuinfo.exists() else []:
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    flags = set(info.get("flags", "").split())
    vector = next((name for name in ("avx512f", "avx2", "avx") if name in flags), "no AVX")
    return f"{info.get('vendor_id', '?')} {info.get('model name', '?')}, {vector}, {os.cpu_count()} cores"


SMALL_LR = {
    "input": "track",
    "hyper": {"C": 0.1, "max_iter": 300, "n_estimators": 3, "max_samples": 1.0, "max_features": 1.0, "n_jobs": 1},
}


def write_model(*, params: dict, tables, root: Path, name: str, shuffle_labels: bool) -> tuple[Path, dict]:
    """A small real classic model on the grouped split, saved as the train stage saves it; shuffled
    labels give a near-chance one."""
    from musicgenre.models.classic import fit_classic
    from musicgenre.models.data import protocol_split, track_features
    from musicgenre.models.predictor import ModelMeta

    genres, split = params["genres"], protocol_split(tables=tables, protocol="grouped")
    train = split[split["split"] == "train"]
    labels = np.array([genres.index(g) for g in train["genre"]])
    if shuffle_labels:
        labels = np.random.default_rng(params["seed"]).permutation(labels)
    predictor = fit_classic(
        name="lr_bagging",
        settings=SMALL_LR,
        seed=params["seed"],
        classes=genres,
        threads=params["train"]["threads"],
        train_items=track_features(tables=tables, tracks=train["track"]),
        train_labels=labels,
    )
    model_dir = root / name / "grouped"
    model_dir.mkdir(parents=True)
    meta = ModelMeta(
        model=name,
        family="classic",
        input="track",
        protocol="grouped",
        classes=genres,
        params={"family": "classic", **SMALL_LR},
        n_train_tracks=len(train),
        seed=params["seed"],
        feature_columns=tables.feature_columns,
    )
    served = save_and_reload(predictor, params=params, directory=model_dir, meta=meta)
    scores = write_predictions(
        model_dir=model_dir,
        proba=served.predict_proba(track_features(tables=tables, tracks=split["track"])),
        split=split,
        genres=genres,
    )
    return model_dir, {**scores, **grouped_cv(params=params, tables=tables, shuffle_labels=shuffle_labels)}


def grouped_cv(*, params: dict, tables, shuffle_labels: bool) -> dict:
    """The small model's grouped-CV scores as the evaluate + register stages give them: cv_<metric>_mean,
    its per-fold register.metric on the evaluate stage's fold plan with the plan's fingerprint, and the
    calibration (temperature, conformal threshold) fitted on its out-of-fold rows."""
    from musicgenre.calibrated import calibration_summary
    from musicgenre.crossval import cv_tracks
    from musicgenre.models.classic import fit_classic
    from musicgenre.models.data import track_features
    from musicgenre.models.predictor import proba_columns
    from musicgenre.oof import fold_plan
    from musicgenre.selection import fold_fingerprint, fold_scores

    genres, settings = params["genres"], params["evaluate"]
    tracks = cv_tracks(tables=tables)
    labels = tracks["genre"].map(genres.index).to_numpy()
    fitted = np.random.default_rng(params["seed"]).permutation(labels) if shuffle_labels else labels
    items, parts = track_features(tables=tables, tracks=tracks["track"]), []
    for repeat, fold, train, test in fold_plan(
        tracks, folds=settings["cv_folds"], repeats=settings["cv_repeats"], seed=params["seed"]
    ):
        predictor = fit_classic(
            name="lr_bagging",
            settings=SMALL_LR,
            seed=params["seed"],
            classes=genres,
            threads=1,
            train_items=[items[i] for i in train],
            train_labels=fitted[train],
        )
        proba = pd.DataFrame(predictor.predict_proba([items[i] for i in test]), columns=proba_columns(genres))
        parts.append(pd.concat([tracks.loc[test, ["track", "genre"]].reset_index(drop=True), proba], axis=1))
        parts[-1].insert(0, "fold", fold)
        parts[-1].insert(0, "repeat", repeat)
    oof = pd.concat(parts, ignore_index=True).assign(model="small")
    folds = fold_scores(oof=oof, classes=genres).sort_values(["repeat", "fold"])
    metric, check = params["register"]["metric"], settings["calibration"]
    calibration = calibration_summary(
        oof=oof,
        classes=genres,
        bins=check["ece_bins"],
        edge_positions=check["ece_edge_positions"],
        coverage=check["coverage"],
        floor_draws=check["floor_draws"],
        seed=params["seed"],
    )
    return {
        "cv_accuracy_mean": float(folds["accuracy"].mean()),
        "cv_macro_f1_mean": float(folds["macro_f1"].mean()),
        "cv_fold_scores": {"fingerprint": fold_fingerprint(plan=oof, hashes={}), "scores": list(folds[metric])},
        "calibration": {k: calibration[k] for k in ("temperature", "threshold", "coverage_target", "accuracy_shift")},
    }


def save_and_reload(
    predictor, *, params: dict, directory: Path, meta=None, family: str = "classic", input: str = "track"
):
    """Save a freshly fitted model as the train stage does (meta.json included) and load it back as served."""
    from musicgenre.models import load_predictor
    from musicgenre.models.predictor import ExportSettings, ModelMeta

    meta = meta or ModelMeta(
        model="test",
        family=family,
        input=input,
        protocol="grouped",
        classes=params["genres"],
        params={},
        n_train_tracks=0,
        seed=params["seed"],
    )
    meta.served = predictor.save(directory, export=ExportSettings.from_params(params))
    meta.write(directory)
    return load_predictor(directory)


def write_predictions(*, model_dir: Path, proba: np.ndarray, split: pd.DataFrame, genres: list[str]) -> dict:
    """predictions.parquet of a model folder; its scalar metrics per split."""
    from musicgenre.evaluation import evaluate_predictions
    from musicgenre.models.predictor import PREDICTIONS_FILE, proba_columns
    from musicgenre.splits import SPLITS
    from stages.evaluate import scalar_metrics

    predictions = pd.concat([split, pd.DataFrame(proba, columns=proba_columns(genres))], axis=1)
    predictions.to_parquet(model_dir / PREDICTIONS_FILE, index=False)
    return scalar_metrics(evaluate_predictions(frame=predictions, classes=genres, splits=list(SPLITS)))


def valid_calibration(*, predictions: pd.DataFrame, classes: list[str], coverage: float) -> dict:
    """A temperature and genre-set threshold fitted on a model's valid-split predictions: a stand-in for
    the evaluate stage's grouped out-of-fold fit, so a test champion carries a calibration too."""
    from musicgenre.calibration import apply_temperature, conformal_threshold, fit_temperature
    from musicgenre.models.predictor import proba_columns

    valid = predictions[predictions["split"] == "valid"]
    proba, labels = valid[proba_columns(classes)].to_numpy(), valid["genre"].map(classes.index).to_numpy()
    temperature = fit_temperature(proba, labels)
    threshold = conformal_threshold(apply_temperature(proba, temperature), labels, coverage=coverage)
    return {"temperature": temperature, "threshold": threshold, "coverage_target": coverage}


def train_and_register(*, params: dict, root: Path, model: str, overrides: dict | None = None) -> dict:
    """Train `model` with the real train stage (grouped protocol only) into `root` and register it in a
    sqlite registry under `root`: the registry URI, params and a params file for subprocesses."""
    import pytest
    import yaml

    from musicgenre.evaluation import evaluate_predictions
    from musicgenre.models.predictor import PREDICTIONS_FILE
    from musicgenre.registry import register
    from musicgenre.splits import SPLITS
    from stages.evaluate import scalar_metrics
    from stages.train import train
    from tests.workspace import local_registry

    uri, local = local_registry(params, root)
    local["paths"]["models"] = str(root / "models")
    local["train"]["protocols"] = ["grouped"]
    local["models"][model]["hyper"].update(overrides or {})
    train(local, model=model)
    model_dir = root / "models" / model / "grouped"
    predictions = pd.read_parquet(model_dir / PREDICTIONS_FILE)
    scores = scalar_metrics(evaluate_predictions(frame=predictions, classes=local["genres"], splits=list(SPLITS)))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        record = register(
            model_dir=model_dir,
            scores=scores,
            params=local,
            calibration=valid_calibration(predictions=predictions, classes=local["genres"], coverage=0.9),
        )
    params_file = root / "params.yaml"
    params_file.write_text(yaml.safe_dump(local))
    return {"uri": uri, "params": local, "params_file": params_file, "model_dir": model_dir, "record": record}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop_process(process: subprocess.Popen, *, sig: int = signal.SIGTERM, timeout_s: float = 30) -> None:
    """Ask a long-running subprocess (serve, worker) to stop; kill it if it has not within timeout_s."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def drift_summary(*, batch_id: str = "b1", share: float = 0.45, count: int = 40, drift: bool = True) -> DriftSummary:
    """A complete DriftSummary as monitoring.drift.analyse builds it (two genres, two moved features)."""
    signals = ds.Signals(
        features=ds.FeatureSignal(share=share, count=count, threshold=0.3, fired=share >= 0.3, false_alarm=0.04),
        genre_distribution=ds.GenreSignal(p_value=0.2, threshold=0.05, fired=False),
        confidence=ds.ConfidenceSignal(
            reference_mean=0.8, current_mean=0.6, drop=0.2, change_pct=-25.0, threshold=0.15, fired=True
        ),
    )
    return DriftSummary(
        batch_id=batch_id,
        created_at="2026-01-01T00:00:00+00:00",
        verdict="drift" if drift else "no-drift",
        drift=drift,
        decided_by=["features"],
        n_current=12,
        n_reference=100,
        model=ds.ModelRef(name="gtzan-genre", version="3"),
        test={"method": "ks", "threshold": 0.05},
        signals=signals,
        top_features=[
            {"feature": "tempo", "p_value": 0.001, "distance": 0.9},
            {"feature": "zcr_mean", "p_value": 0.01, "distance": 0.4},
        ],
        top_features_text=["tempo up 12.0 %", "zcr_mean down 3.0 %"],
        genre_distribution=[
            ds.GenreShare(genre="blues", reference_share=0.5, current_share=0.25),
            ds.GenreShare(genre="rock", reference_share=0.5, current_share=0.75),
        ],
        estimated_accuracy=ds.AccuracyEstimate(estimate=0.55, low=0.4, high=0.7, level=0.9),
        novel_files=[{"file": "odd.ogg", "novelty": 30.5, "novelty_percentile": 100.0}],
        n_novel=1,
        rejected=[{"key": "bad.ogg", "path": "/in/bad.ogg", "reason": "/in/bad.ogg: cannot decode audio"}],
        report_dir="reports/drift/" + batch_id,
    )
