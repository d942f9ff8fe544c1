"""Every model of a pipeline run as an MLflow child run under one parent, in the registry's experiment."""

from __future__ import annotations

import copy

import pytest
from mlflow.tracking import MlflowClient

from musicgenre.tracking import log_pipeline_runs
from tests.workspace import local_registry


def test_children_under_one_parent_with_metrics_and_figures(params, tmp_path, monkeypatch):
    uri, local = local_registry(copy.deepcopy(params), tmp_path)
    local["evaluate"]["report_dir"] = str(tmp_path / "eval")
    (tmp_path / "eval" / "figures").mkdir(parents=True)
    (tmp_path / "eval" / "figures" / "svm_grouped.png").write_bytes(b"\x89PNG fake")
    metrics = {
        "svm": {
            "grouped": {"cv_macro_f1_mean": 0.6, "ece": 0.08, "test": {"accuracy": 0.55}},
            "random": {"test": {"accuracy": 0.8}},
        },
        "cnn": {"grouped": {"test": {"accuracy": 0.3}}},
    }
    selection = {"champion": "svm", "nested": {"macro_f1_mean": 0.58, "chosen": {"svm": 15}}}
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    parent = log_pipeline_runs(params=local, metrics=metrics, selection=selection, uri=uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.get_experiment_by_name(local["register"]["experiment"])
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {"pipeline", "svm-grouped", "svm-random", "cnn-grouped"}
    assert runs["pipeline"].info.run_id == parent and runs["pipeline"].data.metrics["nested_macro_f1_mean"] == 0.58
    children = [r for name, r in runs.items() if name != "pipeline"]
    assert all(r.data.tags["mlflow.parentRunId"] == parent for r in children)
    svm = runs["svm-grouped"].data
    assert svm.metrics["cv_macro_f1_mean"] == pytest.approx(0.6) and svm.metrics["test_accuracy"] == pytest.approx(0.55)
    assert svm.params["model.family"] == params["models"]["svm"]["family"]
    assert [a.path for a in client.list_artifacts(runs["svm-grouped"].info.run_id, "figures")] == [
        "figures/svm_grouped.png"
    ]
    assert not client.search_registered_models()  # logged, never registered
