"""Stage split: artist-grouped train/valid/test (primary) and a random stratified split (comparison)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from musicgenre.config import resolve
from musicgenre.io import write_csv
from musicgenre.splits import group_keys, grouped_split, random_split, standard_split
from stages._cli import run_stage


def split(params: dict[str, Any]) -> dict[str, Any]:
    """Assign every validated track to train/valid/test under both protocols."""
    settings, seed = params["split"], params["seed"]
    tracks = pd.read_csv(resolve(params["paths"]["tracks"]), dtype={"artist_group": str})
    features = pd.read_parquet(resolve(params["paths"]["features"]), columns=["track"])
    tracks = tracks[tracks["track"].isin(features["track"])].reset_index(drop=True)  # extracted only
    sizes = dict(test_size=settings["test_size"], valid_size=settings["valid_size"], seed=seed)
    standard = standard_split(tracks, min_coverage=settings["standard_split_min_coverage"])
    table = tracks[["track", "genre"]].assign(group=group_keys(tracks))
    table["split_grouped"] = (
        standard if standard is not None else grouped_split(tracks, **sizes, candidates=settings["search_candidates"])
    )
    table["split_random"] = random_split(tracks, **sizes)
    table["grouped_source"] = "kereliuk_sturm_filtered" if standard is not None else "stratified_group"
    write_csv(resolve(params["paths"]["splits"]), table)
    return {protocol: table[protocol].value_counts().to_dict() for protocol in ("split_grouped", "split_random")}


if __name__ == "__main__":
    run_stage(split)
