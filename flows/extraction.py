"""Feature extraction as a Prefect task map over tracks, on the task runner params choose:
threads on this machine, or a Dask cluster (an existing scheduler, else a LocalCluster)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from prefect import task, unmapped
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from threadpoolctl import threadpool_limits

from musicgenre.audio import AudioError
from musicgenre.cluster import SCHEDULER_ENV, scheduler_address  # noqa: F401 (SCHEDULER_ENV: callers set it)
from musicgenre.errors import ConfigError
from musicgenre.extraction import Failure, Limits, TrackFeatures, extract_file
from musicgenre.features import FeatureConfig


def task_runner(params: dict[str, Any]) -> TaskRunner:
    """orchestration.task_runner: `local` (threads) or `dask` ($DASK_SCHEDULER_ADDRESS, dask.address,
    or a LocalCluster)."""
    settings = params["orchestration"]
    kind = settings["task_runner"]
    if kind == "local":
        return ThreadPoolTaskRunner(max_workers=settings["local_workers"])
    if kind == "dask":
        from prefect_dask import DaskTaskRunner  # imported only when chosen: distributed is heavy

        address = scheduler_address(params)
        if address:
            return DaskTaskRunner(address=address)
        return DaskTaskRunner(
            cluster_class="distributed.LocalCluster", cluster_kwargs=settings["dask"]["cluster_kwargs"]
        )
    raise ConfigError(f"orchestration.task_runner must be local or dask, not {kind!r}")


# No Prefect result caching: the features are large and DVC caches across runs.
@task(name="extract-track", task_run_name="extract {key}", cache_policy=NO_CACHE, persist_result=False)
def extract_track(path: str, key: str, config: FeatureConfig, limits: Limits) -> TrackFeatures | Failure:
    """One track; a bad file becomes a named Failure so the rest of the map goes on."""
    try:
        return extract_file(path, key=key, config=config, limits=limits)
    except AudioError as exc:
        return Failure(key=key, path=str(path), reason=exc.reason)


def map_extraction(
    items: list[tuple[str, Path]], *, config: FeatureConfig, limits: Limits, runner: TaskRunner, retries: int = 0
) -> tuple[list[TrackFeatures], list[Failure]]:
    """Map extract_track over (track, path) pairs on `runner`; results keep the input order."""
    mapped = extract_track.with_options(retries=retries)
    # One BLAS thread per extraction, as joblib and Dask workers have: the same summation order, the same
    # features bit for bit (multi-threaded BLAS changes the last digits) and no oversubscription.
    with threadpool_limits(limits=1), runner:
        # Prefect types TaskRunner.map for any task shape; a sync task's return type does not fit its bound
        futures = runner.map(
            mapped,  # type: ignore[arg-type,misc]
            parameters={
                "path": [str(path) for _, path in items],
                "key": [key for key, _ in items],
                "config": unmapped(config),
                "limits": unmapped(limits),
            },
        )
        outcomes = cast(list[TrackFeatures | Failure], futures.result())
    results = [outcome for outcome in outcomes if isinstance(outcome, TrackFeatures)]
    return results, [outcome for outcome in outcomes if isinstance(outcome, Failure)]
