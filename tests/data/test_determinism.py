"""A stage's outputs are a function of its inputs: run twice on the same inputs, every DVC out (and metric)
has the same bytes, so a re-run never changes a hash downstream stages depend on (no wall-clock time,
no run id inside an artifact). Real GTZAN tracks, stage functions called directly, no DVC. (The feature
validation metric: tests/data/test_feature_validation.py.)"""
from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import pandas as pd
import pytest

from stages.featurize import featurize
from stages.split import split


def hashes(folder: Path) -> dict[str, str]:
    """relative path -> md5 of every file under `folder` (what DVC hashes for a folder out)."""
    return {path.relative_to(folder).as_posix(): hashlib.md5(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def run_twice(stage, params: dict, out: str, tmp_path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Run `stage` into two fresh output places (params.paths[out] moved) and hash both."""
    runs = []
    for run in ("first", "second"):
        local, folder = copy.deepcopy(params), tmp_path / run
        target = folder / Path(params["paths"][out]).name
        local["paths"][out] = str(target)
        if out == "features_dir":  # the feature files sit inside their out folder
            local["paths"].update({key: str(target / Path(params["paths"][key]).name)
                                   for key in ("features", "logmel", "logmel_index")})
        stage(local)
        runs.append(hashes(folder))
    return runs[0], runs[1]


@pytest.fixture(scope="module")
def inputs(params, gtzan_slice, tmp_path_factory) -> dict:
    """params reading a tracks.csv of 2 real tracks (2 genres) from a temp folder; one extraction process."""
    root = tmp_path_factory.mktemp("determinism")
    tracks = gtzan_slice.groupby("genre").head(1).head(2)
    pd.DataFrame({"track": tracks["track"], "genre": tracks["genre"], "path": tracks["abs_path"].astype(str)}
                 ).to_csv(root / "tracks.csv", index=False)
    local = copy.deepcopy(params)
    local["paths"]["tracks"] = str(root / "tracks.csv")
    local["features"]["n_jobs"] = 1
    return {"params": local, "root": root}


@pytest.fixture(scope="module")
def featurized(inputs) -> dict:
    """featurize run twice on the same 2 tracks: both runs' hashes."""
    first, second = run_twice(featurize, inputs["params"], "features_dir", inputs["root"])
    return {"first": first, "second": second}


def test_featurize_writes_the_same_bytes_twice(featurized):
    assert set(featurized["first"]) == {f"features/{name}" for name in ("features.parquet", "logmel.npy",
                                                                        "logmel_index.parquet", "summary.json")}
    assert featurized["first"] == featurized["second"]


def test_split_writes_the_same_table_twice(params, gtzan_manifest, tmp_path):
    tracks = gtzan_manifest[["track", "genre", "artist_group"]].assign(path="unused")
    tracks.to_csv(tmp_path / "tracks.csv", index=False)
    tracks[["track"]].to_parquet(tmp_path / "features.parquet", index=False)
    local = copy.deepcopy(params)
    local["paths"].update(tracks=str(tmp_path / "tracks.csv"), features=str(tmp_path / "features.parquet"))
    local["split"]["search_candidates"] = 5  # the search is deterministic for a seed at any size; keep it short
    first, second = run_twice(split, local, "splits", tmp_path)
    assert list(first) == ["splits.csv"] and first == second
