"""The expensive steps on a Dask LocalCluster give what the local path gives: the embed stage's chunked
tagger embeddings and evaluate's cross-validation fits (joblib's dask backend), on the real artifacts."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from distributed import LocalCluster

from musicgenre.chunked import extract_tracks
from musicgenre.cluster import SCHEDULER_ENV, chunked, runner_kind
from musicgenre.errors import ConfigError
from musicgenre.extraction import Limits
from stages.embed import tagger_ref
from stages.evaluate import cross_validation


@pytest.fixture(scope="module")
def cluster(params):
    with LocalCluster(**params["orchestration"]["dask"]["cluster_kwargs"]) as local:
        yield local


def on_dask(params: dict, *, batch_tracks: int) -> dict:
    """params with task_runner dask and small chunks (several tasks even for a few tracks)."""
    changed = copy.deepcopy(params)
    changed["orchestration"]["task_runner"] = "dask"
    changed["scale"]["batch_tracks"] = batch_tracks
    return changed


@pytest.mark.slow
def test_embed_in_chunks_on_dask_equals_the_local_path(params, pipeline_artifacts, gtzan_slice, cluster, monkeypatch):
    items = [(track, str(path)) for track, path in zip(gtzan_slice["track"][:5], gtzan_slice["abs_path"][:5])]
    items.append(("broken", "/nonexistent/broken.flac"))
    settings = {"config": None, "limits": Limits.from_params(params), "embedding": tagger_ref(params)}
    local, local_failed = extract_tracks(items, params=params, n_jobs=params["data"]["n_jobs"], **settings)
    monkeypatch.setenv(SCHEDULER_ENV, cluster.scheduler_address)
    dask, dask_failed = extract_tracks(items, params=on_dask(params, batch_tracks=2), n_jobs=1, **settings)
    assert [r.key for r in dask] == [r.key for r in local] == [key for key, _ in items[:5]]  # input order
    for ours, theirs in zip(dask, local):
        np.testing.assert_array_equal(ours.tagger_embedding(), theirs.tagger_embedding())  # bit for bit
    assert [f.key for f in dask_failed] == [f.key for f in local_failed] == ["broken"]


@pytest.mark.slow
def test_cross_validation_fits_on_dask_equal_the_local_path(params, pipeline_artifacts, cluster, monkeypatch):
    small = copy.deepcopy(params)
    # deep left out of the CV families here: cnn is then skipped on both paths
    small["evaluate"].update(cv_folds=3, cv_repeats=1, cv_families=["classic", "transfer"])
    models = ["knn_bagging", "transfer_logreg", "cnn"]
    local, local_skipped = cross_validation(small, models=models)
    monkeypatch.setenv(SCHEDULER_ENV, cluster.scheduler_address)
    dask, dask_skipped = cross_validation(on_dask(small, batch_tracks=1), models=models)
    assert sorted(dask) == sorted(local) == ["knn_bagging", "transfer_logreg"] and dask_skipped == local_skipped
    for model in local:
        pd.testing.assert_frame_equal(dask[model], local[model], check_exact=True)


def test_chunks_keep_order_and_bad_settings_are_refused(params):
    assert chunked(list(range(7)), size=3) == [[0, 1, 2], [3, 4, 5], [6]]
    with pytest.raises(ConfigError, match="batch_tracks"):
        chunked([1], size=0)
    with pytest.raises(ConfigError, match="task_runner"):
        runner_kind({**params, "orchestration": {**params["orchestration"], "task_runner": "spark"}})
