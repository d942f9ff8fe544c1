"""Stage featurize: the seed feature set per track and per segment, and log-mel segments, in parallel."""

from __future__ import annotations

from typing import Any, Callable

import pandas as pd

from musicgenre.config import resolve
from musicgenre.extraction import Failure, Limits, TrackFeatures, extract_batch, to_tables
from musicgenre.features import FeatureConfig
from musicgenre.io import atomic_dir, write_json, write_npy, write_parquet
from stages._cli import StageError, run_stage

# Maps (track, path) pairs to features in input order; the Prefect flow passes a task map on its task runner.
Extractor = Callable[..., tuple[list[TrackFeatures], list[Failure]]]


def featurize(params: dict[str, Any], *, extractor: Extractor | None = None) -> dict[str, Any]:
    """Extract features of every validated track; a file that fails is reported and skipped."""
    paths, config, limits = params["paths"], FeatureConfig.from_params(params), Limits.from_params(params)
    tracks = pd.read_csv(resolve(params["paths"]["tracks"]))
    items = [(track, str(resolve(path))) for track, path in zip(tracks["track"], tracks["path"])]
    if extractor is None:  # `dvc repro`: local worker processes
        results, failures = extract_batch(items, config=config, limits=limits, n_jobs=params["features"]["n_jobs"])
    else:
        results, failures = extractor(items, config=config, limits=limits)
    if not results:
        raise StageError(f"no track could be featurized; first failures: {[vars(f) for f in failures[:5]]}")
    table, log_mel, index = to_tables(results, config)
    table.insert(1, "genre", table["track"].map(dict(zip(tracks["track"], tracks["genre"]))))
    summary = {
        "tracks": len(results),
        "failed": [vars(f) for f in failures],
        "rows": len(table),
        "columns": table.shape[1],
        "logmel_shape": list(log_mel.shape),
    }  # no timings: a DVC out
    out_dir = resolve(paths["features_dir"])
    with atomic_dir(out_dir) as folder:  # the four files are one DVC out: published together or not at all
        inside = {
            key: folder / resolve(paths[key]).relative_to(out_dir) for key in ("features", "logmel", "logmel_index")
        }
        write_parquet(inside["features"], table)
        write_npy(inside["logmel"], log_mel.astype(params["features"]["logmel_dtype"]))
        write_parquet(inside["logmel_index"], index)
        write_json(folder / "summary.json", summary)
    return summary


if __name__ == "__main__":
    run_stage(featurize)
