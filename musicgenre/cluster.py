"""Where the expensive steps run: in this process (local) or on a Dask cluster, by params.

`orchestration.task_runner: dask` sends the embed stage's and batch scoring's chunks of tracks (one Dask
task per `scale.batch_tracks` tracks: a task costs ~0.15 s of overhead, so one per track would waste a
third of the tagger's ~0.4 s) and evaluate's cross-validation fits (joblib's dask backend) to the
scheduler at $DASK_SCHEDULER_ADDRESS, else `orchestration.dask.address`, else a LocalCluster started for
the call. The workers must see the same paths as this process (a shared filesystem or the same image).
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence, TypeVar

from .errors import ConfigError

if TYPE_CHECKING:  # distributed is heavy: imported only when the dask runner is chosen
    from distributed import Client

SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"
RUNNERS = ("local", "dask")
Item = TypeVar("Item")
Result = TypeVar("Result")


def runner_kind(params: dict[str, Any]) -> str:
    """orchestration.task_runner, checked: local | dask."""
    kind = params["orchestration"]["task_runner"]
    if kind not in RUNNERS:
        raise ConfigError(f"orchestration.task_runner must be one of {RUNNERS}, not {kind!r}")
    return kind


def scheduler_address(params: dict[str, Any]) -> str | None:
    """An existing scheduler: $DASK_SCHEDULER_ADDRESS wins over orchestration.dask.address; None = LocalCluster."""
    return os.environ.get(SCHEDULER_ENV) or params["orchestration"]["dask"]["address"] or None


@contextlib.contextmanager
def dask_client(params: dict[str, Any]) -> Iterator[Client]:
    """A client of the configured scheduler, or of a LocalCluster (orchestration.dask.cluster_kwargs) that
    lives as long as the block."""
    from distributed import Client, LocalCluster

    address = scheduler_address(params)
    if address:
        with Client(address) as client:
            yield client
        return
    with LocalCluster(**params["orchestration"]["dask"]["cluster_kwargs"]) as cluster, Client(cluster) as client:
        yield client


def chunked(items: Sequence[Item], *, size: int) -> list[list[Item]]:
    """Consecutive chunks of at most `size` items, in order."""
    if size < 1:
        raise ConfigError(f"scale.batch_tracks must be at least 1, not {size}")
    return [list(items[start : start + size]) for start in range(0, len(items), size)]


def map_chunks(
    function: Callable[..., Result], chunks: list[list[Item]], *, params: dict[str, Any], shared: dict[str, Any]
) -> Iterator[Result]:
    """function(chunk, **shared) for every chunk, results in chunk order: here one chunk after the other
    (only one chunk's results in flight), or one Dask task per chunk on the cluster of `params`."""
    if runner_kind(params) == "local":
        for chunk in chunks:
            yield function(chunk, **shared)
        return
    with dask_client(params) as client:
        # Each shared value is scattered once under a unique key: client.map's own handling of a large
        # keyword argument stores it under the bare argument name ('params'), which collides between
        # calls and tripped the scheduler's state machine (AssertionError <TaskState 'params' processing>).
        refs = {name: client.scatter([value], hash=False, broadcast=True)[0] for name, value in shared.items()}
        futures = client.map(function, chunks, pure=False, **refs)
        for future in futures:  # in order; a chunk's result is released once read
            yield future.result()
            future.release()


@contextlib.contextmanager
def joblib_backend(params: dict[str, Any]) -> Iterator[None]:
    """joblib.Parallel calls inside the block run on the Dask cluster when task_runner is dask (the
    cross-validation fits); otherwise joblib's own default (local worker processes) stays."""
    if runner_kind(params) == "local":
        yield
        return
    from joblib import parallel_config

    with dask_client(params), parallel_config(backend="dask"):
        yield
