"""Shared fixtures: the real shared data, small real slices of it, the project's params, and the
pipeline's artifacts for the tests that read them.

A test that reads the checkout's artifacts (features, log-mel, splits, embeddings, or a model trained on
them) requests `pipeline_artifacts`, directly or through a fixture (`grouped`, `registry`, ...). Such a
test is marked `artifacts` here at collection, so `make test-fast` (`-m "not slow and not artifacts"`)
runs every other test without a single DVC call."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

for _name, _value in {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "DVC_NO_ANALYTICS": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "ORT_DISABLE_TELEMETRY": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
}.items():
    os.environ.setdefault(_name, _value)

from musicgenre.config import PROJECT_ROOT, load_params  # noqa: E402
from tests.helpers import CROSS_HOST_LINES, GTZAN, MODERN, host_description  # noqa: E402

ARTIFACTS = "pipeline_artifacts"


def pytest_report_header() -> str:
    return f"host: {host_description()}"


def pytest_terminal_summary(terminalreporter) -> None:
    """The cross-host deep CV comparison, also when it passes (CI's log is the record of the other host)."""
    for line in CROSS_HOST_LINES:
        terminalreporter.write_line(f"cross-host check: {line}")


@pytest.fixture(scope="session")
def params() -> dict:
    return load_params()


@pytest.fixture(scope="session")
def pipeline_artifacts() -> None:
    """The checkout's real foundation artifacts (features, log-mel, splits, embeddings, base patches), which the
    model and monitoring tests read. On a fresh clone DVC brings the data in and builds them from
    the shared GTZAN; when they are up to date this is DVC's no-op."""
    from musicgenre import datasource
    from tests.workspace import run_dvc

    datasource.sync(load_params(), root=PROJECT_ROOT)
    run_dvc(PROJECT_ROOT, "repro", "split", "embed", "embed_patches")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that (transitively) requests the artifacts `artifacts`."""
    for item in items:
        if ARTIFACTS in getattr(item, "fixturenames", []):
            item.add_marker(pytest.mark.artifacts)


@pytest.fixture(scope="session")
def gtzan_manifest() -> pd.DataFrame:
    """The shared GTZAN subset's own manifest (with `origin`: native or upsampled from 16 kHz)."""
    if not GTZAN.exists():
        pytest.fail(f"shared data missing at {GTZAN}; set MUSICGENRE_SHARED_DATA")
    manifest = pd.read_csv(GTZAN / "manifest.csv", dtype={"artist_group": str})
    manifest["abs_path"] = [GTZAN / f for f in manifest["file"]]
    return manifest


@pytest.fixture(scope="session")
def gtzan_slice(gtzan_manifest) -> pd.DataFrame:
    """Three real tracks per genre (30 tracks), the first by track id."""
    return gtzan_manifest.sort_values("track").groupby("genre").head(3).reset_index(drop=True)


@pytest.fixture(scope="session")
def modern_clips() -> list[Path]:
    return sorted(MODERN.rglob("*.ogg"))
