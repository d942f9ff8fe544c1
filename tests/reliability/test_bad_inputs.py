"""Every bad input through every entry point: ingestion, validation (audio checks + GX suite),
`predict` and the monitoring scoring flow. Each file gets a result or an error naming the file and
the reason; the rest of the batch goes on; the run's report lists every failure."""

from __future__ import annotations

import copy
import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from musicgenre.ingest import build_manifest
from tests.reliability.corpus import BY_NAME, build_gtzan

LINKS = ("symlink_outside", "symlink_dotdot")


def expected(name: str, entry: str) -> str | None:
    """The reason substring an entry point must report for a case, or None for a result."""
    if name.startswith("real_"):
        return None
    if name in LINKS:
        return "outside the batch folder" if entry == "scoring" else None
    case = BY_NAME[name]
    return {
        "ingest": case.probe_error,
        "validate": case.validation_error(),
        "predict": case.error,
        "scoring": case.error,
    }[entry]


def assert_outcome(name: str, entry: str, error: str, *, filename: str | None = None) -> None:
    want = expected(name, entry)
    if want is None:
        assert not error, f"{entry}: {name} should give a result, got {error!r}"
    else:
        assert want in error, f"{entry}: {name} should fail with {want!r}, got {error!r}"
        assert filename is None or filename in error, f"{entry}: error does not name {filename}: {error!r}"


@pytest.fixture(scope="module")
def gtzan_copy(params, gtzan_slice, batch, tmp_path_factory):
    """The corpus as a GTZAN source folder whose name holds spaces, quotes and unicode."""
    root = tmp_path_factory.mktemp("ingest") / "GTZAN copy 'it''s' ü"
    tracks = build_gtzan(
        root,
        source=gtzan_slice["abs_path"].iloc[0],
        limits=params["limits"],
        genres=params["genres"],
        outside=batch["outside"],
    )
    extensions = sorted(set(params["data"]["audio_extensions"]) | set(params["predict"]["extensions"]))
    manifest = build_manifest(
        root,
        genres=params["genres"],
        extensions=extensions,
        max_file_mb=params["limits"]["max_file_mb"],
        relative_to=root,
        n_jobs=2,
    )
    return {"root": root, "tracks": tracks, "manifest": manifest}


def test_ingestion_names_every_unreadable_file(gtzan_copy):
    manifest = gtzan_copy["manifest"].set_index("track")
    assert sorted(manifest.index) == sorted(gtzan_copy["tracks"].values())  # nothing dropped silently
    for name, track in gtzan_copy["tracks"].items():
        row = manifest.loc[track]
        assert_outcome(name, "ingest", row["error"])
        assert (row["sha256"] == "") == bool(row["error"])  # a refused file is never hashed


def test_validation_measures_all_and_reports_every_failure(params, gtzan_copy, tmp_path, monkeypatch):
    from stages._cli import StageError
    from stages.validate import validate

    monkeypatch.setenv("MUSICGENRE_ROOT", str(gtzan_copy["root"]))  # manifest paths are relative to it
    local = copy.deepcopy(params)
    local["paths"].update(
        manifest=str(tmp_path / "manifest.csv"),
        validate_dir=str(tmp_path / "validate"),
        tracks=str(tmp_path / "validate" / "tracks.csv"),
        audio_validation=str(tmp_path / "report"),
    )
    gtzan_copy["manifest"].to_csv(local["paths"]["manifest"], index=False)
    with pytest.raises(StageError) as stopped:  # undecodable and silent tracks are error-severity checks
        validate(local)
    checks = pd.read_csv(tmp_path / "validate" / "audio_checks.csv", keep_default_na=False).set_index("track")
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["tracks"] == len(gtzan_copy["tracks"])
    for name, track in gtzan_copy["tracks"].items():
        assert_outcome(name, "validate", checks.loc[track, "decode_error"])
        if expected(name, "validate"):
            assert track in summary["checks"]["decodes"]["tracks"] and track in str(stopped.value)
    flags = {name: checks.loc[track] for name, track in gtzan_copy["tracks"].items()}
    assert str(flags["silence"]["is_silent"]) == "True"
    assert gtzan_copy["tracks"]["silence"] in summary["checks"]["silence"]["tracks"]
    for name in ("one_second", "truncated_wav", "ten_minutes"):
        assert str(flags[name]["is_off_duration"]) == "True", name
    for name in ("rate_8k", "rate_96k", "stereo_44k"):
        assert str(flags[name]["is_off_sample_rate"]) == "True", name
    assert str(flags["stereo_44k"]["is_off_channels"]) == "True"
    assert not (tmp_path / "validate" / "tracks.csv").exists()  # a stopped stage publishes no track list


def test_predict_scores_the_good_and_names_the_bad(registry, batch):
    from musicgenre.predict import EXIT_FAILED, app

    result = CliRunner().invoke(app, [str(batch["folder"]), "--json", "--tracking-uri", registry["uri"]])
    assert result.exit_code == EXIT_FAILED, result.output
    records = {r["path"]: r for r in json.loads(result.stdout)}
    assert set(records) == {str(path) for path in batch["files"].values()}  # every file reported once
    for name, path in batch["files"].items():
        record = records[str(path)]
        assert_outcome(name, "predict", record.get("error", ""), filename=path.name)
        if "top" in record:
            assert len(record["top"]) == registry["params"]["predict"]["top_k"]


def test_scoring_flow_refuses_escapes_and_names_the_bad(registry, batch, tmp_path):
    """monitoring.scoring (what the drift flow and `score-batch` run): refusals are stored with the batch."""
    from monitoring.scoring import load_scoring_model, score_batch
    from monitoring.store import read_table

    local = copy.deepcopy(registry["params"])
    local["monitoring"]["store"] = str(tmp_path / "store")
    champion = load_scoring_model(params=local, tracking_uri=registry["uri"])
    scored_batch = score_batch(folder=batch["folder"], params=local, champion=champion, batch_id="corpus")
    rejected = {item.key: item.reason for item in scored_batch.rejected}
    scored = set(read_table(store=tmp_path / "store", table="predictions", batch_id="corpus")["file"])
    stored_rejections = read_table(store=tmp_path / "store", table="rejected", batch_id="corpus")
    assert set(stored_rejections["key"]) == set(rejected)  # the batch's record lists every failure
    for name, path in batch["files"].items():
        key = path.relative_to(batch["folder"]).as_posix()
        assert (key in scored) != (key in rejected), f"{name}: must be scored xor refused"
        assert_outcome(name, "scoring", rejected.get(key, ""), filename=path.name)
    assert scored_batch.predictions["confidence"].between(0, 1).all()
    assert batch["outside"].name not in " ".join(scored)  # the file behind the links was never scored
