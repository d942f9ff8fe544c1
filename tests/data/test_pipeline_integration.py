"""The real foundation pipeline (DVC import → ingest → validate → featurize → validate_features → split)
on a slice of the shared GTZAN, in a throw-away git + DVC repo."""
from __future__ import annotations

import json
import time

import pandas as pd
import pytest

from musicgenre import datasource
from musicgenre.config import load_params
from tests.workspace import make_source, make_workspace, run_dvc

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workspace(gtzan_manifest, tmp_path_factory):
    base = tmp_path_factory.mktemp("pipeline")
    rows = gtzan_manifest.sort_values("track").groupby("genre").head(5)  # 50 tracks, 5 per genre
    source = make_source(rows, base / "source")
    return make_workspace(base / "ws", source=source, overrides={"features.n_jobs": 2, "data.n_jobs": 2})


def test_fresh_clone_gets_data_through_dvc_and_reproduces(workspace, monkeypatch):
    monkeypatch.setenv("MUSICGENRE_ROOT", str(workspace))
    params = load_params(workspace / "params.yaml")
    assert datasource.sync(params, root=workspace).startswith("imported")
    assert datasource.sync(params, root=workspace) == "up to date"  # a second run copies nothing
    run_dvc(workspace, "repro", "split")
    manifest = pd.read_csv(workspace / params["paths"]["manifest"])
    assert len(manifest) == 50 and manifest["artist_group"].notna().any()
    features = pd.read_parquet(workspace / params["paths"]["features"])
    assert features["track"].nunique() == 50 and (features["segment"] == -1).sum() == 50
    splits = pd.read_csv(workspace / params["paths"]["splits"])
    assert (splits.groupby("group")["split_grouped"].nunique() == 1).all()
    summary = json.loads((workspace / params["paths"]["audio_validation"] / "summary.json").read_text())
    assert summary["tracks"] == 50 and summary["failed_errors"] == []
    assert summary["per_genre"] == {genre: 5 for genre in params["genres"]}
    assert list((workspace / params["paths"]["audio_validation"]).rglob("data_docs/local_site/index.html"))
    assert "split" not in run_dvc(workspace, "status", "split").stdout


def test_second_repro_is_a_fast_no_op(workspace):
    started = time.perf_counter()
    result = run_dvc(workspace, "repro", "split")
    assert "didn't change" in result.stdout or "up to date" in result.stdout.lower()
    assert time.perf_counter() - started < 30


def test_push_and_pull_through_the_local_remote(workspace):
    run_dvc(workspace, "push")
    raw = workspace / "data" / "gtzan"
    run_dvc(workspace, "gc", "--workspace", "--force")  # keeps what the workspace uses
    import shutil
    shutil.rmtree(raw)
    shutil.rmtree(workspace / ".dvc" / "cache")
    run_dvc(workspace, "pull", "data.dvc")
    assert len(list(raw.rglob("*.flac"))) == 50
    assert "changed" not in run_dvc(workspace, "status", "data.dvc").stdout
