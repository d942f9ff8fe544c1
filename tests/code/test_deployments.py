"""The scheduled deployments on a real `prefect server start --host 127.0.0.1` subprocess, served by a
real `python -m flows.serve` process in a throw-away workspace: listed with their cron schedules,
one triggered through the API runs to Completed, and the schedules stay active after the serve stops."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment

from musicgenre.config import load_params
from tests.helpers import TIMEOUT_S, stop_process
from tests.workspace import run_dvc

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def serving(server, workspace):
    """`python -m flows.serve` in the workspace against the server; stopped (SIGINT, then kill) at the end."""
    env = {**os.environ, "PREFECT_API_URL": server, "MUSICGENRE_ROOT": str(workspace)}
    process = subprocess.Popen(
        [sys.executable, "-m", "flows.serve"],
        cwd=workspace,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield process
    stop_process(process, sig=signal.SIGINT)


async def _deployments(expected: int) -> list:
    deadline = time.monotonic() + TIMEOUT_S
    async with get_client() as client:
        while time.monotonic() < deadline:
            found = await client.read_deployments()
            if len(found) >= expected:
                return found
            await asyncio.sleep(1)
    raise TimeoutError(f"{expected} deployments not registered within {TIMEOUT_S} s")


def test_both_deployments_are_listed_with_their_cron_schedules(serving, workspace):
    wanted = load_params(workspace / "params.yaml")["orchestration"]["deployments"]
    found = {d.name: d for d in asyncio.run(_deployments(2))}
    for spec in wanted.values():
        deployment = found[spec["name"]]
        assert [s.schedule.cron for s in deployment.schedules] == [spec["cron"]]
        assert all(s.active for s in deployment.schedules) and not deployment.paused


def test_a_triggered_training_run_completes_and_commits_its_stage(serving, workspace):
    name = load_params(workspace / "params.yaml")["orchestration"]["deployments"]["training"]["name"]
    asyncio.run(_deployments(2))
    flow_run = run_deployment(f"training/{name}", parameters={"stages": ["ingest"]}, timeout=TIMEOUT_S)
    assert flow_run.state.is_completed(), flow_run.state.message
    assert json.loads(run_dvc(workspace, "status", "--json", "ingest").stdout or "{}") == {}
    assert (workspace / "artifacts" / "ingest" / "manifest.csv").is_file()


def test_schedules_stay_active_after_the_serve_process_stops(serving):
    serving.send_signal(signal.SIGINT)
    serving.wait(timeout=60)  # the graceful stop, even when the suite runs as a background job (SIGINT ignored)
    found = asyncio.run(_deployments(2))
    assert all(s.active for d in found for s in d.schedules) and not any(d.paused for d in found)
