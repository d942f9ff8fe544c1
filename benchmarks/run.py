"""`make benchmark`: the feature extractor against the naive per-feature librosa calls on real GTZAN
tracks (time and agreement), batch throughput and memory, and the serving/pipeline numbers of the
rest of the platform when they exist. Prints tables and writes BENCHMARKS.md at the project root."""

from __future__ import annotations

import cProfile
import os
import platform
import pstats
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import librosa
import numpy as np
import pandas as pd
import psutil
from rich.console import Console
from rich.markdown import Markdown
from threadpoolctl import threadpool_info, threadpool_limits

from benchmarks.scale_report import keep_section
from benchmarks.serving import serving_lines, serving_results, warm_time
from musicgenre.audio import load_audio
from musicgenre.config import load_params, project_root, resolve
from musicgenre.extraction import Limits, extract_batch
from musicgenre.features import FeatureConfig, extract, feature_names
from musicgenre.features_reference import naive_extract
from musicgenre.io import write_text

GROUPS = ("tempo", "chroma", "mfcc", "contrast", "centroid", "rolloff", "zcr")
console = Console()


def machine() -> list[str]:
    """CPU model, cores, load and the BLAS numpy uses: the context every number below depends on."""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    blas = [
        f"{i['internal_api']} {i.get('version')} ({i['num_threads']} threads, {i.get('architecture')})"
        for i in threadpool_info()
        if i["user_api"] == "blas"
    ]
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"CPU: {model}, {os.cpu_count()} logical cores, {psutil.virtual_memory().total / 2**30:.1f} GiB RAM",
        f"Load average (1/5/15 min) at start: {load}",
        f"numpy {np.__version__} with BLAS {'; '.join(blas) or 'unknown'}; librosa {librosa.__version__}; "
        f"Python {platform.python_version()}",
    ]


def pick_tracks(params: dict[str, Any], count: int) -> pd.DataFrame:
    """`count` real tracks spread over the genres (round robin by track id)."""
    source = resolve(params["data"]["source"])
    manifest = pd.read_csv(source / "manifest.csv").sort_values("track")
    manifest["rank"] = manifest.groupby("genre").cumcount()
    picked = manifest.sort_values(["rank", "genre"]).head(count).reset_index(drop=True)
    picked["path"] = [str(source / f) for f in picked["file"]]
    return picked


def group_differences(fast: np.ndarray, naive: np.ndarray, names: list[str]) -> dict[str, tuple[float, float]]:
    """Per feature group: max |fast - naive| and max of it relative to the feature's scale (max |naive|)."""
    scale = np.maximum(np.abs(naive).max(axis=0), np.finfo(np.float32).eps)
    absolute, relative = np.abs(fast - naive), np.abs(fast - naive) / scale
    out = {}
    for group in GROUPS:
        cols = [i for i, name in enumerate(names) if name.split("_")[0] == group]
        out[group] = (float(absolute[:, cols].max()), float(relative[:, cols].max()))
    return out


def compare_with_naive(audio: dict[str, np.ndarray], config: FeatureConfig, repeats: int) -> dict[str, Any]:
    """Warm time of both extractors and the agreement of their outputs on the same tracks (1 BLAS thread)."""
    names, rows = feature_names(config), {"track": [], "segment": []}
    times: dict[str, list[float]] = {"fast_s": [], "naive_s": [], "fast_cpu_s": [], "naive_cpu_s": []}
    naive_rows, log_mel_diff, tempo_flips = {"track": [], "segment": []}, 0.0, [0, 0]
    with threadpool_limits(1):
        for y in audio.values():
            for clock, suffix in ((time.perf_counter, "s"), (time.process_time, "cpu_s")):
                times[f"fast_{suffix}"].append(warm_time(lambda: extract(y, config=config), repeats, clock))
                times[f"naive_{suffix}"].append(warm_time(lambda: naive_extract(y, config=config), 1, clock))
            fast, naive = extract(y, config=config), naive_extract(y, config=config)
            for level, i in (("track", 0), ("segment", 1)):
                rows[level].append(np.atleast_2d(fast[i]))
                naive_rows[level].append(np.atleast_2d(naive[i]))
            log_mel_diff = max(log_mel_diff, float(np.abs(fast[2] - naive[2]).max()))
            tempo_flips[0] += int((fast[1][:, 0] != naive[1][:, 0]).sum())
            tempo_flips[1] += len(fast[1])
    diffs = {
        level: group_differences(np.concatenate(rows[level]), np.concatenate(naive_rows[level]), names)
        for level in rows
    }
    return {
        **{key: float(np.median(value)) for key, value in times.items()},
        "diffs": diffs,
        "log_mel_max_abs_db": log_mel_diff,
        "tempo_flips": tempo_flips,
    }


def profile_extract(audio: list[np.ndarray], config: FeatureConfig) -> list[tuple[str, float]]:
    """CPU milliseconds per track spent in each step of `extract` (cProfile cumulative, 1 BLAS thread)."""
    steps = {
        "frame_table": "STFT + per-frame spectra (all frames)",
        "_magnitude": "  of which STFT (FFT)",
        "_contrast_extremes": "  of which contrast peaks/valleys",
        "_zcr": "zero-crossing rate (track + segments)",
        "aggregate": "per-signal dB, MFCC, onset, tempo, stats",
        "_tempo": "  of which tempo (tempogram)",
    }
    with threadpool_limits(1):
        extract(audio[0], config=config)
        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        for y in audio:
            extract(y, config=config)
        profiler.disable()
    stats = pstats.Stats(profiler).stats  # {(file, line, name): (cc, nc, tottime, cumtime, callers)}
    total = {name: 0.0 for name in steps}
    for (file, _, name), (_, _, _, cumtime, _) in stats.items():
        if file.endswith("features.py") and name in steps:
            total[name] += cumtime
    return [(steps[name], 1000 * total[name] / len(audio)) for name in steps]


def batch_throughput(tracks: pd.DataFrame, config: FeatureConfig, limits: Limits, n_jobs: int) -> dict[str, float]:
    """Tracks/s through extract_batch (workers warmed first) and the peak RSS of the process tree."""
    items = list(zip(tracks["track"], tracks["path"]))
    extract_batch(items[: 2 * n_jobs], config=config, limits=limits, n_jobs=n_jobs, show_progress=False)
    peak, stop = [0.0], threading.Event()
    sampler = threading.Thread(target=_sample_rss, args=(peak, stop), daemon=True)
    sampler.start()
    start = time.perf_counter()
    results, failures = extract_batch(items, config=config, limits=limits, n_jobs=n_jobs, show_progress=False)
    elapsed = time.perf_counter() - start
    stop.set()
    sampler.join()
    return {
        "n_jobs": n_jobs,
        "tracks": len(results),
        "failed": len(failures),
        "seconds": elapsed,
        "tracks_per_s": len(results) / elapsed,
        "peak_rss_mb": peak[0] / 2**20,
    }


def _sample_rss(peak: list[float], stop: threading.Event) -> None:
    me = psutil.Process()
    while not stop.wait(0.05):
        try:
            tree = [me, *me.children(recursive=True)]
            peak[0] = max(peak[0], sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:  # a worker ended between listing and reading
            continue


def dvc_noop(root: Path) -> tuple[list[str], float | None]:
    """Time of `dvc repro` when `dvc status` says everything is up to date; never a real reproduction."""
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    status = subprocess.run(["dvc", "status"], cwd=root, capture_output=True, text=True, env=env, timeout=300)
    if status.returncode != 0 or "up to date" not in status.stdout:
        changed = sum(
            1 for line in status.stdout.splitlines() if line.rstrip().endswith(":") and not line.startswith("\t")
        )
        return [f"no-op `dvc repro`: not measured, `dvc status` is not clean ({changed} stage(s) changed)"], None
    start = time.perf_counter()
    repro = subprocess.run(["dvc", "repro"], cwd=root, capture_output=True, text=True, env=env, timeout=600)
    seconds = time.perf_counter() - start
    return [f"no-op `dvc repro` (everything up to date): {seconds:.1f} s (exit {repro.returncode})"], seconds


def targets(targets: dict[str, float], results: dict[str, Any]) -> list[str]:
    """The issue's targets (features.benchmark.targets) against this run's numbers."""
    naive, batches, rtol = results["naive"], results["batches"], results["reference_rtol"]
    worst = max(rel for level in naive["diffs"].values() for _, rel in level.values())
    full_s = results["full_gtzan_tracks"] / max(b["tracks_per_s"] for b in batches)
    rows = [
        (
            f"extractor >= {targets['speedup']:g}x faster than naive librosa calls (CPU time)",
            f"{naive['naive_cpu_s'] / naive['fast_cpu_s']:.1f}x",
            naive["naive_cpu_s"] / naive["fast_cpu_s"] >= targets["speedup"],
        ),
        (
            f"<= {targets['extract_ms']:g} ms per 30 s track per core, warm (CPU time, median of "
            f"{results['tracks']} tracks)",
            f"{1000 * naive['fast_all_cpu_s']:.1f} ms",
            1000 * naive["fast_all_cpu_s"] <= targets["extract_ms"],
        ),
        (f"features equal to the naive calls within {rtol:g} of each feature's scale", f"{worst:.1e}", worst <= rtol),
        (
            f"no-op `dvc repro` < {targets['noop_repro_s']:g} s",
            "not measured" if results["noop_s"] is None else f"{results['noop_s']:.1f} s",
            results["noop_s"] is not None and results["noop_s"] < targets["noop_repro_s"],
        ),
        (
            f"full GTZAN ({results['full_gtzan_tracks']} tracks) projected < {targets['full_gtzan_s']:g} s on "
            f"{max(b['n_jobs'] for b in batches)} workers",
            f"{full_s:.0f} s",
            full_s < targets["full_gtzan_s"],
        ),
    ]
    rows += serving_targets(targets, results["serving"])
    return [
        "| target | measured | met |",
        "|---|---:|---|",
        *[f"| {name} | {value} | {'yes' if met else '**no**'} |" for name, value, met in rows],
    ]


def serving_targets(targets: dict[str, float], serving: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """The serving issue's targets: cold and warm predict, batch scoring, the HTTP service."""
    if "error" in serving:
        return [("serving targets", f"not measured ({serving['error']})", False)]
    cold, batch, http = serving["cold"], serving["batch"], serving["http"]
    return [
        (
            f"cold `predict one.flac` < {targets['cold_predict_s']:g} s wall (median of {cold['runs']} processes)",
            f"{cold['wall_s']:.2f} s",
            cold["wall_s"] < targets["cold_predict_s"],
        ),
        (
            f"cold `predict one.flac` < {targets['cold_rss_mb']:g} MB peak RSS",
            f"{cold['rss_mb']:.0f} MB",
            cold["rss_mb"] < targets["cold_rss_mb"],
        ),
        (
            f"warm predict of one clip < {targets['predict_ms']:g} ms (registry champion, {serving['champion']})",
            f"{1000 * serving['warm_s']:.0f} ms",
            1000 * serving["warm_s"] < targets["predict_ms"],
        ),
        (
            f"batch scoring (monitoring path, {batch['clips']} modern clips) "
            f">= {targets['batch_clips_per_s']:g} clips/s",
            f"{batch['clips_per_s']:.1f} clips/s",
            batch["clips_per_s"] >= targets["batch_clips_per_s"],
        ),
        (
            f"HTTP p50 < {targets['http_p50_ms']:g} ms ({http['clients']} concurrent clients)",
            f"{1000 * http['p50_s']:.0f} ms",
            1000 * http["p50_s"] < targets["http_p50_ms"],
        ),
        (
            f"HTTP p99 < {targets['http_p99_ms']:g} ms ({http['requests']} requests)",
            f"{1000 * http['p99_s']:.0f} ms",
            1000 * http["p99_s"] < targets["http_p99_ms"],
        ),
    ]


def report(machine_lines: list[str], settings: dict[str, Any], results: dict[str, Any]) -> str:
    """BENCHMARKS.md as markdown."""
    naive, batches = results["naive"], results["batches"]
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `make benchmark` (`python -m benchmarks.run`) on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        *[f"- {x}" for x in machine_lines],
        "",
        "## Targets",
        "",
        *targets(settings["targets"], results),
        "",
        "## Feature extraction, one 30 s track, warm, 1 BLAS thread",
        "",
        f"Median over {settings['naive_tracks']} real GTZAN tracks (same full feature set: track vector, "
        f"segment vectors, log-mel): project `extract` {1000 * naive['fast_s']:.1f} ms/track vs naive "
        f"per-feature librosa calls {1000 * naive['naive_s']:.0f} ms/track, "
        f"**{naive['naive_s'] / naive['fast_s']:.1f}x** faster; in CPU time {1000 * naive['fast_cpu_s']:.1f} vs "
        f"{1000 * naive['naive_cpu_s']:.0f} ms, **{naive['naive_cpu_s'] / naive['fast_cpu_s']:.1f}x**. "
        f"Over {settings['tracks']} tracks: {1000 * naive['fast_all_s']:.1f} ms/track wall, "
        f"{1000 * naive['fast_all_cpu_s']:.1f} ms/track CPU time (medians; CPU time is what one free core "
        "would take, wall time includes waiting for the shared cores).",
        "",
        "| step of `extract` (cProfile, CPU time, incl. profiler overhead) | ms/track |",
        "|---|---:|",
        *[f"| {name} | {ms:.1f} |" for name, ms in results["profile"]],
        "",
        "## Agreement with the naive librosa calls",
        "",
        "Relative = |fast - naive| / max |naive| of that feature over the rows (the tolerance the tests assert).",
        "",
        "| group | track max abs | track max rel | segment max abs | segment max rel |",
        "|---|---:|---:|---:|---:|",
    ]
    for group in GROUPS:
        (ta, tr), (sa, sr) = naive["diffs"]["track"][group], naive["diffs"]["segment"][group]
        lines.append(f"| {group} | {ta:.2e} | {tr:.2e} | {sa:.2e} | {sr:.2e} |")
    flips, total = naive["tempo_flips"]
    lines += [
        "",
        f"Log-mel (per segment): max abs difference {naive['log_mel_max_abs_db']:.2e} dB. "
        f"Segment tempo differs in {flips} of {total} segments.",
        "",
        "## Batch extraction (`musicgenre.extraction.extract_batch`, load + resample + extract)",
        "",
        "| n_jobs | tracks | seconds | tracks/s | peak RSS (process tree) |",
        "|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {b['n_jobs']} | {b['tracks']} | {b['seconds']:.1f} | {b['tracks_per_s']:.2f} | {b['peak_rss_mb']:.0f} MB |"
        for b in batches
    ]
    full = settings["full_gtzan_tracks"]
    projected = ", ".join(f"n_jobs={b['n_jobs']}: {full / b['tracks_per_s']:.0f} s" for b in batches)
    lines += [
        "",
        f"Projected full GTZAN ({full} tracks) at these rates: {projected}.",
        "",
        "## Serving",
        "",
        *serving_lines(results["serving"], settings["repeats"]),
        "",
        "## Pipeline",
        "",
        *[f"- {x}" for x in results["pipeline_lines"]],
        "",
        f"Load average at the end: "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}. Other users share these cores: compare runs only "
        "at similar load.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    params = load_params()
    settings, config = params["features"]["benchmark"], FeatureConfig.from_params(params)
    machine_lines = machine()
    tracks = pick_tracks(params, max(settings["tracks"], settings["batch_tracks"]))
    audio = {
        row.track: load_audio(row.path, sample_rate=config.sample_rate)
        for row in tracks.head(settings["tracks"]).itertuples()
    }
    console.print(f"[bold]comparing with the naive calls on {settings['naive_tracks']} tracks ...")
    naive = compare_with_naive(dict(list(audio.items())[: settings["naive_tracks"]]), config, settings["repeats"])
    with threadpool_limits(1):
        for key, clock in (("fast_all_s", time.perf_counter), ("fast_all_cpu_s", time.process_time)):
            naive[key] = float(
                np.median(
                    [warm_time(lambda: extract(y, config=config), settings["repeats"], clock) for y in audio.values()]
                )
            )
    profile = profile_extract(list(audio.values()), config)
    console.print("[bold]batch throughput ...")
    limits, batch = Limits.from_params(params), tracks.head(settings["batch_tracks"])
    batches = [batch_throughput(batch, config, limits, n_jobs) for n_jobs in settings["n_jobs"]]
    console.print("[bold]serving and pipeline ...")
    serving = serving_results(params, list(tracks["path"].head(settings["predict_clips"])), settings["repeats"])
    noop_lines, noop_s = dvc_noop(project_root())
    results = {
        "naive": naive,
        "profile": profile,
        "batches": batches,
        "serving": serving,
        "noop_s": noop_s,
        "pipeline_lines": noop_lines,
        "tracks": settings["tracks"],
        "full_gtzan_tracks": settings["full_gtzan_tracks"],
        "reference_rtol": params["features"]["reference_rtol"],
    }
    text = report(machine_lines, settings, results)
    output = project_root() / settings["output"]
    old = output.read_text(encoding="utf-8") if output.is_file() else ""
    write_text(output, keep_section(old=old, new=text))  # the scale section is make scale-benchmark's
    console.print(Markdown(text))


if __name__ == "__main__":
    sys.exit(main())
