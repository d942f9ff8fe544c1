"""Fixtures of the orchestration tests: a throw-away 10-track workspace and a real Prefect server."""

from __future__ import annotations

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows.serve import local_server
from musicgenre import datasource
from musicgenre.config import load_params
from tests.helpers import TIMEOUT_S, free_port
from tests.workspace import make_source, make_workspace


@pytest.fixture(scope="module")
def workspace(gtzan_manifest, tmp_path_factory):
    base = tmp_path_factory.mktemp("deploy")
    rows = gtzan_manifest.sort_values("track").groupby("genre").head(1)  # ingest of 10 tracks is the fast run
    ws = make_workspace(base / "ws", source=make_source(rows, base / "src"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MUSICGENRE_ROOT", str(ws))
        datasource.sync(load_params(ws / "params.yaml"), root=ws)
    return ws


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect-home")
    with local_server(
        host="127.0.0.1", port=free_port(), timeout_s=TIMEOUT_S, env={"PREFECT_HOME": str(home)}
    ) as api_url:
        with temporary_settings({PREFECT_API_URL: api_url}):
            yield api_url
