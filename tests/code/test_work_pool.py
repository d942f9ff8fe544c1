"""The scaled-up orchestration form: `python -m flows.deploy` registers the scheduled deployments on a
process work pool of a real Prefect server, and a real `prefect worker start` process, started in the
throw-away workspace as a worker machine would be in its checkout, picks up a triggered run."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment

from musicgenre.config import load_params
from tests.helpers import TIMEOUT_S, stop_process
from tests.workspace import run_dvc

pytestmark = pytest.mark.slow
POLL_S = "2"  # the worker's poll interval (default 10 s): keeps the test short


@pytest.fixture(scope="module")
def environment(server, workspace) -> dict[str, str]:
    return {
        **os.environ,
        "PREFECT_API_URL": server,
        "MUSICGENRE_ROOT": str(workspace),
        "PREFECT_WORKER_QUERY_SECONDS": POLL_S,
    }


@pytest.fixture(scope="module")
def deployed(environment, workspace) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flows.deploy"],
        cwd=workspace,
        env=environment,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


@pytest.fixture(scope="module")
def worker(deployed, environment, workspace):
    pool = load_params(workspace / "params.yaml")["orchestration"]["work_pool"]["name"]
    process = subprocess.Popen(
        [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool],
        cwd=workspace,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield process
    stop_process(process)


async def _pool_deployments(pool: str) -> dict:
    async with get_client() as client:
        return {d.name: d for d in await client.read_deployments() if d.work_pool_name == pool}


def test_deploy_registers_both_schedules_on_the_work_pool(deployed, workspace):
    assert deployed.returncode == 0, deployed.stderr[-2000:]
    settings = load_params(workspace / "params.yaml")["orchestration"]
    found = asyncio.run(_pool_deployments(settings["work_pool"]["name"]))
    for spec in settings["deployments"].values():
        assert [s.schedule.cron for s in found[spec["name"]].schedules] == [spec["cron"]]
        assert found[spec["name"]].entrypoint.startswith("flows.")  # imported from the worker's checkout


def test_a_worker_runs_a_triggered_training_run(worker, workspace):
    settings = load_params(workspace / "params.yaml")["orchestration"]
    flow_run = run_deployment(
        f"training/{settings['deployments']['training']['name']}", parameters={"stages": ["ingest"]}, timeout=TIMEOUT_S
    )
    assert flow_run.state.is_completed(), flow_run.state.message
    assert flow_run.work_pool_name == settings["work_pool"]["name"] and worker.poll() is None
    assert json.loads(run_dvc(workspace, "status", "--json", "ingest").stdout or "{}") == {}
    assert (workspace / "artifacts" / "ingest" / "manifest.csv").is_file()


def test_deploy_without_a_server_says_what_to_set(workspace):
    environment = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "flows.deploy"],
        cwd=workspace,
        env=environment,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert result.returncode == 2 and "PREFECT_API_URL" in result.stderr
