"""Extraction of many tracks in chunks: local worker processes, or one Dask task per chunk (musicgenre.cluster).

The embed stage (the tagger, ~0.4 s per track, the pipeline's most expensive step) and monitoring batch
scoring hand their tracks here. Every path runs the tagger on one thread per track (ONNX Runtime's
single-threaded session), so a track's embedding is the same bit for bit wherever it ran.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .cluster import chunked, map_chunks, runner_kind
from .extraction import Failure, Limits, TrackFeatures, extract_batch

if TYPE_CHECKING:
    from .features import FeatureConfig
    from .tagger import TaggerRef

Items = list[tuple[str, str | os.PathLike]]


def extract_chunk(
    chunk: Items, *, config: FeatureConfig | None, limits: Limits, embedding: TaggerRef | None
) -> tuple[list[TrackFeatures], list[Failure]]:
    """One chunk in this process (a Dask task's body): one track after the other, one thread each."""
    single = embedding.single_threaded() if embedding is not None else None
    return extract_batch(chunk, config=config, limits=limits, n_jobs=1, show_progress=False, embedding=single)


def extract_tracks(
    items: Items,
    *,
    params: dict[str, Any],
    config: FeatureConfig | None,
    limits: Limits,
    embedding: TaggerRef | None,
    n_jobs: int,
) -> tuple[list[TrackFeatures], list[Failure]]:
    """(key, path) pairs -> results in input order and failures. Local: `n_jobs` worker processes over
    the list; dask: chunks of scale.batch_tracks, one task each."""
    if runner_kind(params) == "local":
        return extract_batch(
            items, config=config, limits=limits, n_jobs=n_jobs, show_progress=False, embedding=embedding
        )
    results: list[TrackFeatures] = []
    failures: list[Failure] = []
    chunks = chunked(list(items), size=params["scale"]["batch_tracks"])
    shared = {"config": config, "limits": limits, "embedding": embedding}  # small settings objects, once per task
    for done, failed in map_chunks(extract_chunk, chunks, params=params, shared=shared):
        results += done
        failures += failed
    return results, failures
