"""The scaled-up form of `make serve`: the same two scheduled deployments registered on a work pool
of a Prefect server, run by workers (`prefect worker start --pool <pool>`) on any machine holding a
checkout of this project and its environment.

`python -m flows.deploy` (`make deploy`) needs $PREFECT_API_URL (the team's server). It creates the
work pool (orchestration.work_pool) when missing and points each deployment at the flows by module
path (flows.training:training), so a worker imports them from its own installed checkout: nothing is
uploaded. A worker's flow runs find the project like every other entry point (the worker's current
folder, or $MUSICGENRE_ROOT)."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any, cast
from uuid import UUID

from prefect import deploy
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.deployments.runner import EntrypointType
from prefect.exceptions import ObjectAlreadyExists

from flows.serve import deployments
from musicgenre.config import load_params


async def ensure_work_pool(*, name: str, type: str) -> None:
    """Create the work pool unless it exists (a pool managed elsewhere is left as it is)."""
    async with get_client() as client:
        try:
            await client.create_work_pool(WorkPoolCreate(name=name, type=type))
        except ObjectAlreadyExists:
            pass


def deploy_to_work_pool(params: dict[str, Any]) -> list[UUID]:
    """Register both deployments on orchestration.work_pool; returns their ids."""
    pool = params["orchestration"]["work_pool"]
    asyncio.run(ensure_work_pool(name=pool["name"], type=pool["type"]))
    # deploy is async-dispatched: called from sync code it returns the ids themselves
    return cast(
        list[UUID],
        deploy(
            *deployments(params, entrypoint_type=EntrypointType.MODULE_PATH),
            work_pool_name=pool["name"],
            build=False,
            push=False,
            print_next_steps_message=False,
        ),
    )


def main() -> int:
    if not os.environ.get("PREFECT_API_URL"):
        print(
            "flows.deploy: set PREFECT_API_URL to the Prefect server the workers poll "
            "(for one machine without workers, `make serve` is the embedded form)",
            file=sys.stderr,
        )
        return 2
    params = load_params()
    ids = deploy_to_work_pool(params)
    pool = params["orchestration"]["work_pool"]["name"]
    print(f"{len(ids)} deployments on work pool {pool!r}; run them with: prefect worker start --pool {pool}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
