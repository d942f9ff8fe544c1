"""The drift check end to end on the real data, with a temp registry champion, store and workspace:
the 110 modern clips drift, the GTZAN test-split tracks do not (the false-alarm check); the daily
flow archives its inbox; a bad or odd file is refused with its reason while the batch goes on; per-file
novelty; attach-labels; the dashboard (three batches, labels attached) and the overview page in Chromium."""

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

from monitoring.check import check_batch
from monitoring.cli import EXIT_DRIFT, EXIT_ERROR, EXIT_OK, app
from monitoring.novelty import fit_novelty, novelty
from monitoring.reference import reference_tracks
from monitoring.scoring import load_scoring_model, score_batch
from monitoring.store import read_table
from musicgenre.config import resolve
from musicgenre.evaluation import proba_columns
from musicgenre.io import atomic_path, file_sha256
from tests.code.test_overview import plotted_traces
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


@pytest.fixture(scope="session")
def mixed_run(monitoring_params, modern_run, gtzan_test_run, gtzan_manifest):
    """A third batch (after the other two): 10 GTZAN test-split tracks and 10 modern clips."""
    params = monitoring_params["params"]
    folder = monitoring_params["root"] / "mixed-batch"
    folder.mkdir()
    paths = gtzan_manifest.set_index("track").loc[gtzan_test_run["tracks"][::3][:10], "abs_path"]
    for path in [*paths, *_modern()[::11][:10]]:
        shutil.copy2(path, folder / path.name)
    champion = load_scoring_model(params=params, tracking_uri=monitoring_params["uri"])
    return check_batch(folder=folder, params=params, champion=champion, batch_id="mixed").to_dict()


def _attach(monitoring_params, batch_id: str, csv: Path):
    return CliRunner().invoke(
        app, ["attach-labels", batch_id, str(csv), "--params", str(monitoring_params["file"])], catch_exceptions=False
    )


def _stored_files(params) -> dict[str, str]:
    """sha256 of every file in the store and the reports folder (what attach-labels may write)."""
    settings = params["monitoring"]
    roots = [resolve(settings["store"]), resolve(settings["reports"])]
    return {str(p): file_sha256(p) for root in roots for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def labelled(monitoring_params, gtzan_test_run, gtzan_manifest, modern_run):
    """The GTZAN test batch's true genres attached (a CSV as a user writes it) after the bad CSVs were refused."""
    summary = gtzan_test_run["summary"]
    truth = gtzan_manifest.set_index("track").loc[gtzan_test_run["tracks"]]
    labels = pd.DataFrame({"file": [Path(f).name for f in truth["file"]], "genre": truth["genre"].to_list()})
    csv = monitoring_params["root"] / "labels.csv"
    labels.to_csv(csv, index=False)
    result = _attach(monitoring_params, summary["batch_id"], csv)
    return {"result": result, "labels": labels, "batch_id": summary["batch_id"]}


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


def _chromium(url: str, *, screenshot: Path, profile: Path, size: str) -> str:
    """The page's DOM after scripts ran, and its screenshot, from a real headless Chromium."""
    return subprocess.run(
        [
            CHROMIUM,
            *CHROMIUM_FLAGS,
            f"--window-size={size}",
            f"--user-data-dir={profile}",
            f"--screenshot={screenshot}",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout


def _keep(screenshot: Path, *, params, name: str) -> None:
    with atomic_path(resolve(params["monitoring"]["reports"]) / name, suffix=".png") as target:
        shutil.copyfile(screenshot, target)


def test_dashboard_renders_every_panel_with_data_in_chromium(
    modern_run, gtzan_test_run, mixed_run, labelled, monitoring_params, params, tmp_path
):
    """The served dashboard in a real headless Chromium after three batches and one label set: titles,
    counters of the latest batch, one point per batch, the latest verdict with its false-alarm rate, its
    most novel files, realized accuracy, legends of the drifted features; the screenshot goes to
    reports/drift/dashboard.png."""
    import httpx

    from monitoring.dashboard import open_project, panels

    local = monitoring_params["params"]
    _, project = open_project(params=local)
    screenshot = tmp_path / "dashboard.png"
    with _evidently_ui(resolve(local["monitoring"]["workspace"])) as url:
        assert [p["name"] for p in httpx.get(f"{url}/api/projects").json()] == [local["monitoring"]["project"]]
        dom = _chromium(
            f"{url}/projects/{project.id}", screenshot=screenshot, profile=tmp_path / "chromium", size="1400,4200"
        )
    text = re.sub(r"\|+", "|", re.sub(r"<[^>]+>", "|", dom))
    for panel in panels(params=local, top_features=[]):
        assert panel.title in text
    features = mixed_run["signals"]["features"]
    assert f"|Drifted features (latest batch)|{features['count']}|count|" in text
    assert len(set(re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", text))) >= 3  # a point per batch
    assert f"batch mixed: {mixed_run['verdict']}, share {features['share']:.3f}" in text
    assert f"(false-alarm rate {features['false_alarm']:.1%})" in text
    assert mixed_run["novel_files"][0]["file"] in text
    assert all(f"|{legend}|" in text for legend in ("estimated accuracy", "realized accuracy", "false-alarm rate"))
    assert all(f"|{row['feature']}|" in text for row in mixed_run["top_features"])
    assert all(f"|{genre}|" in text for genre in local["genres"])
    assert dom.count("<svg") >= 6 and screenshot.stat().st_size > 50_000
    _keep(screenshot, params=params, name="dashboard.png")


def test_overview_page_draws_each_genre_in_its_colour_in_chromium(
    mixed_run, labelled, monitoring_params, params, tmp_path
):
    """reports/drift/overview.html after three batches: ten genre lines in ten distinct colours, straight
    segments, one point per batch in time order; rendered by Chromium (plotly draws its SVG traces)."""
    local = monitoring_params["params"]
    page = resolve(local["monitoring"]["overview"])
    traces = {t["name"]: t for t in plotted_traces(page.read_text())}
    colours = [traces[g]["line"]["color"] for g in local["genres"]]
    assert len(set(colours)) == 10 and all(t["line"]["shape"] == "linear" for t in traces.values())
    batches = traces["blues"]["x"]
    assert batches[1:] == ["modern", "mixed"] and len(batches) == 3
    shares = {row["genre"]: row["current_share"] for row in mixed_run["genre_distribution"]}
    assert [traces[g]["y"][-1] for g in local["genres"]] == pytest.approx([shares[g] for g in local["genres"]])
    screenshot = tmp_path / "overview.png"
    dom = _chromium(page.as_uri(), screenshot=screenshot, profile=tmp_path / "chromium", size="1400,1300")
    assert dom.count('class="scatterlayer') >= 3 and dom.count('class="trace scatter') >= 14
    assert all(colour.lower() in dom.lower() or colour in dom for colour in colours)
    _keep(screenshot, params=params, name="overview.png")


def test_novelty_percentiles_of_gtzan_tracks_on_the_real_embeddings(params, pipeline_artifacts):
    """A reference (training) track is among its own neighbours: a low percentile; a test-split track by an
    artist the reference never saw lands mid-range, as the leave-group-out null intends."""
    model = fit_novelty(params=params)
    embeddings = pd.read_parquet(resolve(params["paths"]["embeddings"])).set_index("track")
    columns = [c for c in embeddings.columns if c.startswith("emb_")]
    splits = pd.read_csv(resolve(params["paths"]["splits"]))
    test = splits.loc[splits["split_grouped"] == "test", "track"]
    train = novelty(model=model, embeddings=embeddings.loc[reference_tracks(params=params), columns].to_numpy())
    held_out = novelty(model=model, embeddings=embeddings.loc[test, columns].to_numpy())
    assert len(model.loo_scores) == len(train) == 106 and np.isfinite(model.loo_scores).all()
    assert train["novelty_percentile"].median() < 10
    assert 25 <= held_out["novelty_percentile"].median() <= 65
    assert (train["novelty"].to_numpy() < held_out["novelty"].median()).mean() > 0.9
    print(
        f"\nnovelty percentile medians: training {train['novelty_percentile'].median():.0f}, "
        f"test split {held_out['novelty_percentile'].median():.0f}"
    )


def test_novelty_is_stored_with_the_predictions_and_named_in_the_summary(modern_run, gtzan_test_run, monitoring_params):
    params = monitoring_params["params"]
    predictions = read_table(store=resolve(params["monitoring"]["store"]), table="predictions")
    assert predictions["novelty"].gt(0).all() and predictions["novelty_percentile"].between(0, 100).all()
    percentile = predictions.groupby("batch_id")["novelty_percentile"].mean()
    gtzan_id = gtzan_test_run["summary"]["batch_id"]
    assert percentile["modern"] > percentile[gtzan_id]  # modern clips sit a little further from GTZAN train
    for summary in (modern_run["summary"], gtzan_test_run["summary"]):
        rows = predictions[predictions["batch_id"] == summary["batch_id"]].sort_values("novelty", ascending=False)
        top = params["monitoring"]["novelty"]["top_files"]
        assert [r["file"] for r in summary["novel_files"]] == rows["file"].head(top).tolist()
        assert summary["n_novel"] == int((rows["novelty_percentile"] > 99).sum())
    print(f"\nmean novelty percentile: GTZAN test {percentile[gtzan_id]:.0f}, modern {percentile['modern']:.0f}")


def test_attach_labels_records_the_realized_accuracy(labelled, monitoring_params, gtzan_test_run):
    params, batch_id = monitoring_params["params"], labelled["batch_id"]
    assert labelled["result"].exit_code == EXIT_OK, labelled["result"].output
    store = resolve(params["monitoring"]["store"])
    predictions = read_table(store=store, table="predictions", batch_id=batch_id).set_index("file")
    truth = labelled["labels"].set_index("file")["genre"]
    accuracy = float((predictions.loc[truth.index, "predicted_genre"] == truth).mean())
    folder = resolve(params["monitoring"]["reports"]) / batch_id
    realized = json.loads((folder / "summary.json").read_text())["realized"]
    assert realized["accuracy"] == pytest.approx(accuracy) and realized["n_labelled"] == len(truth) == 32
    assert f"realized accuracy {accuracy:.1%} on 32 labelled files" in labelled["result"].stdout
    stored = read_table(store=store, table="labels", batch_id=batch_id)
    assert stored.set_index("file")["genre"].sort_index().equals(truth.sort_index())
    assert (folder / "classification.html").stat().st_size > 100_000
    traces = {t["name"]: t for t in plotted_traces(resolve(params["monitoring"]["overview"]).read_text())}
    realized_line = dict(zip(traces["realized accuracy"]["x"], traces["realized accuracy"]["y"]))
    assert realized_line[batch_id] == pytest.approx(accuracy) and realized_line["modern"] is None
    print(f"\nGTZAN test batch: realized accuracy {accuracy:.1%}")


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([("FIRST", "pop"), ("not-in-batch.ogg", "rock")], "files not in batch modern: 'not-in-batch.ogg'"),
        ([("FIRST", "pop"), ("SECOND", "polka")], "unknown genres 'polka'"),
        ([("FIRST", "pop"), ("SECOND", "rock"), ("FIRST", "rock")], "duplicate rows for 'FIRST'"),
    ],
    ids=["unknown-file", "unknown-genre", "duplicate-row"],
)
def test_a_bad_labels_csv_is_one_line_and_changes_nothing_stored(
    rows, message, monitoring_params, modern_run, tmp_path
):
    params = monitoring_params["params"]
    files = read_table(store=resolve(params["monitoring"]["store"]), table="predictions", batch_id="modern")["file"]
    names = {"FIRST": files.iat[0], "SECOND": files.iat[1]}
    csv = tmp_path / "labels.csv"
    pd.DataFrame([(names.get(f, f), g) for f, g in rows], columns=["file", "genre"]).to_csv(csv, index=False)
    before = _stored_files(params)
    result = _attach(monitoring_params, "modern", csv)
    assert result.exit_code == EXIT_ERROR and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"error: {csv}: ")
    assert message.replace("FIRST", names["FIRST"]) in result.stderr
    assert _stored_files(params) == before
    assert read_table(store=resolve(params["monitoring"]["store"]), table="labels", batch_id="modern").empty
