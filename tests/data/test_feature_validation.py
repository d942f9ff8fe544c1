"""The feature-table validation stage on features extracted from real GTZAN tracks."""
from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from musicgenre.extraction import Limits, extract_file, to_tables
from musicgenre.features import FeatureConfig, feature_names
from stages._cli import StageError
from stages.validate_features import validate_features


@pytest.fixture(scope="module")
def real_features(params, gtzan_slice) -> pd.DataFrame:
    """The featurize stage's table layout for two real tracks of different genres."""
    config, limits = FeatureConfig.from_params(params), Limits.from_params(params)
    picked = gtzan_slice.groupby("genre").head(1).head(2)
    results = [extract_file(row.abs_path, key=row.track, config=config, limits=limits) for row in picked.itertuples()]
    table, _, _ = to_tables(results, config)
    table.insert(1, "genre", table["track"].map(dict(zip(picked["track"], picked["genre"]))))
    return table


def _run(params: dict, frame: pd.DataFrame, tmp_path) -> dict:
    """Validate `frame` as features.parquet with every path under tmp_path."""
    local = copy.deepcopy(params)
    frame.to_parquet(tmp_path / "features.parquet", index=False)
    local["paths"].update(features=str(tmp_path / "features.parquet"), feature_validation=str(tmp_path / "report"))
    return validate_features(local)


def test_real_features_pass_with_a_reproducible_metric(params, real_features, tmp_path):
    summary = _run(params, real_features, tmp_path)
    assert summary["success"] and summary["rows"] == len(real_features)
    assert all(check["success"] for check in summary["checks"].values())
    metric = (tmp_path / "report" / "summary.json").read_bytes()
    assert json.loads(metric)["success"] and b"seconds" not in metric
    assert (tmp_path / "report" / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html").is_file()
    # summary.json is a dep of split: re-run as `dvc repro` would (outs removed first), the same bytes.
    # (The GX data docs beside it carry run ids and times; no stage reads them: tests/code/test_dvc_deps.py.)
    shutil.rmtree(tmp_path / "report")
    _run(params, real_features, tmp_path)
    assert (tmp_path / "report" / "summary.json").read_bytes() == metric


# One fault per check, each in its own row: a single (slow-ish) GX run must name every culprit.
FAULTS = [("mfcc_mean_05", np.nan, "not_null"), ("contrast_std_2", np.inf, "finite_plausible"),
          ("zcr_mean", 1.5, "zcr_range"), ("tempo", 0.0, "tempo_range"),
          ("centroid_mean", 20000.0, "spectral_frequency_range")]


def test_injected_faults_stop_naming_expectation_and_row(params, real_features, tmp_path):
    broken = real_features.copy()
    rows = np.linspace(0, len(broken) - 1, len(FAULTS)).astype(int)  # spread over both tracks
    for row, (column, value, _) in zip(rows, FAULTS):
        broken.loc[row, column] = value
    with pytest.raises(StageError) as caught:
        _run(params, broken, tmp_path)
    lines = str(caught.value).splitlines()
    for row, (column, _, check) in zip(rows, FAULTS):
        line = next(line for line in lines if f"'{check}'" in line)
        assert f"{broken.loc[row, 'track']}/{broken.loc[row, 'segment']}" in line and column in line
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["failed_tracks"] == sorted(set(broken.loc[rows, "track"]))
    assert not summary["success"] and summary["checks"]["chroma_range"]["success"]


def test_schema_must_match_feature_names(params, real_features, tmp_path):
    expected = feature_names(FeatureConfig.from_params(params))
    with pytest.raises(StageError, match="'schema'"):
        _run(params, real_features.drop(columns=[expected[-1]]), tmp_path)
