"""The training flow: every dvc.yaml stage, in DAG order, as a Prefect task calling the same stage
function `dvc repro` runs. A stage whose `dvc status` is clean is skipped; one that ran is recorded with
`dvc commit --force`, so dvc.lock ends as `dvc repro` would leave it. Stages of one DAG layer (train@*)
run in parallel, at most orchestration.max_parallel_stages at once."""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Any, Callable

from dvc.lock import LockError
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.tasks import exponential_backoff

from flows import dvc_state
from flows.extraction import map_extraction, task_runner
from flows.report import publish_report
from musicgenre import datasource
from musicgenre.config import load_params, project_root
from musicgenre.errors import ConfigError, GenreError
from stages.table import lookup

# What may pass on a second try: I/O hiccups, a busy DVC lock. Anything else fails at once.
TRANSIENT = (OSError, TimeoutError, LockError)


class StageFailed(GenreError, RuntimeError):
    """A stage of the flow failed; the message names the stage and the reason."""

    def __init__(self, stage: str, reason: str, *, transient: bool):
        super().__init__(f"stage {stage} failed: {reason}")
        self.stage, self.reason, self.transient = stage, reason, transient


def stage_function(stage: str, params: dict[str, Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The function of `stage` in stages.table (`train@svm` -> train with model="svm"); featurize gets the
    flow's track map on the task runner params choose (the same stage function `dvc repro` runs)."""
    try:
        row, item = lookup(stage)
        function = row.function()
    except (ConfigError, ImportError) as exc:
        raise StageFailed(stage, str(exc), transient=False) from exc
    if row.name == "featurize":
        function = partial(
            function,
            extractor=partial(
                map_extraction, runner=task_runner(params), retries=params["orchestration"]["extract_retries"]
            ),
        )
    if row.foreach:
        function = partial(function, **{row.foreach: item})
    return function


def _retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry what may pass next time (TRANSIENT); not a deliberate GenreError, a bug or a missing stage."""
    error = state.result(raise_on_failure=False)
    return isinstance(error, TRANSIENT) or (isinstance(error, StageFailed) and error.transient)


@task(
    name="dvc-stage",
    task_run_name="{stage}",
    cache_policy=NO_CACHE,
    persist_result=False,
    retry_condition_fn=_retry_transient,
)
def dvc_stage(stage: str, *, root: Path, params: dict[str, Any]) -> dict[str, Any]:
    """Skip the stage when DVC finds it up to date, else run it in-process and commit its outputs."""
    logger = get_run_logger()
    changed = dvc_state.changes(root, stage)
    if not changed:
        logger.info("%s is up to date: skipped", stage)
        return {"stage": stage, "action": "skipped", "seconds": 0.0}
    logger.info("%s changed (%s): running", stage, dvc_state.describe(changed))
    started = time.perf_counter()
    try:
        summary = stage_function(stage, params)(params)
    except StageFailed:
        raise
    except GenreError as exc:  # deliberate (StageError, a bad setting, unusable data): retrying cannot help
        raise StageFailed(stage, str(exc), transient=False) from exc
    except Exception as exc:
        raise StageFailed(stage, f"{type(exc).__name__}: {exc}", transient=isinstance(exc, TRANSIENT)) from exc
    dvc_state.commit(root, stage)
    seconds = round(time.perf_counter() - started, 2)
    told = lookup(stage)[0].headline(summary) if isinstance(summary, dict) else ""
    logger.info("%s done in %.1f s (%s); outputs committed to dvc.lock", stage, seconds, told)
    return {"stage": stage, "action": "ran", "seconds": seconds, "summary": summary}


@task(name="sync-data", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def sync_data(*, root: Path, params: dict[str, Any]) -> str:
    """`genre data sync`: data/gtzan in line with data.dvc before any stage reads it."""
    return datasource.sync(params, root=root)


def run_layer(layer: list[str], *, root: Path, params: dict[str, Any]) -> list[dict[str, Any]]:
    """The independent stages of one DAG layer on a bounded thread pool; all finish before a failure is raised."""
    settings = params["orchestration"]
    stage_task = dvc_stage.with_options(
        retries=settings["stage_retries"], retry_delay_seconds=exponential_backoff(settings["retry_backoff_s"])
    )
    pool: ThreadPoolTaskRunner[Any] = ThreadPoolTaskRunner(max_workers=settings["max_parallel_stages"])
    with pool as runner:
        futures = [runner.submit(stage_task, {"stage": stage, "root": root, "params": params}) for stage in layer]
        for future in futures:
            future.wait()
        states = [future.state for future in futures]
    failed = {
        stage: state.result(raise_on_failure=False) for stage, state in zip(layer, states) if not state.is_completed()
    }
    if failed:
        raise StageFailed(
            ", ".join(failed),
            "; ".join(getattr(error, "reason", f"{type(error).__name__}: {error}") for error in failed.values()),
            transient=False,
        )
    return [state.result() for state in states]


@flow(name="training")
def training(stages: list[str] | None = None) -> list[dict[str, Any]]:
    """The whole pipeline (or only `stages`, e.g. ["ingest"] or ["train"]), then a results artifact."""
    root = project_root()
    params = load_params(root / "params.yaml")
    logger = get_run_logger()
    logger.info("project %s; data.dvc: %s", root, sync_data(root=root, params=params))
    done: list[dict[str, Any]] = []
    try:
        for layer in dvc_state.stage_layers(root):
            chosen = [s for s in layer if stages is None or s in stages or s.partition("@")[0] in stages]
            if chosen:
                done += run_layer(chosen, root=root, params=params)
    except StageFailed as exc:
        publish_report(done=done, params=params, failure=str(exc))
        raise
    publish_report(done=done, params=params, failure=None)
    return done


if __name__ == "__main__":
    training()
