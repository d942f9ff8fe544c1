"""Stage featurize: the seed feature set per track and per segment, and log-mel segments, in parallel."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Any, Callable

import pandas as pd

from musicgenre.config import resolve
from musicgenre.extraction import Failure, Limits, TrackFeatures, extract_batch, feature_table
from musicgenre.features import FeatureConfig
from musicgenre.io import atomic_dir, write_json, write_parquet
from musicgenre.logmel_store import LogMelWriter
from stages._cli import StageError, run_stage

# Maps (track, path) pairs to features in input order; the Prefect flow passes a task map on its task runner.
Extractor = Callable[..., tuple[list[TrackFeatures], list[Failure]]]


def featurize(params: dict[str, Any], *, extractor: Extractor | None = None) -> dict[str, Any]:
    """Extract features of every validated track; a file that fails is reported and skipped. Log-mels go
    to disk as each track arrives (musicgenre.logmel_store), so memory does not grow with the audio."""
    paths, config = params["paths"], FeatureConfig.from_params(params)
    tracks = pd.read_csv(resolve(params["paths"]["tracks"]))
    items = [(track, str(resolve(path))) for track, path in zip(tracks["track"], tracks["path"])]
    out_dir = resolve(paths["features_dir"])
    with atomic_dir(out_dir) as folder:  # the four files are one DVC out: published together or not at all
        inside = {
            key: folder / resolve(paths[key]).relative_to(out_dir) for key in ("features", "logmel", "logmel_index")
        }
        writer = LogMelWriter(
            target=inside["logmel"],
            n_mels=config.n_mels,
            frames=config.segment_frames,
            dtype=params["features"]["logmel_dtype"],
        )
        keep = partial(_spill_log_mels, writer=writer)
        results, failures = _extract(params, items=items, keep=keep, extractor=extractor)
        if not results:
            raise StageError(f"no track could be featurized; first failures: {[vars(f) for f in failures[:5]]}")
        table = feature_table(results, config)
        table.insert(1, "genre", table["track"].map(dict(zip(tracks["track"], tracks["genre"]))))
        summary = {
            "tracks": len(results),
            "failed": [vars(f) for f in failures],
            "rows": len(table),
            "columns": table.shape[1],
            "logmel_shape": list(writer.finish()),
        }  # no timings: a DVC out
        write_parquet(inside["features"], table)
        write_parquet(inside["logmel_index"], pd.DataFrame(writer.rows, columns=["track", "segment"]))
        write_json(folder / "summary.json", summary)
    return summary


def _extract(
    params: dict[str, Any],
    *,
    items: list[tuple[str, str]],
    keep: Callable[[TrackFeatures], TrackFeatures],
    extractor: Extractor | None,
) -> tuple[list[TrackFeatures], list[Failure]]:
    """Local worker processes (`dvc repro`) or the flow's task map; `keep` sees every result in input order."""
    config, limits = FeatureConfig.from_params(params), Limits.from_params(params)
    if extractor is None:
        return extract_batch(items, config=config, limits=limits, n_jobs=params["features"]["n_jobs"], on_result=keep)
    results, failures = extractor(items, config=config, limits=limits)  # the task map returns whole results
    return [keep(item) for item in results], failures


def _spill_log_mels(item: TrackFeatures, *, writer: LogMelWriter) -> TrackFeatures:
    """Write the track's log-mel segments to disk and keep only its feature vectors in memory."""
    _, _, log_mels = item.classic()
    writer.add(key=item.key, log_mels=log_mels)
    return replace(item, log_mels=None)


if __name__ == "__main__":
    run_stage(featurize)
