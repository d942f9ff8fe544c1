"""Registry round trip in a temporary sqlite registry: promotion rule, records, champion pyfunc."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from musicgenre.evaluation import proba_columns
from musicgenre.registry import choose_champion, load_champion, register


def test_better_challenger_promoted_worse_one_not(registry):
    metric = registry["params"]["register"]["metric"]
    good, bad = (registry["scores"][m]["valid"][metric] for m in ("lr", "chance"))
    assert good > bad, "precondition: the real model must beat the shuffled-label one on valid"
    first, second, third = registry["records"]
    assert first["decision"] == "promoted" and first["previous_version"] is None
    assert second["decision"] == "promoted" and second["previous_version"] == first["challenger_version"]
    assert second["previous_score"] == pytest.approx(bad) and second["challenger_score"] == pytest.approx(good)
    assert third["decision"] == "kept previous champion"
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
    assert {"git_commit", "data_md5", "valid_fingerprint"} <= set(run.data.tags)
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


def test_champion_scored_on_other_data_is_rescored_on_current_valid_audio(registry, gtzan_manifest):
    """Same model re-registered with different evaluation data: both re-scored, equal, champion kept."""
    split = pd.read_parquet(registry["good_dir"] / "predictions.parquet").query("split == 'valid'")
    valid = split.merge(gtzan_manifest[["track", "abs_path"]], on="track").head(5)
    valid = valid.assign(path=valid["abs_path"].astype(str))[["track", "genre", "path"]]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", registry["uri"])
        record = register(
            model_dir=registry["good_dir"],
            scores=registry["scores"]["lr"],
            params=registry["params"],
            valid=valid,
            hashes={track: "other-audio" for track in valid["track"]},
        )
    assert (
        record["basis"].startswith("re-scored")
        and record["previous_version"] == registry["records"][1]["challenger_version"]
    )
    assert record["previous_score"] == pytest.approx(record["challenger_score"])
    assert record["decision"] == "kept previous champion"


def test_choose_champion_uses_valid_never_test():
    metrics = {
        "a": {"grouped": {"valid": {"macro_f1": 0.6, "log_loss": 1.0}, "test": {"macro_f1": 0.9}}},
        "b": {
            "grouped": {"valid": {"macro_f1": 0.7, "log_loss": 1.2}, "test": {"macro_f1": 0.1}},
            "random": {"valid": {"macro_f1": 0.99, "log_loss": 0.1}},
        },
    }
    assert choose_champion(metrics=metrics, protocol="grouped", metric="macro_f1") == "b"
