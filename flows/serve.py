"""Scheduled deployments: weekly retraining and the daily drift check, served by this process.

`python -m flows.serve` (`make serve`) serves them against $PREFECT_API_URL (a team's server), or
when that is unset starts `prefect server start --host 127.0.0.1` first and stops it on exit.
Schedules stay active when this process stops (pause_on_shutdown=False), so a restart resumes them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Any, Iterator, cast

import httpx
from prefect import serve
from prefect.deployments.runner import RunnerDeployment
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows.drift import drift_check
from flows.training import training
from musicgenre.config import load_params


def deployments(params: dict[str, Any], **options: Any) -> list[RunnerDeployment]:
    """The two scheduled deployments, names and cron from orchestration.deployments; `options` go to
    Flow.to_deployment (flows.deploy uses them for the work-pool form)."""
    settings = params["orchestration"]["deployments"]
    made = [
        training.to_deployment(
            name=settings["training"]["name"],
            cron=settings["training"]["cron"],
            description="retrain: dvc.yaml stages, skipping what DVC finds up to date",
            **options,
        ),
        drift_check.to_deployment(
            name=settings["drift"]["name"],
            cron=settings["drift"]["cron"],
            description="drift of recent predictions against the training reference",
            **options,
        ),
    ]
    # to_deployment is async-dispatched: called from sync code it returns the deployment itself
    return [cast(RunnerDeployment, deployment) for deployment in made]


def wait_healthy(api_url: str, *, timeout_s: float) -> None:
    """Poll <api>/health until the server answers; raise naming the URL if it never does."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"Prefect server at {api_url} not healthy after {timeout_s} s")


@contextmanager
def local_server(*, host: str, port: int, timeout_s: float, env: dict[str, str] | None = None) -> Iterator[str]:
    """A real `prefect server start` subprocess on host:port; yields its API URL and stops it on exit."""
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port)]
    process = subprocess.Popen(
        command, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    api_url = f"http://{host}:{port}/api"
    try:
        wait_healthy(api_url, timeout_s=timeout_s)
        yield api_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> None:
    # Started as a background job (`nohup ... &`, or by a process that was), Python inherits SIGINT ignored and
    # the Ctrl-C / `kill -INT` shutdown never arrives; serve's graceful stop is its KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    params = load_params()
    if os.environ.get("PREFECT_API_URL"):  # a team's server: serve against it
        serve(*deployments(params), pause_on_shutdown=False)
        return
    server = params["orchestration"]["server"]
    with local_server(host=server["host"], port=server["port"], timeout_s=server["start_timeout_s"]) as api_url:
        print(f"Prefect server and UI at {api_url.removesuffix('/api')}", flush=True)
        with temporary_settings({PREFECT_API_URL: api_url}):
            serve(*deployments(params), pause_on_shutdown=False)


if __name__ == "__main__":
    main()
