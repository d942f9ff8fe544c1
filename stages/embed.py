"""Stage embed: the pretrained musicnn tagger's embedding of every validated track (transfer models' input).

Writes paths.embeddings (track, genre, emb_mean_*, emb_max_*) and summary.json (timings, failures)
into paths.embeddings_dir, together or not at all. A file that fails is reported and skipped.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from musicgenre.audio import AudioError
from musicgenre.config import resolve
from musicgenre.embeddings import EmbeddingConfig, embed_file, embedding_columns, tagger_session
from musicgenre.extraction import Failure, Limits
from musicgenre.io import atomic_dir, write_json, write_parquet
from stages._cli import StageError, run_stage


def embed_tracks(*, tracks: pd.DataFrame, config: EmbeddingConfig, limits: Limits
                 ) -> tuple[dict[str, np.ndarray], list[Failure]]:
    """Embeddings of the tracks' files in one cached tagger session; failures name the file."""
    vectors: dict[str, np.ndarray] = {}
    failures: list[Failure] = []
    for track, path in zip(tracks["track"], tracks["path"]):
        try:
            vectors[track] = embed_file(resolve(path), config=config, limits=limits)
        except AudioError as exc:
            failures.append(Failure(key=track, path=str(path), reason=exc.reason))
    return vectors, failures


def embed(params: dict[str, Any]) -> dict[str, Any]:
    """Embed every track of paths.tracks; stop only if none could be embedded."""
    config, limits = EmbeddingConfig.from_params(params), Limits.from_params(params)
    tracks = pd.read_csv(resolve(params["paths"]["tracks"]))
    started = time.perf_counter()
    tagger_session(config)  # load once, timed apart from the per-track cost
    loaded = time.perf_counter()
    vectors, failures = embed_tracks(tracks=tracks, config=config, limits=limits)
    finished = time.perf_counter()
    if not vectors:
        raise StageError(f"no track could be embedded; first failures: {[vars(f) for f in failures[:5]]}")
    kept = tracks[tracks["track"].isin(vectors)]
    matrix = np.stack([vectors[track] for track in kept["track"]])
    table = pd.concat([kept[["track", "genre"]].reset_index(drop=True),
                       pd.DataFrame(matrix, columns=embedding_columns(matrix.shape[1]))], axis=1)
    summary = {"tracks": len(vectors), "failed": [vars(f) for f in failures], "dimensions": int(matrix.shape[1]),
               "tagger": config.tagger, "layer": config.layer, "load_seconds": round(loaded - started, 2),
               "seconds": round(finished - loaded, 2), "seconds_per_track": round((finished - loaded) / len(tracks), 4)}
    out_dir = resolve(params["paths"]["embeddings_dir"])
    with atomic_dir(out_dir) as folder:
        write_parquet(folder / resolve(params["paths"]["embeddings"]).relative_to(out_dir), table)
        write_json(folder / "summary.json", summary)
    return summary


if __name__ == "__main__":
    run_stage(embed)
