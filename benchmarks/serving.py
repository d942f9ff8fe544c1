"""Serving numbers for BENCHMARKS.md, all through what a user runs: cold `predict` processes (wall and
peak RSS), warm predict of one clip with the registry's champion and where its time goes, batch
scoring of the modern clips through the monitoring path, the HTTP service under concurrent clients,
and every trained model's warm latency through the same served path."""

from __future__ import annotations

import copy
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import numpy as np

from musicgenre.audio import read_native, resample
from musicgenre.config import project_root, resolve
from musicgenre.serving.champion import open_champion, resolve_tracking_uri


def warm_time(fn: Callable[[], Any], repeats: int, clock: Callable[[], float] = time.perf_counter) -> float:
    """Median seconds of `repeats` calls after one warm-up call; `clock=time.process_time` gives the
    CPU time, which waiting for a core shared with other users does not inflate."""
    fn()
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return float(np.median(times))


# Runs the command and reports its wall time and peak RSS. A child forked from this (large) benchmark
# process starts with the parent's pages counted in its maximum RSS; one forked from this small
# wrapper does not, so the wrapper's RUSAGE_CHILDREN is the command's own peak.
MEASURE = (
    "import resource, subprocess, sys, time; start = time.perf_counter(); "
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode; "
    "print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code)"
)


def cold_predict(clip: str, runs: int) -> dict[str, float]:
    """Median wall seconds and peak RSS (MB) of `runs` fresh `predict clip --json` processes."""
    command = [str(Path(sys.executable).with_name("predict")), clip, "--json"]
    walls, rss = [], []
    for _ in range(runs):
        result = subprocess.run(
            [sys.executable, "-c", MEASURE, *command], cwd=project_root(), capture_output=True, text=True, check=True
        )
        wall, peak_kb, code = result.stdout.split()
        if code != "0":
            raise RuntimeError(f"predict exited {code}: {result.stderr[-300:]}")
        walls.append(float(wall))
        rss.append(int(peak_kb) / 1024)  # kilobytes on Linux
    return {
        "wall_s": float(np.median(walls)),
        "rss_mb": float(np.median(rss)),
        "runs": runs,
        "worst_wall_s": max(walls),
        "worst_rss_mb": max(rss),
    }


def champion_model(params: dict[str, Any], workers: int = 1) -> tuple[Any, Any]:
    settings = params["register"]
    return open_champion(
        uri=resolve_tracking_uri(params=params), name=settings["model_name"], alias=settings["alias"], workers=workers
    )


def predict_steps(model: Any, clip: str, repeats: int) -> list[tuple[str, float]]:
    """Warm wall seconds of each step of one champion predict (the bundle's own objects)."""
    predictor = model.predictor
    samples, rate = read_native(clip)
    mono = samples.mean(axis=1, dtype=np.float64)
    steps: list[tuple[str, Callable[[], Any]]] = [("decode (libsndfile)", lambda: read_native(clip))]
    if predictor.needs_features:
        from musicgenre.features import extract

        target = model.config.sample_rate
        y_features = resample(mono, orig_sr=rate, target_sr=target)
        steps += [
            (f"resample to {target} Hz", lambda: resample(mono, orig_sr=rate, target_sr=target)),
            ("classic features (extract)", lambda: extract(y_features, config=model.config)),
        ]
    if predictor.embedding is not None:
        tagger = predictor.embedding.load()
        y = resample(mono, orig_sr=rate, target_sr=tagger.sample_rate)
        batch = tagger.patches(y)
        steps += [
            (
                f"resample to {tagger.sample_rate} Hz",
                lambda: resample(mono, orig_sr=rate, target_sr=tagger.sample_rate),
            ),
            ("tagger log-mel (numpy)", lambda: tagger.patches(y)),
            (f"tagger network, ONNX Runtime ({len(batch)} patches)", lambda: tagger.activations(batch)),
        ]
    item = model.extract(clip)
    steps.append(("classifier head", lambda: predictor.predict_proba([item])))
    steps.append(("whole predict_paths", lambda: model.predict_paths([clip])))
    return [(name, warm_time(fn, repeats)) for name, fn in steps]


def batch_scoring(params: dict[str, Any], folder: Path) -> dict[str, float]:
    """The monitoring path end to end (discover, decode, drift features, champion, store) on `folder`,
    with a throw-away store so the project's own store is not touched; and the champion alone."""
    from monitoring.scoring import load_scoring_model, score_batch

    local = copy.deepcopy(params)
    scratch = Path(tempfile.mkdtemp(prefix="bench-store-"))
    local["monitoring"]["store"] = str(scratch)
    try:
        champion = load_scoring_model(params=local)
        start = time.perf_counter()
        scored = score_batch(folder=folder, params=local, champion=champion, batch_id="benchmark")
        whole = time.perf_counter() - start
        paths = [str(p) for p in scored.predictions["path"]]
        start = time.perf_counter()
        champion.model.predict_paths(paths)
        alone = time.perf_counter() - start
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    clips = len(scored.predictions)
    return {
        "clips": clips,
        "rejected": len(scored.rejected),
        "clips_per_s": clips / whole,
        "champion_clips_per_s": clips / alone,
        "workers": params["monitoring"]["n_jobs"],
    }


def http_latency(params: dict[str, Any], clip: str, requests: int, clients: int) -> dict[str, float]:
    """p50 / p99 of POST /predict with one 30 s clip, `requests` in all from `clients` concurrent clients,
    against `genre-serve` started in its own process."""
    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "musicgenre.serving.http", "--port", str(port)],
        cwd=project_root(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url, data = f"http://127.0.0.1:{port}", Path(clip).read_bytes()
    try:
        _wait_healthy(url, server)
        latencies: list[float] = []
        lock = threading.Lock()

        def client(count: int) -> None:
            with httpx.Client(timeout=120) as session:
                for _ in range(count):
                    start = time.perf_counter()
                    response = session.post(f"{url}/predict", params={"filename": Path(clip).name}, content=data)
                    response.raise_for_status()
                    with lock:
                        latencies.append(time.perf_counter() - start)

        start = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(client, [requests // clients] * clients))
        elapsed = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {
        "p50_s": float(np.percentile(latencies, 50)),
        "p99_s": float(np.percentile(latencies, 99)),
        "requests": len(latencies),
        "clients": clients,
        "per_s": len(latencies) / elapsed,
    }


def _wait_healthy(url: str, server: subprocess.Popen, timeout_s: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("genre-serve exited at start")
        try:
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"genre-serve not healthy within {timeout_s} s")


def model_latencies(params: dict[str, Any], clip: str, repeats: int) -> list[tuple[str, str, str, float]]:
    """(model, family, served by, warm seconds) of one clip for every trained model (grouped protocol),
    each through the served path: the folder as a bundle would serve it."""
    from musicgenre.extraction import Limits, extract_file
    from musicgenre.features import FeatureConfig
    from musicgenre.models import load_predictor, model_names
    from musicgenre.models.predictor import META_FILE, ModelMeta

    config, limits = FeatureConfig.from_params(params), Limits.from_params(params)
    rows = []
    for name in model_names(params):
        directory = resolve(params["paths"]["models"]) / name / "grouped"
        if not (directory / META_FILE).is_file():
            continue
        predictor = load_predictor(directory)

        def run(predictor: Any = predictor) -> Any:
            item = extract_file(
                clip,
                key="clip",
                config=config,
                limits=limits,
                embedding=predictor.embedding,
                features=predictor.needs_features,
            )
            return predictor.predict_proba([item])

        rows.append((name, predictor.family, ModelMeta.read(directory).served["format"], warm_time(run, repeats)))
    return rows


def serving_results(params: dict[str, Any], clips: list[str], repeats: int) -> dict[str, Any]:
    """Every serving measurement; a missing champion is reported, not raised."""
    settings = params["features"]["benchmark"]
    try:
        found, model = champion_model(params)
    except Exception as exc:  # the registry belongs to colleagues and may not hold a champion yet
        return {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"}
    warm = warm_time(lambda: model.predict_paths(clips[:1]), repeats)
    return {
        "champion": f"{found.name} v{found.version}",
        "family": model.predictor.family,
        "input": model.predictor.input,
        "warm_s": warm,
        "steps": predict_steps(model, clips[0], repeats),
        "cold": cold_predict(clips[0], settings["cold_runs"]),
        "batch": batch_scoring(params, resolve(settings["batch_folder"])),
        "http": http_latency(params, clips[0], settings["http_requests"], settings["http_clients"]),
        "models": model_latencies(params, clips[0], repeats),
    }


def serving_lines(serving: dict[str, Any], repeats: int) -> list[str]:
    """Markdown lines of the serving section."""
    if "error" in serving:
        return [f"serving: not available ({serving['error']})"]
    cold, batch, http = serving["cold"], serving["batch"], serving["http"]
    lines = [
        f"Champion from the registry: {serving['champion']} ({serving['family']}, input `{serving['input']}`), "
        "served from its bundle on ONNX Runtime.",
        "",
        f"- cold `predict one.flac --json` (new process: imports, registry lookup, bundle check, ONNX sessions, "
        f"predict), median of {cold['runs']}: **{cold['wall_s']:.2f} s** wall, **{cold['rss_mb']:.0f} MB** "
        f"peak RSS (worst {cold['worst_wall_s']:.2f} s, {cold['worst_rss_mb']:.0f} MB)",
        f"- warm predict of one 30 s clip (median of {repeats}): **{1000 * serving['warm_s']:.0f} ms**",
        f"- batch scoring, monitoring path end to end ({batch['clips']} clips of `modern/`, decode + drift "
        f"features + champion + store, {batch['workers']} workers): **{batch['clips_per_s']:.1f} clips/s**; "
        f"the champion alone {batch['champion_clips_per_s']:.1f} clips/s",
        f"- HTTP `POST /predict` of one 30 s clip, {http['requests']} requests from {http['clients']} concurrent "
        f"clients: p50 **{1000 * http['p50_s']:.0f} ms**, p99 **{1000 * http['p99_s']:.0f} ms** "
        f"({http['per_s']:.1f} requests/s)",
        "",
        "| step of one warm champion predict (wall) | ms |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {1000 * seconds:.1f} |" for name, seconds in serving["steps"]]
    lines += ["", "| model (grouped), same served path | family | served by | warm predict, ms |", "|---|---|---|---:|"]
    lines += [
        f"| {name} | {family} | {served} | {1000 * seconds:.0f} |"
        for name, family, served, seconds in serving["models"]
    ]
    return lines
