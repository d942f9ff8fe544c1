"""Evaluation: metrics on a hand-checkable example, and the evaluate stage on real-feature predictions."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from musicgenre.config import resolve
from musicgenre.evaluation import evaluate_predictions, misclassifications, split_metrics
from musicgenre.features import FeatureConfig, feature_names
from stages.evaluate import evaluate

CLASSES = ["a", "b", "c"]


def hand_frame() -> pd.DataFrame:
    """4 tracks: truth a, a, b, c; predicted a, b, b, a (2 right)."""
    proba = [[0.7, 0.2, 0.1], [0.4, 0.5, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1]]
    frame = pd.DataFrame(proba, columns=[f"proba_{c}" for c in CLASSES])
    return frame.assign(track=["t1", "t2", "t3", "t4"], genre=["a", "a", "b", "c"], split="test")


def test_metrics_match_hand_computation():
    metrics = split_metrics(frame=hand_frame(), classes=CLASSES)
    assert metrics["accuracy"] == pytest.approx(0.5)
    # per class: a P=1/2 R=1/2 F1=1/2; b P=1/2 R=1 F1=2/3; c P=0 R=0 F1=0
    assert metrics["per_genre"]["a"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert metrics["per_genre"]["b"]["f1"] == pytest.approx(2 / 3)
    assert metrics["per_genre"]["c"]["f1"] == 0.0
    assert metrics["macro_f1"] == pytest.approx((0.5 + 2 / 3 + 0.0) / 3)
    assert metrics["log_loss"] == pytest.approx(-np.mean(np.log([0.7, 0.4, 0.8, 0.1])))
    assert metrics["confusion"] == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]


def test_misclassifications_name_tracks_and_top_predictions():
    groups = misclassifications(frame=hand_frame(), classes=CLASSES, top_k=2)
    assert {(g["actual"], g["predicted"], g["count"]) for g in groups} == {("a", "b", 1), ("c", "a", 1)}
    t4 = next(g for g in groups if g["actual"] == "c")["tracks"][0]
    assert t4["track"] == "t4"
    assert [p["genre"] for p in t4["top"]] == ["a", "b"] and t4["top"][0]["probability"] == pytest.approx(0.6)


def test_train_test_gap_is_train_minus_test_accuracy():
    frame = pd.concat([hand_frame(), hand_frame().assign(split="train", proba_c=[0.0, 0.0, 0.0, 0.9])])
    result = evaluate_predictions(frame=frame, classes=CLASSES, splits=["train", "valid", "test"])
    assert "valid" not in result
    assert result["train"]["accuracy"] == pytest.approx(0.75)
    assert result["train_test_gap"] == pytest.approx(0.25)


def write_contract(*, params: dict, root, protocol: str) -> pd.DataFrame:
    """A quick logistic regression on the real track features, written like the train stage does."""
    genres, columns = params["genres"], feature_names(FeatureConfig.from_params(params))
    features = pd.read_parquet(resolve(params["paths"]["features"]))
    splits = pd.read_csv(resolve(params["paths"]["splits"]))
    tracks = features[features["segment"] == -1].merge(splits[["track", f"split_{protocol}"]], on="track")
    tracks = tracks.rename(columns={f"split_{protocol}": "split"})
    train = tracks[tracks["split"] == "train"]
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=500))
    model.fit(train[columns], train["genre"])
    proba = pd.DataFrame(model.predict_proba(tracks[columns]), columns=[f"proba_{g}" for g in model.classes_])
    out = root / "lr" / protocol
    out.mkdir(parents=True)
    predictions = pd.concat(
        [
            tracks[["track", "genre", "split"]].reset_index(drop=True),
            proba.reindex(columns=[f"proba_{g}" for g in genres], fill_value=0.0),
        ],
        axis=1,
    )
    predictions.to_parquet(out / "predictions.parquet", index=False)
    meta = {
        "model": "lr",
        "family": "classic",
        "input": "track",
        "protocol": protocol,
        "classes": genres,
        "feature_columns": columns,
        "params": {},
        "n_train_tracks": len(train),
        "seed": params["seed"],
    }
    (out / "meta.json").write_text(json.dumps(meta))
    test = tracks[tracks["split"] == "test"]
    return pd.DataFrame({"truth": test["genre"].to_numpy(), "predicted": model.predict(test[columns])})


def test_evaluate_stage_on_real_predictions(params, pipeline_artifacts, tmp_path):
    local = copy.deepcopy(params)
    local["paths"]["models"] = str(tmp_path / "models")
    local["evaluate"]["report_dir"] = str(tmp_path / "eval")
    truth = {p: write_contract(params=local, root=tmp_path / "models", protocol=p) for p in ("grouped", "random")}
    metrics = evaluate(local)
    out = tmp_path / "eval"
    assert json.loads((out / "metrics.json").read_text()) == metrics
    for protocol, expected in truth.items():
        test = metrics["lr"][protocol]["test"]
        assert test["accuracy"] == pytest.approx((expected["truth"] == expected["predicted"]).mean())
        assert math.isfinite(test["log_loss"]) and 0.0 <= metrics["lr"][protocol]["valid"]["macro_f1"] <= 1.0
        pairs = pd.read_csv(out / "confusion" / f"lr_{protocol}.csv")
        assert list(pairs["predicted"]) == list(expected["predicted"])
        assert (out / "figures" / f"lr_{protocol}.png").read_bytes()[:4] == b"\x89PNG"
        wrong = json.loads((out / "misclassifications.json").read_text())[f"lr ({protocol})"]
        assert sum(g["count"] for g in wrong) == int((expected["truth"] != expected["predicted"]).sum())
    row = next(line for line in (out / "summary.md").read_text().splitlines() if line.startswith("| lr "))
    assert f"{metrics['lr']['grouped']['test']['accuracy']:.3f}" in row
    assert f"{metrics['lr']['random']['test']['accuracy']:.3f}" in row
