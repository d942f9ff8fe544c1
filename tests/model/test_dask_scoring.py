"""Monitoring batch scoring in chunks on a Dask LocalCluster (the champion reopened from its bundle in each
worker) gives the local path's predictions, drift features and novelty embeddings, file for file."""

from __future__ import annotations

import copy
import shutil

import numpy as np
import pandas as pd
import pytest
from distributed import LocalCluster

from monitoring.batch import discover
from monitoring.scoring import load_scoring_model, score_chunks
from musicgenre.cluster import SCHEDULER_ENV

pytestmark = pytest.mark.slow


def test_batch_scoring_on_dask_equals_the_local_path(registry, modern_clips, tmp_path, monkeypatch):
    params = copy.deepcopy(registry["params"])
    params["scale"]["batch_tracks"] = 2  # 5 files -> 3 chunks
    for clip in modern_clips[::20][:4]:
        shutil.copy2(clip, tmp_path / clip.name)
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really audio")
    files, _ = discover(folder=tmp_path, extensions=params["predict"]["extensions"])
    champion = load_scoring_model(params=params, tracking_uri=registry["uri"])
    local = score_chunks(files=files, params=params, champion=champion)
    with LocalCluster(**params["orchestration"]["dask"]["cluster_kwargs"]) as cluster:
        monkeypatch.setenv(SCHEDULER_ENV, cluster.scheduler_address)
        params["orchestration"]["task_runner"] = "dask"
        dask = score_chunks(files=files, params=params, champion=champion)
    assert [f.key for f in dask.kept] == [f.key for f in local.kept] and len(local.kept) == 4
    assert [r.key for r in dask.rejected] == [r.key for r in local.rejected] == ["broken.wav"]
    # ONNX Runtime's thread pools differ between this process and a Dask worker, so the float sums may
    # differ in the last bits (seen: 4e-10); the genres and the probabilities to 1e-6 must not
    np.testing.assert_allclose(dask.proba, local.proba, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(dask.proba.argmax(axis=1), local.proba.argmax(axis=1))
    np.testing.assert_array_equal(dask.embeddings, local.embeddings)
    pd.testing.assert_frame_equal(dask.features, local.features, check_exact=True)
