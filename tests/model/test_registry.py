"""Registry round trip in a temporary sqlite registry: promotion rule, records, champion pyfunc."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from musicgenre.evaluation import proba_columns
from musicgenre.registry import choose_champion, load_champion, register
from tests.helpers import SMALL_LR


def test_better_challenger_promoted_worse_one_not(registry):
    metric = registry["params"]["register"]["metric"]
    good, bad = (registry["scores"][m][f"cv_{metric}_mean"] for m in ("lr", "chance"))
    assert good > bad + 0.2, "precondition: the real model must beat the shuffled-label one on grouped CV"
    first, second, third = registry["records"]
    assert first["decision"] == "promoted" and first["previous_version"] is None
    assert second["decision"] == "promoted" and second["previous_version"] == first["challenger_version"]
    assert second["previous_score"] == pytest.approx(bad) and second["challenger_score"] == pytest.approx(good)
    assert second["basis"] == "stored fold scores, same folds" and second["gate"]["low"] > 0
    assert second["gate"]["folds"] == len(registry["scores"]["lr"]["cv_fold_scores"]["scores"])
    assert third["decision"] == "kept previous champion" and third["gate"]["high"] < 0
    assert all("paired-bootstrap" in record["rule"] for record in registry["records"])
    name, alias = registry["params"]["register"]["model_name"], registry["params"]["register"]["alias"]
    client = MlflowClient(tracking_uri=registry["uri"], registry_uri=registry["uri"])
    champion = client.get_model_version_by_alias(name, alias)
    assert str(champion.version) == second["challenger_version"]
    rejected = client.get_model_version(name, third["challenger_version"])
    assert rejected.tags["promotion"] == "kept previous champion"
    assert json.loads(rejected.description)["previous_version"] == str(champion.version)


def test_promotions_log_is_append_only_record_of_every_decision(registry):
    lines = (registry["report_dir"] / "promotions.jsonl").read_text().splitlines()[:3]  # later tests append
    assert [json.loads(line) for line in lines] == [
        json.loads(json.dumps(r, sort_keys=True)) for r in registry["records"]
    ]
    assert all(
        {"timestamp", "previous_version", "previous_score", "challenger_version", "challenger_score", "decision"}
        <= set(json.loads(line))
        for line in lines
    )


def test_version_carries_lineage_and_metrics(registry):
    client = MlflowClient(tracking_uri=registry["uri"], registry_uri=registry["uri"])
    version = client.get_model_version(
        registry["params"]["register"]["model_name"], registry["records"][1]["challenger_version"]
    )
    run = client.get_run(version.run_id)
    folds = registry["scores"]["lr"]["cv_fold_scores"]
    assert {"git_commit", "data_md5"} <= set(run.data.tags) and run.data.tags["cv_fingerprint"] == folds["fingerprint"]
    assert json.loads(version.tags["cv_fold_scores"]) == pytest.approx(folds["scores"])
    assert run.data.metrics["cv_macro_f1_mean"] == pytest.approx(registry["scores"]["lr"]["cv_macro_f1_mean"])
    assert run.data.metrics["valid_macro_f1"] == pytest.approx(registry["scores"]["lr"]["valid"]["macro_f1"])
    assert run.data.metrics["test_accuracy"] == pytest.approx(registry["scores"]["lr"]["test"]["accuracy"])
    assert run.data.params["features.n_mfcc"] == str(registry["params"]["features"]["n_mfcc"])
    assert run.info.artifact_uri.startswith(Path(registry["params"]["register"]["artifact_dir"]).as_uri())


def test_champion_pyfunc_scores_real_audio_and_names_bad_files(registry, gtzan_slice, tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF not really audio")
    paths = [str(p) for p in gtzan_slice["abs_path"][:3]] + [str(bad)]
    model = load_champion(
        tracking_uri=registry["uri"], model_name=registry["params"]["register"]["model_name"], params=registry["params"]
    )
    out = model.predict(pd.DataFrame({"path": paths}))
    proba = out[proba_columns(registry["params"]["genres"])].to_numpy()
    assert np.allclose(proba[:3].sum(axis=1), 1.0) and (proba[:3] >= 0).all()
    assert list(out["genre"][:3]) == [registry["params"]["genres"][i] for i in proba[:3].argmax(axis=1)]
    assert (out["error"][:3] == "").all() and "broken.wav" in out["error"][3] and np.isnan(proba[3]).all()


def test_served_probabilities_are_temperature_scaled_and_sets_use_the_threshold(registry, gtzan_slice):
    """The champion's bundle applies the temperature fitted on its out-of-fold rows to the raw model."""
    from musicgenre.calibration import apply_temperature, genre_sets
    from musicgenre.models import load_predictor
    from musicgenre.models.data import load_tables, track_features
    from musicgenre.serving.champion import open_champion

    calibration, settings = registry["scores"]["lr"]["calibration"], registry["params"]["register"]
    _, model = open_champion(uri=registry["uri"], name=settings["model_name"], alias=settings["alias"])
    tracks = gtzan_slice["track"][:4].tolist()
    proba, errors = model.predict_paths([str(p) for p in gtzan_slice["abs_path"][:4]])
    assert not any(errors)
    tables = load_tables(params=registry["params"])
    raw = load_predictor(registry["good_dir"]).predict_proba(track_features(tables=tables, tracks=tracks))
    assert calibration["temperature"] != pytest.approx(1.0, abs=0.05)  # the scaling is visible
    np.testing.assert_allclose(proba, apply_temperature(raw, calibration["temperature"]), atol=1e-4)
    expected = genre_sets(proba, threshold=calibration["threshold"])
    assert model.genre_sets(proba) == [[registry["params"]["genres"][i] for i in row] for row in expected]


def test_champion_not_scored_on_the_current_folds_is_kept_and_the_record_says_why(registry):
    local = copy.deepcopy(registry["params"])
    other = {**registry["scores"]["lr"], "cv_fold_scores": {"fingerprint": "other folds", "scores": [0.99] * 15}}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", registry["uri"])
        record = register(model_dir=registry["good_dir"], scores=other, params=local)
    assert record["decision"] == "kept previous champion" and record["previous_score"] is None
    assert "no scores on the current folds" in record["basis"] and "gate" not in record


def test_champion_configuration_re_cross_validated_this_run_is_compared_on_the_new_folds(registry):
    """Other folds than the champion's stored ones, but this run re-scored the champion's configuration
    (same model name and params) on them: the gate compares those."""
    local = copy.deepcopy(registry["params"])
    local["models"]["lr"] = {"family": "classic", **SMALL_LR}  # the champion's logged configuration
    lr, chance = registry["scores"]["lr"], registry["scores"]["chance"]
    challenger = {**chance, "cv_fold_scores": {**chance["cv_fold_scores"], "fingerprint": "new folds"}}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", registry["uri"])
        record = register(
            model_dir=registry["good_dir"],
            scores=challenger,
            params=local,
            rivals={"lr": lr["cv_fold_scores"]["scores"]},
        )
    assert record["basis"].startswith("champion's configuration re-cross-validated")
    assert record["previous_score"] == pytest.approx(np.mean(lr["cv_fold_scores"]["scores"]))
    assert record["decision"] == "kept previous champion" and not record["gate"]["promote"]


def test_choose_champion_uses_grouped_cv_never_valid_or_test():
    metrics = {
        "a": {"grouped": {"cv_macro_f1_mean": 0.70, "cv_macro_f1_std": 0.1, "valid": {"macro_f1": 0.9}}},
        "b": {
            "grouped": {"cv_macro_f1_mean": 0.60, "cv_macro_f1_std": 0.1, "valid": {"macro_f1": 0.99}},
            "random": {"cv_macro_f1_mean": 0.99, "cv_macro_f1_std": 0.0},
        },
        "deep": {"grouped": {"valid": {"macro_f1": 1.0}, "test": {"macro_f1": 1.0}}},  # not cross-validated
    }
    assert choose_champion(metrics=metrics, protocol="grouped", metric="macro_f1") == "a"
    # a model cross-validated on fewer folds (the deep family's fewer repeats) cannot be paired: never chosen
    fewer = {**metrics, "cnn": {"grouped": {"cv_macro_f1_mean": 0.9, "cv_macro_f1_std": 0.0, "cv_fits": 10}}}
    for model in ("a", "b"):
        fewer[model] = {**fewer[model], "grouped": {**fewer[model]["grouped"], "cv_fits": 15}}
    assert choose_champion(metrics=fewer, protocol="grouped", metric="macro_f1") == "a"
    with pytest.raises(ValueError, match="grouped-CV"):
        choose_champion(metrics={"deep": metrics["deep"]}, protocol="grouped", metric="macro_f1")


def test_the_champion_registered_again_with_identical_fold_scores_refreshes_the_alias(
    params, pipeline_artifacts, tmp_path
):
    """A retrain that reproduces the champion exactly (same model, same fold scores) moves the alias to the new
    version, so what a newer bundle carries (code, calibration fields) reaches serving; any other tie keeps it."""
    from musicgenre.models.data import load_tables
    from tests.helpers import write_model
    from tests.workspace import local_registry

    uri, local = local_registry(params, tmp_path)
    model_dir, scores = write_model(
        params=local, tables=load_tables(params=local), root=tmp_path / "models", name="lr", shuffle_labels=False
    )
    folds = scores["cv_fold_scores"]
    nudged = {**scores, "cv_fold_scores": {**folds, "scores": [folds["scores"][0] - 0.01, *folds["scores"][1:]]}}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        first = register(model_dir=model_dir, scores=scores, params=local)
        again = register(model_dir=model_dir, scores=scores, params=local, calibration=scores["calibration"])
        near = register(model_dir=model_dir, scores=nudged, params=local)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    name, alias = local["register"]["model_name"], local["register"]["alias"]
    assert first["decision"] == "promoted"
    assert again["decision"].startswith("refreshed") and not again["gate"]["promote"]
    assert near["decision"] == "kept previous champion"
    assert str(client.get_model_version_by_alias(name, alias).version) == again["challenger_version"]
