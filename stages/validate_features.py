"""Stage validate_features: the GX suite on the feature table (schema, no NaN/inf, plausible ranges)."""

from __future__ import annotations

import os
from typing import Any

import pandas as pd

from musicgenre.config import project_root, resolve
from musicgenre.features import FeatureConfig, feature_names
from musicgenre.io import write_json
from musicgenre.validation import data_docs_index, failed, failure_message, feature_suite, run_checks
from stages._cli import StageError, run_stage

KEY_COLUMNS = ["track", "genre", "segment"]
ID_COLUMNS = ["track", "segment"]  # a failing row is named "track/segment" (segment -1 = whole track)


def validate_features(params: dict[str, Any]) -> dict[str, Any]:
    """Validate features.parquet; stop naming the expectation and the rows on any failure."""
    paths = params["paths"]
    frame = pd.read_parquet(resolve(paths["features"]))
    report_dir = resolve(paths["feature_validation"])
    checks = feature_suite(
        params=params, key_columns=KEY_COLUMNS, feature_columns=feature_names(FeatureConfig.from_params(params))
    )
    results = run_checks(
        project_dir=report_dir,
        name="features",
        frame=frame,
        checks=checks,
        id_columns=[column for column in ID_COLUMNS if column in frame.columns],
    )
    errors = failed(results, severity="error")
    summary = {
        "rows": len(frame),
        "tracks": int(frame["track"].nunique()) if "track" in frame else 0,
        "columns": frame.shape[1],
        "success": not errors,
        "expectations": sum(len(check.expectations) for check in checks),
        "checks": {result.name: result.as_dict() for result in results},
        "failed_tracks": sorted({row.split("/")[0] for result in errors for row in result.rows}),
        "data_docs": os.path.relpath(data_docs_index(project_dir=report_dir), project_root()),
    }
    write_json(report_dir / "summary.json", summary)
    if errors:
        raise StageError(failure_message(errors, max_rows=params["validate"]["max_tracks_in_message"]))
    return summary


if __name__ == "__main__":
    run_stage(validate_features)
