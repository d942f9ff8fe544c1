"""Stage embed_patches: the deep models' pretrained base (stage export_tagger, MSD_vgg) run on every validated
track, its output kept per 3-s patch (the same patches the tagger embeds).

Writes paths.patches (track, patch, base_0000 ...) and summary.json into paths.patches_dir, together or not
at all. A file that fails is reported and skipped. At 10 patches x 256 float32 units a track is 10 kB, so
even 100k tracks (1 GB) are gathered in memory before writing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from musicgenre.config import resolve
from musicgenre.extraction import TrackFeatures
from musicgenre.io import atomic_dir, write_json, write_parquet
from musicgenre.tagger import BASE_PREFIX
from stages._cli import run_stage
from stages.embed import base_ref, run_on_tracks


def patch_table(items: list[TrackFeatures], *, order: list[str]) -> pd.DataFrame:
    """track, patch, base_* rows: every kept track's patches in order (tracks in `order`)."""
    by_track = {item.key: item.base_patches() for item in items}
    kept = [track for track in order if track in by_track]
    values = np.concatenate([by_track[track] for track in kept])
    index = pd.DataFrame(
        {
            "track": np.repeat(kept, [len(by_track[t]) for t in kept]),
            "patch": np.concatenate([np.arange(len(by_track[t]), dtype=np.int32) for t in kept]),
        }
    )
    units = pd.DataFrame(values, columns=[f"{BASE_PREFIX}{i:04d}" for i in range(values.shape[1])])
    return pd.concat([index, units], axis=1)


def embed_patches(params: dict[str, Any]) -> dict[str, Any]:
    """Run the base on every track of paths.tracks; stop only if none could be processed."""
    tracks, items, failures = run_on_tracks(params, network=base_ref(params))
    table = patch_table(items, order=tracks["track"].tolist())
    summary = {
        "tracks": len(items),
        "patches": len(table),
        "units": int(table.shape[1] - 2),
        "failed": [{"track": f.key, "reason": f.reason} for f in failures],
        "base": params["embeddings"]["base"],
        "max_patches": params["embeddings"]["max_patches"],
    }
    out_dir = resolve(params["paths"]["patches_dir"])
    with atomic_dir(out_dir) as folder:
        write_parquet(folder / resolve(params["paths"]["patches"]).relative_to(out_dir), table)
        write_json(folder / "summary.json", summary)
    return summary


if __name__ == "__main__":
    run_stage(embed_patches)
