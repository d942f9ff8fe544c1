"""Stage validate: decode and measure every manifest track, run the GX audio suite, keep the usable tracks."""

from __future__ import annotations

import os
from typing import Any

import pandas as pd

from musicgenre.audio_checks import AudioCheckConfig, measure_tracks
from musicgenre.config import project_root, resolve
from musicgenre.io import write_csv, write_json
from musicgenre.validation import CheckResult, audio_suite, data_docs_index, failed, failure_message, run_checks
from stages._cli import StageError, run_stage

# Flag column written to tracks.csv for each check that names tracks.
FLAG_COLUMNS = {
    "genre_in_labels": "is_unknown_genre",
    "decodes": "is_undecodable",
    "duration": "is_off_duration",
    "sample_rate": "is_off_sample_rate",
    "channels": "is_off_channels",
    "duplicate_audio": "is_duplicate",
    "silence": "is_silent",
    "clipping": "is_clipped",
    "band_limited": "is_band_limited",
}
# Tracks that no setting can make usable: they are dropped even when their check is only a warning.
UNUSABLE = ("decodes", "genre_in_labels")


def validate(params: dict[str, Any]) -> dict[str, Any]:
    """Run the audio suite on the manifest; stop on any failed error-severity expectation."""
    paths, section = params["paths"], params["validate"]
    manifest = pd.read_csv(resolve(paths["manifest"]), dtype=str, keep_default_na=False)  # rows kept verbatim
    checks = measure_tracks(
        manifest=manifest, config=AudioCheckConfig.from_params(params), n_jobs=params["data"]["n_jobs"]
    )
    frame = pd.concat([manifest[["track", "genre"]], checks.drop(columns="track")], axis=1)  # same row order
    report_dir = resolve(paths["audio_validation"])
    results = run_checks(
        project_dir=report_dir, name="audio", frame=frame, checks=audio_suite(params=params), id_columns=["track"]
    )
    flagged = flag_tracks(frame=frame, results=results)
    keep, dropped = select_tracks(
        flagged=flagged, drop_band_limited=section["drop_band_limited"], drop_duplicates=section["drop_duplicates"]
    )
    write_csv(resolve(paths["validate_dir"]) / "audio_checks.csv", flagged)
    summary = summarise(flagged=flagged, keep=keep, dropped=dropped, results=results)
    summary["data_docs"] = os.path.relpath(data_docs_index(project_dir=report_dir), project_root())
    write_json(report_dir / "summary.json", summary)
    errors = failed(results, severity="error")
    if errors:
        raise StageError(failure_message(errors, max_rows=section["max_tracks_in_message"]))
    flag_names = list(FLAG_COLUMNS.values()) + ["duplicate_of"]
    write_csv(resolve(paths["tracks"]), manifest[keep.to_numpy()].join(flagged.loc[keep, flag_names]))
    return summary


def flag_tracks(*, frame: pd.DataFrame, results: list[CheckResult]) -> pd.DataFrame:
    """One boolean flag column per check, set from the track ids GX reported; plus duplicate_of."""
    flagged = frame.copy()
    for result in results:
        flagged[FLAG_COLUMNS[result.name]] = flagged["track"].isin(result.rows)
    # Within a set of identical decoded audio, the first track (manifest order) is the original.
    first = flagged.groupby("audio_sha256", dropna=True)["track"].transform("first")
    flagged["duplicate_of"] = first.where(first.notna() & (first != flagged["track"]), "")
    return flagged


def select_tracks(
    *, flagged: pd.DataFrame, drop_band_limited: bool, drop_duplicates: bool
) -> tuple[pd.Series, dict[str, list[str]]]:
    """The keep mask and, per reason, the dropped track ids."""
    reasons = {name: flagged[FLAG_COLUMNS[name]] for name in UNUSABLE}
    if drop_band_limited:
        reasons["band_limited"] = flagged["is_band_limited"]
    if drop_duplicates:
        reasons["duplicate_audio"] = flagged["duplicate_of"] != ""
    drop = pd.concat(reasons.values(), axis=1).any(axis=1)
    dropped = {name: flagged.loc[mask, "track"].tolist() for name, mask in reasons.items() if mask.any()}
    return ~drop, dropped


def summarise(
    *, flagged: pd.DataFrame, keep: pd.Series, dropped: dict[str, list[str]], results: list[CheckResult]
) -> dict[str, Any]:
    """DVC metrics: per-check counts and track ids, per-genre counts, kept/dropped (no timings: the
    file is a DVC metric, so it must depend on the inputs only; the stage's line tells the time)."""
    measured = flagged[flagged["decodes"] == True]  # noqa: E712 (NaN-safe on an object column)
    ranges = {
        column: [float(measured[column].min()), float(measured[column].max())]
        for column in ("rms_dbfs", "clip_fraction", "hf_energy_share", "band_edge_ratio")
    }
    return {
        "tracks": len(flagged),
        "kept": int(keep.sum()),
        "dropped": int((~keep).sum()),
        "dropped_tracks": dropped,
        "checks": {result.name: result.as_dict(id_key="tracks") for result in results},
        "failed_errors": [result.name for result in failed(results, severity="error")],
        "failed_warnings": [result.name for result in failed(results, severity="warn")],
        "per_genre": flagged["genre"].value_counts().sort_index().to_dict(),
        "per_genre_kept": flagged.loc[keep, "genre"].value_counts().sort_index().to_dict(),
        "measured_ranges": ranges,
    }


if __name__ == "__main__":
    run_stage(validate)
