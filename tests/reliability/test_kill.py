"""Nothing half-written: SIGKILL to a running `python -m stages.featurize` in a throw-away DVC
workspace leaves no partial features artifact that DVC would record; the next run completes and
equals a clean extraction."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest

from musicgenre import datasource
from musicgenre.config import load_params
from musicgenre.extraction import Limits, extract_batch, to_tables
from musicgenre.features import FeatureConfig
from tests.workspace import make_source, make_workspace, run_dvc

pytestmark = pytest.mark.slow
START_TIMEOUT_S = 120  # the subprocess imports librosa and starts its worker pool (slow on a busy host)


@pytest.fixture(scope="module")
def workspace(gtzan_manifest, tmp_path_factory):
    """A workspace with ingest and validate done on four real tracks."""
    base = tmp_path_factory.mktemp("kill")
    source = make_source(gtzan_manifest.sort_values("track").head(4), base / "source")
    folder = make_workspace(base / "ws", source=source, overrides={"features.n_jobs": 2, "data.n_jobs": 2})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MUSICGENRE_ROOT", str(folder))
        datasource.sync(load_params(folder / "params.yaml"), root=folder)
    run_dvc(folder, "repro", "validate")
    return folder


def start_featurize(folder: Path) -> subprocess.Popen:
    env = {**os.environ, "MUSICGENRE_ROOT": str(folder)}
    return subprocess.Popen(
        [sys.executable, "-m", "stages.featurize"],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def wait_until(condition, *, process: subprocess.Popen, poll_s: float) -> bool:
    """Poll until `condition()` holds; False if the process ended first or the timeout passed."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        if condition():
            return True
        time.sleep(poll_s)
    return False


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the stage and its worker processes (its own session), as an OOM killer or a crash would."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def workers_started(process: subprocess.Popen) -> bool:
    return any("loky" in " ".join(child.cmdline()) for child in psutil.Process(process.pid).children(recursive=True))


def clean_features(folder: Path) -> pd.DataFrame:
    """The same tracks extracted in this process: what an uninterrupted run must produce."""
    params = load_params(folder / "params.yaml")
    tracks = pd.read_csv(folder / params["paths"]["tracks"])
    config = FeatureConfig.from_params(params)
    results, failures = extract_batch(
        [(t, folder / p) for t, p in zip(tracks["track"], tracks["path"])],
        config=config,
        limits=Limits.from_params(params),
        n_jobs=1,
        show_progress=False,
    )
    assert not failures
    table, _, _ = to_tables(results, config)
    return table.sort_values(["track", "segment"]).reset_index(drop=True)


def test_kill_during_extraction_leaves_nothing_and_rerun_matches(workspace):
    params = load_params(workspace / "params.yaml")
    features_dir = workspace / params["paths"]["features_dir"]
    process = start_featurize(workspace)
    assert wait_until(lambda: workers_started(process), process=process, poll_s=0.05), "workers never started"
    time.sleep(1.0)  # let the workers decode and extract for a moment
    kill_group(process)
    assert not features_dir.exists(), f"partial output after the kill: {list(features_dir.rglob('*'))}"
    status = run_dvc(workspace, "status", "featurize").stdout
    assert "featurize" in status and "deleted" in status  # DVC sees a stage to run, not a corrupt out
    run_dvc(workspace, "repro", "featurize")
    assert "featurize" not in run_dvc(workspace, "status", "featurize").stdout
    produced = pd.read_parquet(workspace / params["paths"]["features"]).drop(columns="genre")
    produced = produced.sort_values(["track", "segment"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(produced, clean_features(workspace), check_exact=False, rtol=1e-5)
    logmel = np.load(workspace / params["paths"]["logmel"])
    assert len(logmel) == len(pd.read_parquet(workspace / params["paths"]["logmel_index"]))


def read_set(folder: Path, params: dict) -> dict:
    """Every file of the features out, fully parsed (a half-written file would raise)."""
    return {
        "features": pd.read_parquet(folder / Path(params["paths"]["features"]).name),
        "logmel": np.load(folder / Path(params["paths"]["logmel"]).name),
        "index": pd.read_parquet(folder / Path(params["paths"]["logmel_index"]).name),
        "summary": json.loads((folder / "summary.json").read_text()),
        "names": sorted(os.listdir(folder)),
    }


def test_kill_while_publishing_keeps_a_complete_set(workspace, monkeypatch):
    """Killed while the new set is being written: the folder holds one complete set (or is absent,
    which DVC reports as deleted), and the hidden temp folder is cleared by the next run."""
    from stages.featurize import featurize

    params = load_params(workspace / "params.yaml")
    features_dir = workspace / params["paths"]["features_dir"]
    run_dvc(workspace, "repro", "featurize")  # a previous complete set (a no-op after the test above)
    prefix = f".{features_dir.name}."
    temp = lambda: [p for p in features_dir.parent.iterdir() if p.name.startswith(prefix)]  # noqa: E731
    for _attempt in range(3):  # the publish window is short: on a fast idle machine try again
        before = read_set(features_dir, params)
        process = start_featurize(workspace)
        caught = wait_until(lambda: bool(temp()), process=process, poll_s=0.0005)
        if caught:
            break
        process.wait()
    assert caught, "featurize finished before its temp folder was seen: the kill did not land mid-publish"
    kill_group(process)
    if features_dir.exists():  # killed before the swap: the previous complete set, byte for byte
        after = read_set(features_dir, params)
        assert after["names"] == before["names"] and after["summary"] == before["summary"]
        pd.testing.assert_frame_equal(after["features"], before["features"])
        assert np.array_equal(after["logmel"], before["logmel"])
        assert "featurize" not in run_dvc(workspace, "status", "featurize").stdout
    else:  # killed between the two renames: absent, never partial
        assert "deleted" in run_dvc(workspace, "status", "featurize").stdout
    monkeypatch.setenv("MUSICGENRE_ROOT", str(workspace))
    featurize(params)  # the next run publishes a full set and clears the dead writer's temp folder
    assert not temp(), f"temp folders left behind: {temp()}"
    pd.testing.assert_frame_equal(read_set(features_dir, params)["features"], before["features"])
