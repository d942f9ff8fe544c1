"""The train stage end to end on the real tables: the model-directory contract the evaluation and
registration stages read, predictions from the reloaded model, and all-or-nothing writes."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from musicgenre.config import PROJECT_ROOT, resolve
from musicgenre.io import atomic_dir
from musicgenre.models import load_predictor
from musicgenre.models.data import load_tables, protocol_split, track_features
from musicgenre.models.predictor import META_FILE, PREDICTIONS_FILE, proba_columns
from stages._cli import StageError
from stages.train import train

MODEL = "knn_bagging"  # the fastest classic model: the contract, not the accuracy, is under test here


@pytest.fixture(scope="module")
def trained(params, pipeline_artifacts, tmp_path_factory):
    local = copy.deepcopy(params)
    local["paths"]["models"] = str(tmp_path_factory.mktemp("models"))
    return local, train(local, model=MODEL)


def test_every_protocol_gets_a_complete_model_directory(trained):
    local, summary = trained
    root = resolve(local["paths"]["models"]) / MODEL
    assert sorted(summary) == sorted(local["train"]["protocols"])
    assert sorted(p.name for p in root.iterdir()) == sorted(local["train"]["protocols"])  # no temp leftovers
    for protocol in local["train"]["protocols"]:
        meta = json.loads((root / protocol / META_FILE).read_text())
        assert {"model.skops", META_FILE, PREDICTIONS_FILE} <= {p.name for p in (root / protocol).iterdir()}
        assert meta["model"] == MODEL and meta["family"] == "classic" and meta["protocol"] == protocol
        assert meta["classes"] == local["genres"] and meta["input"] == local["models"][MODEL]["input"]
        assert meta["params"] == local["models"][MODEL] and summary[protocol]["train_seconds"] >= 0
        # skl2onnx's graph of a bagged distance-weighted KNN does not run: it serves from skops, saying why
        assert meta["served"]["format"] == "skops" and meta["served"]["onnx_refused"]
        assert len(meta["feature_columns"]) == 88


@pytest.mark.parametrize("protocol", ["grouped", "random"])
def test_predictions_cover_the_protocol_and_come_from_the_saved_model(trained, protocol):
    local, summary = trained
    model_dir = resolve(local["paths"]["models"]) / MODEL / protocol
    predictions = pd.read_parquet(model_dir / PREDICTIONS_FILE)
    tables = load_tables(params=local)
    split = protocol_split(tables=tables, protocol=protocol)
    assert list(predictions.columns) == ["track", "genre", "split", *proba_columns(local["genres"])]
    pd.testing.assert_frame_equal(predictions[["track", "genre", "split"]], split)
    proba = predictions.filter(like="proba_").to_numpy()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    test = (predictions["split"] == "test").to_numpy()
    assert json.loads((model_dir / META_FILE).read_text())["n_train_tracks"] == (split["split"] == "train").sum()
    assert summary[protocol]["test_accuracy"] > 0.25  # well above the 10 % of chance
    reloaded = load_predictor(model_dir).predict_proba(track_features(tables=tables, tracks=split["track"][test]))
    np.testing.assert_allclose(reloaded, proba[test], atol=1e-12)


def test_failed_write_leaves_the_previous_directory_untouched(tmp_path):
    target = tmp_path / "model"
    with atomic_dir(target) as tmp:
        (tmp / "meta.json").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "meta.json").write_text("half")
            raise RuntimeError("training crashed")
    assert (target / "meta.json").read_text() == "old"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o777 & ~umask  # a normal folder, not mkdtemp's private 0700
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_unknown_model_stops_the_stage(params, tmp_path):
    with pytest.raises(StageError, match="no_such_model"):
        train(params, model="no_such_model")
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params))
    result = subprocess.run(
        [sys.executable, "-m", "stages.train", "--model", "no_such_model", "--params", str(params_file)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1 and "no_such_model" in result.stderr and "Traceback" not in result.stderr
