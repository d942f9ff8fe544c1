"""Feature extraction as a Prefect task map gives the same features on threads, on a 2-worker Dask
cluster and through the `dvc repro` path (joblib processes), on real GTZAN tracks."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from distributed import LocalCluster
from prefect.settings import PREFECT_API_URL
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.testing.utilities import prefect_test_harness

from flows.extraction import SCHEDULER_ENV, map_extraction, task_runner
from musicgenre.extraction import Limits, extract_batch, to_tables
from musicgenre.features import FeatureConfig

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def prefect_api():
    """One real temporary server; Dask workers reach it through the inherited PREFECT_API_URL
    (without it each worker would start a server of its own)."""
    with prefect_test_harness(server_startup_timeout=180), pytest.MonkeyPatch.context() as patch:
        patch.setenv("PREFECT_API_URL", PREFECT_API_URL.value())
        yield


@pytest.fixture(scope="module")
def items(gtzan_slice):
    tracks = gtzan_slice.groupby("genre").head(1).head(4)  # 4 real tracks of 4 genres
    return [(track, path) for track, path in zip(tracks["track"], tracks["abs_path"])]


def test_local_and_dask_task_maps_match_the_dvc_path(items, params, prefect_api, monkeypatch):
    config, limits = FeatureConfig.from_params(params), Limits.from_params(params)
    reference, failed = extract_batch(
        items, config=config, limits=limits, n_jobs=params["features"]["n_jobs"], show_progress=False
    )  # what `dvc repro` runs
    assert not failed
    settings = params["orchestration"]
    started = time.perf_counter()
    local, local_failed = map_extraction(
        items, config=config, limits=limits, runner=ThreadPoolTaskRunner(max_workers=settings["local_workers"])
    )
    local_s = time.perf_counter() - started
    with LocalCluster(**settings["dask"]["cluster_kwargs"]) as cluster:
        monkeypatch.setenv(SCHEDULER_ENV, cluster.scheduler_address)  # the runner params pick: this scheduler
        runner = task_runner({**params, "orchestration": {**settings, "task_runner": "dask"}})
        assert runner.address == cluster.scheduler_address and len(cluster.workers) == 2
        started = time.perf_counter()
        dask, dask_failed = map_extraction(items, config=config, limits=limits, runner=runner)
        dask_s = time.perf_counter() - started
    print(f"extraction of {len(items)} tracks: local threads {local_s:.1f} s, dask 2 workers {dask_s:.1f} s")
    assert not local_failed and not dask_failed
    expected = to_tables(reference, config)
    for results in (local, dask):
        assert [r.key for r in results] == [key for key, _ in items]  # input order kept
        table, log_mel, index = to_tables(results, config)
        pd.testing.assert_frame_equal(table, expected[0], check_exact=True)
        np.testing.assert_array_equal(log_mel, expected[1])
        pd.testing.assert_frame_equal(index, expected[2])


def test_a_bad_file_is_a_named_failure_and_the_map_goes_on(items, params, prefect_api, tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really audio")
    config, limits = FeatureConfig.from_params(params), Limits.from_params(params)
    results, failures = map_extraction(
        [items[0], ("broken", broken)], config=config, limits=limits, runner=ThreadPoolTaskRunner(max_workers=1)
    )
    assert [r.key for r in results] == [items[0][0]]
    assert [f.key for f in failures] == ["broken"] and failures[0].path == str(broken) and failures[0].reason


def test_an_unknown_task_runner_is_refused(params):
    with pytest.raises(ValueError, match="local or dask"):
        task_runner({**params, "orchestration": {**params["orchestration"], "task_runner": "ray"}})
