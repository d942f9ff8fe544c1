"""The model tests' shared temporary MLflow registry (session scope: built once for all model tests)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from musicgenre.evaluation import evaluate_predictions
from musicgenre.models import load_predictor
from musicgenre.models.classic import fit_classic
from musicgenre.models.predictor import PREDICTIONS_FILE, ExportSettings, ModelMeta, proba_columns
from musicgenre.models.data import load_tables, protocol_split, track_features
from musicgenre.registry import register
from stages.evaluate import scalar_metrics
from tests.workspace import local_registry

SMALL_LR = {"input": "track", "hyper": {"C": 0.1, "max_iter": 300, "n_estimators": 3, "max_samples": 1.0,
                                         "max_features": 1.0, "n_jobs": 1}}


@pytest.fixture(scope="session")
def grouped(params):
    """The real grouped split as train / valid / test / held_out (valid + test) pairs of
    (TrackFeatures list, genre-index labels), plus the tables they come from."""
    tables = load_tables(params=params)
    split = protocol_split(tables=tables, protocol="grouped")
    items = track_features(tables=tables, tracks=split["track"])
    labels = split["genre"].map(params["genres"].index).to_numpy()
    masks = {name: (split["split"] == name).to_numpy() for name in ("train", "valid", "test")}
    masks["held_out"] = ~masks["train"]
    pairs = {name: ([item for item, keep in zip(items, mask) if keep], labels[mask]) for name, mask in masks.items()}
    return {**pairs, "tables": tables}


def write_model(*, params: dict, tables, root: Path, name: str, shuffle_labels: bool) -> tuple[Path, dict]:
    """A small real classic model on the grouped split; shuffled labels give a near-chance one."""
    genres, split = params["genres"], protocol_split(tables=tables, protocol="grouped")
    train = split[split["split"] == "train"]
    labels = np.array([genres.index(g) for g in train["genre"]])
    if shuffle_labels:
        labels = np.random.default_rng(params["seed"]).permutation(labels)
    predictor = fit_classic(name="lr_bagging", settings=SMALL_LR, seed=params["seed"], classes=genres,
                            threads=params["train"]["threads"],
                            train_items=track_features(tables=tables, tracks=train["track"]), train_labels=labels)
    model_dir = root / name / "grouped"
    model_dir.mkdir(parents=True)
    meta = ModelMeta(model=name, family="classic", input="track", protocol="grouped", classes=genres,
                     params={"family": "classic", **SMALL_LR}, n_train_tracks=len(train), seed=params["seed"],
                     feature_columns=tables.feature_columns)
    meta.served = predictor.save(model_dir, export=ExportSettings.from_params(params))
    meta.write(model_dir)
    proba = load_predictor(model_dir).predict_proba(track_features(tables=tables, tracks=split["track"]))
    predictions = pd.concat([split, pd.DataFrame(proba, columns=proba_columns(genres))], axis=1)
    predictions.to_parquet(model_dir / PREDICTIONS_FILE, index=False)
    scores = scalar_metrics(evaluate_predictions(frame=predictions, classes=genres, splits=["train", "valid", "test"]))
    return model_dir, scores


@pytest.fixture(scope="session")
def registry(params, tmp_path_factory):
    """A temp registry where a near-chance model, then a real one, then the near-chance again are registered."""
    root = tmp_path_factory.mktemp("registry")
    uri, local = local_registry(params, root)
    tables = load_tables(params=local)
    bad_dir, bad = write_model(params=local, tables=tables, root=root / "models", name="chance", shuffle_labels=True)
    good_dir, good = write_model(params=local, tables=tables, root=root / "models", name="lr", shuffle_labels=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)  # never the project's own mlflow.db
        records = [register(model_dir=d, scores=s, params=local) for d, s in
                   ((bad_dir, bad), (good_dir, good), (bad_dir, bad))]
        yield {"uri": uri, "good_dir": good_dir, "params": local, "records": records, "scores": {"chance": bad, "lr": good},
               "report_dir": root / "reports"}


def train_and_register(*, params: dict, root: Path, model: str, overrides: dict | None = None) -> dict:
    """Train `model` with the real train stage (grouped protocol only) into `root`, register it in a
    sqlite registry under `root`; params and the registry URI for the tests."""
    import yaml

    from stages.train import train
    uri, local = local_registry(params, root)
    local["paths"]["models"] = str(root / "models")
    local["train"]["protocols"] = ["grouped"]
    for key, value in (overrides or {}).items():
        local["models"][model]["hyper"][key] = value
    train(local, model=model)
    model_dir = root / "models" / model / "grouped"
    predictions = pd.read_parquet(model_dir / PREDICTIONS_FILE)
    scores = scalar_metrics(evaluate_predictions(frame=predictions, classes=local["genres"],
                                                 splits=["train", "valid", "test"]))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        record = register(model_dir=model_dir, scores=scores, params=local)
    params_file = root / "params.yaml"
    params_file.write_text(yaml.safe_dump(local))
    return {"uri": uri, "params": local, "params_file": params_file, "model_dir": model_dir, "record": record}


@pytest.fixture(scope="session")
def transfer_champion(params, tmp_path_factory):
    """transfer_logreg trained by the train stage on the real embeddings and registered as champion."""
    return train_and_register(params=params, root=tmp_path_factory.mktemp("transfer"), model="transfer_logreg")


def save_and_reload(predictor, *, params: dict, directory: Path, family: str, input: str):
    """Save a freshly fitted model as the train stage does and load it back as served."""
    meta = ModelMeta(model="test", family=family, input=input, protocol="grouped", classes=params["genres"],
                     params={}, n_train_tracks=0, seed=params["seed"])
    meta.served = predictor.save(directory, export=ExportSettings.from_params(params))
    meta.write(directory)
    return load_predictor(directory)
