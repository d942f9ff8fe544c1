"""`make scale-benchmark`: the whole pipeline at N tracks (params.scale.benchmark.tracks), per stage wall
time and peak resident memory, written into BENCHMARKS.md with a plot and a projection to 10k/100k tracks.

Per N: `genre data scale-corpus` builds the corpus under scale.benchmark.workdir (outside the repo), the
committed HEAD is cloned beside it with its own DVC cache, GTZAN_SOURCE points at the corpus, and
`genre data sync` + `dvc repro` run while psutil samples the process tree every poll_s: a stage is the
`python -m stages.<name>` process DVC starts, its wall time first-seen to gone, its peak RSS the largest
sum of RSS over it and its descendants (worker processes included; pages shared between processes are
counted in each, so this is an upper bound). Scratch folders are deleted after each N; the measurements
go to scale.benchmark.results, from which `--report-only` redraws the report.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from benchmarks.scale_report import write_report
from musicgenre.config import load_params, project_root, resolve
from musicgenre.io import write_json

STAGE_CMD = re.compile(r"-m\s+stages\.(?P<stage>[a-z_]+)(?:\s+--model\s+(?P<item>\S+))?")
CLEAN_ENV = ("MUSICGENRE_ROOT", "MUSICGENRE_PARAMS", "MLFLOW_TRACKING_URI", "GTZAN_SOURCE")


def stage_label(command: str) -> str | None:
    """`train@cnn` for `python -m stages.train --model cnn`; None for any other process."""
    match = STAGE_CMD.search(command)
    if not match:
        return None
    return f"{match['stage']}@{match['item']}" if match["item"] else match["stage"]


def tree_rss(process: psutil.Process) -> int:
    """Bytes resident in `process` and all its descendants (0 for the ones that ended meanwhile)."""
    total = 0
    for member in [process, *_children(process)]:
        try:
            total += member.memory_info().rss
        except psutil.Error:
            pass
    return total


def _children(process: psutil.Process) -> list[psutil.Process]:
    try:
        return process.children(recursive=True)
    except psutil.Error:
        return []


def stage_roots(process: psutil.Process) -> dict[str, psutil.Process]:
    """The stage processes under `process` by label; a forked child with its parent's command line is not one."""
    roots: dict[str, psutil.Process] = {}
    for child in _children(process):
        try:
            label = stage_label(" ".join(child.cmdline()))
            parent = child.parent()
            parent_label = stage_label(" ".join(parent.cmdline())) if parent else None
        except psutil.Error:
            continue
        if label and label != parent_label:
            roots.setdefault(label, child)
    return roots


def watch(command: list[str], *, cwd: Path, env: dict[str, str], poll_s: float, log: Path) -> dict[str, Any]:
    """Run `command`, sampling its tree: {stages: {label: {seconds, peak_rss_mb}}, seconds, peak_rss_mb}."""
    stages: dict[str, dict[str, float]] = {}
    peak, started = 0, time.monotonic()
    with open(log, "ab") as sink:
        process = psutil.Popen(command, cwd=cwd, env=env, stdout=sink, stderr=subprocess.STDOUT)
        while process.poll() is None:
            now = time.monotonic()
            peak = max(peak, tree_rss(process))
            for label, root in stage_roots(process).items():
                entry = stages.setdefault(label, {"start": now, "end": now, "peak_rss": 0})
                entry["end"] = now + poll_s  # gone by the next sample at the latest
                entry["peak_rss"] = max(entry["peak_rss"], tree_rss(root))
            time.sleep(poll_s)
    if process.returncode != 0:
        raise RuntimeError(f"`{' '.join(command)}` failed in {cwd} (exit {process.returncode}); see {log}")
    return {
        "seconds": round(time.monotonic() - started, 2),
        "peak_rss_mb": round(peak / 2**20, 1),
        "stages": {
            label: {"seconds": round(e["end"] - e["start"], 2), "peak_rss_mb": round(e["peak_rss"] / 2**20, 1)}
            for label, e in stages.items()
        },
    }


def scratch_checkout(*, root: Path, target: Path, cache: Path, commit: str = "HEAD") -> str:
    """A clone of a commit (by default the committed HEAD: what a fresh clone runs) with its own DVC cache;
    returns the commit's full hash."""
    resolved = subprocess.run(["git", "rev-parse", commit], cwd=root, check=True, capture_output=True, text=True)
    shutil.rmtree(target, ignore_errors=True)
    subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(root), str(target)], check=True)
    subprocess.run(["git", "checkout", "--quiet", resolved.stdout.strip()], cwd=target, check=True)
    dvc = [sys.executable, "-m", "dvc", "config", "--local"]
    subprocess.run([*dvc, "cache.dir", str(cache)], cwd=target, check=True)
    subprocess.run([*dvc, "core.check_update", "false"], cwd=target, check=True)
    return resolved.stdout.strip()


def stage_env(*, corpus: Path | None) -> dict[str, str]:
    """This environment with the corpus as the GTZAN source (None: the clone's own data.source, as on a
    fresh clone) and nothing pointing at the real checkout."""
    env = {key: value for key, value in os.environ.items() if key not in CLEAN_ENV}
    env.update(PYTHONUNBUFFERED="1", **({"GTZAN_SOURCE": str(corpus)} if corpus else {}))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def fresh_pipeline(
    *, root: Path, commit: str, checkout: Path, cache: Path, env: dict[str, str], poll_s: float, log: Path
) -> dict[str, Any]:
    """`genre data sync` + `dvc repro` in a scratch clone of `commit` with its own DVC cache, both watched;
    the clone and cache removed afterwards. {commit: full hash, sync: watch(...), repro: watch(...)}."""
    try:
        resolved = scratch_checkout(root=root, target=checkout, cache=cache, commit=commit)
        sync = watch(
            [sys.executable, "-m", "musicgenre.cli", "data", "sync"], cwd=checkout, env=env, poll_s=poll_s, log=log
        )
        repro = watch([sys.executable, "-m", "dvc", "repro"], cwd=checkout, env=env, poll_s=poll_s, log=log)
    finally:
        for folder in (checkout, cache):
            shutil.rmtree(folder, ignore_errors=True)
    return {"commit": resolved, "sync": sync, "repro": repro}


def run_one(*, tracks: int, root: Path, workdir: Path, poll_s: float) -> dict[str, Any]:
    """Corpus, scratch clone, data sync and dvc repro at N tracks; scratch folders removed afterwards."""
    corpus, checkout, cache = workdir / f"corpus-{tracks}", workdir / f"repo-{tracks}", workdir / f"cache-{tracks}"
    log = workdir / f"run-{tracks}.log"
    log.unlink(missing_ok=True)
    try:
        source = resolve(load_params()["data"]["source"]).resolve()  # the real tracks, never $GTZAN_SOURCE
        command = [sys.executable, "-m", "musicgenre.cli", "data", "scale-corpus", "--tracks", str(tracks)]
        command += ["--out", str(corpus), "--source", str(source)]
        build = watch(command, cwd=root, env=stage_env(corpus=source), poll_s=poll_s, log=log)
        run = fresh_pipeline(
            root=root,
            commit="HEAD",
            checkout=checkout,
            cache=cache,
            env=stage_env(corpus=corpus),
            poll_s=poll_s,
            log=log,
        )
    finally:
        shutil.rmtree(corpus, ignore_errors=True)
    commit, sync, repro = run["commit"], run["sync"], run["repro"]
    stages = {"data sync": {k: sync[k] for k in ("seconds", "peak_rss_mb")}, **repro["stages"]}
    return {
        "tracks": tracks,
        "commit": commit,
        "corpus_seconds": build["seconds"],
        "pipeline_seconds": round(sync["seconds"] + repro["seconds"], 2),
        "pipeline_peak_rss_mb": max(sync["peak_rss_mb"], repro["peak_rss_mb"]),
        "stages": stages,
        "load_average": list(os.getloadavg()),
        "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def main(argv: list[str] | None = None) -> None:
    settings = load_params()["scale"]["benchmark"]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, nargs="*", default=settings["tracks"])
    parser.add_argument("--report-only", action="store_true", help="redraw the report from the stored results")
    args = parser.parse_args(argv)
    root, results_path = project_root(), resolve(settings["results"])
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    if not args.report_only:
        workdir = resolve(settings["workdir"]).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        for tracks in args.tracks:
            print(f"scale benchmark: {tracks} tracks ...", flush=True)
            results[str(tracks)] = run_one(tracks=tracks, root=root, workdir=workdir, poll_s=settings["poll_s"])
            write_json(results_path, results)  # kept after every N: a later failure loses nothing
            print(f"  pipeline {results[str(tracks)]['pipeline_seconds']:.0f} s", flush=True)
    write_report(results=results, settings=settings)


if __name__ == "__main__":
    main()
