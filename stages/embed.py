"""Stage embed: the pretrained tagger's embedding of every validated track (transfer models' input).

Runs the exported tagger (stage export_tagger) on ONNX Runtime. Writes paths.embeddings (track,
genre, emb_mean_*, emb_max_* of the embedding layer, pool_mean_*, pool_max_* of the pooled layer) and
summary.json (counts, failures) into paths.embeddings_dir, together or not at all. A file that fails is
reported and skipped.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from musicgenre.chunked import extract_tracks
from musicgenre.config import resolve
from musicgenre.extraction import Failure, Limits, TrackFeatures
from musicgenre.io import atomic_dir, write_json, write_parquet
from musicgenre.tagger import POOLED_PREFIX, EmbeddingConfig, TaggerRef, embedding_columns
from stages._cli import StageError, run_stage


def tagger_ref(params: dict[str, Any]) -> TaggerRef:
    """The exported tagger (paths.tagger_dir) run with params.embeddings."""
    return TaggerRef(str(resolve(params["paths"]["tagger_dir"])), EmbeddingConfig.from_params(params))


def base_ref(params: dict[str, Any]) -> TaggerRef:
    """The deep models' exported base (paths.base_dir), kept per patch (params.embeddings.base)."""
    return TaggerRef(str(resolve(params["paths"]["base_dir"])), EmbeddingConfig.base_from_params(params))


def pretrained_input(params: dict[str, Any], *, model: str) -> TaggerRef | None:
    """The pretrained network a model's inputs come from: the tagger for transfer models, the base for deep
    models on patches, none for the others."""
    settings = params["models"][model]
    if settings["family"] == "transfer":
        return tagger_ref(params)
    if settings["family"] == "deep" and settings.get("input") == "patches":
        return base_ref(params)
    return None


def run_on_tracks(
    params: dict[str, Any], *, network: TaggerRef
) -> tuple[pd.DataFrame, list[TrackFeatures], list[Failure]]:
    """The tracks of paths.tracks, and `network` run on each (the items that worked, the failures); stops
    only if none worked. Local worker processes, or chunks of scale.batch_tracks tracks on Dask."""
    tracks = pd.read_csv(resolve(params["paths"]["tracks"]))
    items, failures = extract_tracks(
        [(track, resolve(path)) for track, path in zip(tracks["track"], tracks["path"])],
        params=params,
        config=None,
        limits=Limits.from_params(params),
        embedding=network,
        n_jobs=params["data"]["n_jobs"],
    )
    if not items:
        raise StageError(
            f"no track could be run through {network.folder}; first failures: {[vars(f) for f in failures[:5]]}"
        )
    return tracks, items, failures


def embed(params: dict[str, Any]) -> dict[str, Any]:
    """Embed every track of paths.tracks; stop only if none could be embedded."""
    tracks, items, failures = run_on_tracks(params, network=tagger_ref(params))
    by_track = {item.key: item for item in items}
    kept = tracks[tracks["track"].isin(by_track)]
    matrix = np.stack([by_track[track].tagger_embedding() for track in kept["track"]])
    parts = [
        kept[["track", "genre"]].reset_index(drop=True),
        pd.DataFrame(matrix, columns=embedding_columns(matrix.shape[1])),
    ]
    if items[0].pooled is not None:  # the export has the pooled output: every item has it
        pooled = np.stack([by_track[track].tagger_pooled() for track in kept["track"]])
        parts.append(pd.DataFrame(pooled, columns=embedding_columns(pooled.shape[1], prefix=POOLED_PREFIX)))
    table = pd.concat(parts, axis=1)
    summary = {
        "tracks": len(by_track),
        "failed": [{"track": f.key, "reason": f.reason} for f in failures],
        "dimensions": int(table.shape[1] - 2),
        "tagger": params["embeddings"]["tagger"],
        "layer": params["embeddings"]["layer"],
        "pooled_layer": params["embeddings"].get("pooled_layer"),
        "max_patches": params["embeddings"]["max_patches"],
    }
    out_dir = resolve(params["paths"]["embeddings_dir"])
    with atomic_dir(out_dir) as folder:
        write_parquet(folder / resolve(params["paths"]["embeddings"]).relative_to(out_dir), table)
        write_json(folder / "summary.json", summary)
    return summary


if __name__ == "__main__":
    run_stage(embed)
