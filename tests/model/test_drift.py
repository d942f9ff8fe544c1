"""The drift check end to end on the real data, with a temp registry champion, store and workspace:
the 110 modern clips drift, the GTZAN test-split tracks do not (the false-alarm check); the daily
flow archives its inbox; a bad or odd file is refused with its reason while the batch goes on."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml
from mlflow.tracking import MlflowClient
from prefect.testing.utilities import prefect_test_harness
from typer.testing import CliRunner

from monitoring.cli import EXIT_DRIFT, EXIT_OK, app
from monitoring.scoring import load_scoring_model, score_batch
from monitoring.store import read_table
from musicgenre.config import resolve
from musicgenre.evaluation import proba_columns
from musicgenre.io import atomic_path
from tests.helpers import MODERN, free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,2400",
    "--virtual-time-budget=20000",
]
UI_START_TIMEOUT_S = 90


@pytest.fixture(scope="session")
def monitoring_params(registry, tmp_path_factory):
    """The registry's params with every monitoring path in a temp folder, also as a params file."""
    root = tmp_path_factory.mktemp("monitoring")
    local = copy.deepcopy(registry["params"])
    local["monitoring"].update(
        {name: str(root / name) for name in ("inbox", "archive", "store", "reports", "workspace")}
    )
    local["monitoring"]["overview"] = str(root / "reports" / "overview.html")
    (root / "params.yaml").write_text(yaml.safe_dump(local, sort_keys=False))
    return {"params": local, "file": root / "params.yaml", "uri": registry["uri"], "root": root}


@pytest.fixture(scope="session")
def gtzan_test_run(monitoring_params, gtzan_manifest):
    """The daily flow (real Prefect server) on an inbox holding the GTZAN test-split tracks."""
    from flows.drift import drift_check

    params = monitoring_params["params"]
    splits = pd.read_csv(resolve(params["paths"]["splits"]))
    tracks = splits.loc[splits["split_grouped"] == "test", "track"]
    inbox = resolve(params["monitoring"]["inbox"])
    inbox.mkdir(parents=True)
    for path in gtzan_manifest.set_index("track").loc[tracks, "abs_path"]:
        shutil.copy2(path, inbox / path.name)
    with prefect_test_harness(server_startup_timeout=180):
        summary = drift_check(params_file=str(monitoring_params["file"]), tracking_uri=monitoring_params["uri"])
        artifacts = _artifacts("drift-check")
    return {"summary": summary, "tracks": list(tracks), "artifacts": artifacts}


@pytest.fixture(scope="session")
def modern_run(monitoring_params, gtzan_test_run):
    """`python -m monitoring.cli score-batch` on the 110 modern clips (after the GTZAN batch)."""
    folder = sorted({clip.parent.parent for clip in _modern()})[0]
    result = CliRunner().invoke(
        app,
        [
            "score-batch",
            str(folder),
            "--batch-id",
            "modern",
            "--json",
            "--params",
            str(monitoring_params["file"]),
            "--tracking-uri",
            monitoring_params["uri"],
        ],
    )
    assert result.exit_code in (EXIT_OK, EXIT_DRIFT), result.output
    return {"exit_code": result.exit_code, "summary": json.loads(result.stdout)}


def _modern():
    return sorted(MODERN.rglob("*.ogg"))


def _artifacts(key: str) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))


def test_modern_clips_drift(modern_run, monitoring_params, modern_clips):
    summary = modern_run["summary"]
    features = summary["signals"]["features"]
    assert modern_run["exit_code"] == EXIT_DRIFT and summary["verdict"] == "drift"
    assert summary["n_current"] == len(modern_clips) == 110
    assert features["share"] >= features["threshold"] and 0 <= features["false_alarm"] <= 0.05
    assert features["count"] == round(features["share"] * 88)
    top = summary["top_features"]
    assert all(row["drifted"] and row["direction"] in ("up", "down") for row in top)
    assert [row["distance"] for row in top] == sorted((row["distance"] for row in top), reverse=True)
    assert summary["alert"]["text"].startswith("DRIFT in batch modern")
    print(f"\nmodern: share {features['share']:.3f}; " + "; ".join(summary["top_features_text"][:5]))


def test_gtzan_test_split_does_not_drift(gtzan_test_run, monitoring_params):
    summary = gtzan_test_run["summary"]
    features = summary["signals"]["features"]
    assert summary["verdict"] == "no-drift" and summary["alert"] is None
    assert summary["n_current"] == len(gtzan_test_run["tracks"]) and not summary["rejected"]
    assert features["share"] < features["threshold"]
    print(f"\nGTZAN test split: share {features['share']:.3f} ({features['count']} features)")


def test_flow_archives_the_inbox_and_publishes_an_artifact(gtzan_test_run, monitoring_params):
    settings, summary = monitoring_params["params"]["monitoring"], gtzan_test_run["summary"]
    archived = resolve(settings["archive"]) / summary["batch_id"]
    assert sorted(p.stem for p in archived.iterdir()) == sorted(gtzan_test_run["tracks"])
    assert not any(resolve(settings["inbox"]).iterdir())
    markdown = gtzan_test_run["artifacts"][0].data
    assert f"Drift check {summary['batch_id']}: **no-drift**" in markdown and "| blues |" in markdown


def test_reports_and_store_hold_both_batches(modern_run, gtzan_test_run, monitoring_params):
    params, uri = monitoring_params["params"], monitoring_params["uri"]
    version = (
        MlflowClient(tracking_uri=uri, registry_uri=uri)
        .get_model_version_by_alias(params["register"]["model_name"], params["register"]["alias"])
        .version
    )
    store = resolve(params["monitoring"]["store"])
    predictions = read_table(store=store, table="predictions")
    assert predictions.groupby("batch_id").size().to_dict() == {
        gtzan_test_run["summary"]["batch_id"]: len(gtzan_test_run["tracks"]),
        "modern": 110,
    }
    assert set(predictions["model_version"]) == {str(version)}
    proba = predictions[proba_columns(params["genres"])].to_numpy()
    assert np.allclose(proba.sum(axis=1), 1.0) and np.allclose(predictions["confidence"], proba.max(axis=1))
    assert (predictions["genre_1"] == predictions["predicted_genre"]).all()
    assert predictions["sha256"].str.fullmatch(r"[0-9a-f]{64}").all()
    for summary in (modern_run["summary"], gtzan_test_run["summary"]):
        folder = resolve(summary["report_dir"])
        assert json.loads((folder / "summary.json").read_text())["verdict"] == summary["verdict"]
        assert (folder / "drift.html").stat().st_size > 100_000 and json.loads((folder / "drift.json").read_text())
    shares = {row["genre"]: row["current_share"] for row in modern_run["summary"]["genre_distribution"]}
    assert set(shares) == set(params["genres"]) and abs(sum(shares.values()) - 1) < 1e-9
    print(
        "\nmodern predicted genres: "
        + ", ".join(f"{g} {s:.1%}" for g, s in sorted(shares.items(), key=lambda i: -i[1]) if s)
    )


def test_odd_and_bad_files_are_refused_with_the_reason_the_rest_scored(monitoring_params, gtzan_slice, tmp_path):
    params, batch = monitoring_params["params"], tmp_path / "batch"
    batch.mkdir()
    y, rate = sf.read(gtzan_slice["abs_path"][0], dtype="float32")
    stereo = librosa.resample(y, orig_sr=rate, target_sr=44100)
    sf.write(batch / "stereo44k.wav", np.stack([stereo, 0.5 * stereo], axis=1), 44100)
    shutil.copy2(gtzan_slice["abs_path"][3], batch / "mono.flac")
    sf.write(batch / "short.flac", y[: rate // 2], rate)
    (batch / "garbage.ogg").write_bytes(b"OggS" + bytes(2000))
    champion = load_scoring_model(params=params, tracking_uri=monitoring_params["uri"])
    scored = score_batch(folder=batch, params=params, champion=champion, batch_id="odd")
    assert sorted(scored.predictions["file"]) == ["mono.flac", "stereo44k.wav"]
    reasons = {r.key: r.reason for r in scored.rejected}
    assert set(reasons) == {"short.flac", "garbage.ogg"}
    assert "below the minimum" in reasons["short.flac"] and str(batch / "garbage.ogg") in reasons["garbage.ogg"]
    assert read_table(store=resolve(params["monitoring"]["store"]), table="rejected", batch_id="odd")[
        "key"
    ].tolist() == [r.key for r in scored.rejected]


@contextmanager
def _evidently_ui(workspace: Path):
    """A real `evidently ui` on a free local port; yields its base URL, stopped on exit."""
    port = free_port()
    command = [
        str(Path(sys.executable).parent / "evidently"),
        "ui",
        "--workspace",
        str(workspace),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + UI_START_TIMEOUT_S
    try:
        import httpx

        while True:
            try:
                if httpx.get(f"{url}/api/projects", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "evidently ui did not start"
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_dashboard_renders_every_panel_with_data_in_chromium(
    modern_run, gtzan_test_run, monitoring_params, params, tmp_path
):
    """The served dashboard in a real headless Chromium: titles, counters of the latest batch, one
    point per batch, legends of the drifted features; the screenshot goes to reports/drift/."""
    import httpx

    from monitoring.dashboard import open_project, panels

    local = monitoring_params["params"]
    _, project = open_project(params=local)
    screenshot = tmp_path / "dashboard.png"
    with _evidently_ui(resolve(local["monitoring"]["workspace"])) as url:
        assert [p["name"] for p in httpx.get(f"{url}/api/projects").json()] == [local["monitoring"]["project"]]
        dom = subprocess.run(
            [
                CHROMIUM,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={tmp_path / 'chromium'}",
                f"--screenshot={screenshot}",
                "--dump-dom",
                f"{url}/projects/{project.id}",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
    text = re.sub(r"\|+", "|", re.sub(r"<[^>]+>", "|", dom))
    summary = modern_run["summary"]
    for panel in panels(params=local, top_features=[]):
        assert panel.title in text
    assert f"|Drifted features (latest batch)|{summary['signals']['features']['count']}|count|" in text
    assert len(set(re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", text))) >= 2  # a point per batch
    assert all(f"|{row['feature']}|" in text for row in summary["top_features"])
    assert all(f"|{genre}|" in text for genre in local["genres"])
    assert dom.count("<svg") >= 4 and screenshot.stat().st_size > 50_000
    with atomic_path(resolve(params["monitoring"]["reports"]) / "dashboard.png", suffix=".png") as target:
        shutil.copyfile(screenshot, target)
