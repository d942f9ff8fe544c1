"""The training flow on a small real GTZAN slice, in a throw-away git + DVC workspace, against a real
(temporary) Prefect server: it runs the dvc.yaml stages in-process and leaves `dvc status` clean."""

from __future__ import annotations

import asyncio
import json

import pandas as pd
import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.sorting import ArtifactSort
from prefect.testing.utilities import prefect_test_harness

from flows.dvc_state import stage_layers
from flows.report import metric_rows
from flows.training import training
from musicgenre import datasource
from musicgenre.config import load_params
from tests.workspace import make_source, make_workspace, run_dvc

pytestmark = pytest.mark.slow
# 4 tracks per genre is the smallest slice the artist-grouped split can cut with 25 % test / 25 % valid;
# two fast models train in parallel (one DAG layer); a 2-fold single-repeat CV in evaluate keeps the run short.
OVERRIDES = {
    "features.n_jobs": 2,
    "split.test_size": 0.25,
    "split.valid_size": 0.25,
    "models.names": ["lr_bagging", "knn_bagging"],
    "evaluate.cv_folds": 2,
    "evaluate.cv_repeats": 1,
    "orchestration.retry_backoff_s": 1,
}


@pytest.fixture(scope="module")
def prefect_api():
    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture(scope="module")
def workspace(gtzan_manifest, tmp_path_factory):
    base = tmp_path_factory.mktemp("flow")
    rows = gtzan_manifest.sort_values("track").groupby("genre").head(4)
    ws = make_workspace(base / "ws", source=make_source(rows, base / "src"), overrides=OVERRIDES)
    with pytest.MonkeyPatch.context() as patch:  # data.source is relative to the workspace
        patch.setenv("MUSICGENRE_ROOT", str(ws))
        datasource.sync(load_params(ws / "params.yaml"), root=ws)
    return ws


@pytest.fixture()
def in_workspace(workspace, monkeypatch, prefect_api):
    monkeypatch.setenv("MUSICGENRE_ROOT", str(workspace))
    return workspace


async def _artifact(key: str):
    async with get_client() as client:
        found = await client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])), sort=ArtifactSort.CREATED_DESC, limit=1
        )
    return found[0] if found else None


def test_flow_runs_every_stage_and_leaves_dvc_clean(in_workspace):
    state = training(return_state=True)
    assert state.is_completed(), state.message
    done = state.result()
    expected = [stage for layer in stage_layers(in_workspace) for stage in layer]
    assert [step["stage"] for step in done] == expected and {s["action"] for s in done} == {"ran"}
    assert json.loads(run_dvc(in_workspace, "status", "--json").stdout or "{}") == {}
    lock = yaml.safe_load((in_workspace / "dvc.lock").read_text())["stages"]
    assert set(expected) <= set(lock)
    params = load_params(in_workspace / "params.yaml")
    features = pd.read_parquet(in_workspace / params["paths"]["features"])
    tracks = pd.read_csv(in_workspace / params["paths"]["tracks"])
    assert set(features["track"]) == set(tracks["track"])
    report = asyncio.run(_artifact("training-run"))
    assert report is not None and "Completed" in report.data and "featurize" in report.data


def test_second_run_skips_what_dvc_finds_up_to_date(in_workspace):
    done = training()
    assert done and {step["action"] for step in done} == {"skipped"}
    assert json.loads(run_dvc(in_workspace, "status", "--json").stdout or "{}") == {}


def test_a_failure_names_the_stage_and_the_reason(in_workspace):
    params_file = in_workspace / "params.yaml"
    original = params_file.read_text()
    params = yaml.safe_load(original)
    params["features"]["hop_length"] //= 2  # featurize is no longer up to date ...
    params["orchestration"]["task_runner"] = "ray"  # ... and its task runner does not exist
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        state = training(return_state=True)
    finally:
        params_file.write_text(original)
    assert state.is_failed()
    assert "stage featurize failed" in state.message and "task_runner" in state.message
    report = asyncio.run(_artifact("training-run"))
    assert "stage featurize failed" in report.data


def test_metric_rows_flatten_the_evaluate_report():
    metrics = {"svm": {"grouped": {"valid": {"macro_f1": 0.51234, "accuracy": 0.5}, "test": {"macro_f1": 0.4}}}}
    assert metric_rows(metrics) == [
        {"model": "svm", "protocol": "grouped", "valid_macro_f1": 0.5123, "valid_accuracy": 0.5, "test_macro_f1": 0.4}
    ]
    assert metric_rows(None) == []
