"""Evaluate's memory beyond the scale benchmark's 1000 tracks: the stage's cross-validation (the part that
grows with N) on the real artifact tables tiled to N tracks, peak RSS of the process tree per phase.

The scale benchmark's projection draws a line through 173-1000 tracks; evaluate's peak there is its deep
phase (two TensorFlow workers, flat in N), while the other models' phase is the one that grows, so a line
through the small N says little about 10k. This measures each phase at the N asked for:

    make evaluate-memory        # = python -m benchmarks.evaluate_memory (N: scale.benchmark.evaluate_probe)

Tiling: copy c of every track is `<track>~c` with artist group `<group>~c` (a new artist, so the grouped
folds stay honest) and 0.1 % multiplicative noise on its features, embedding and patches; the log-mel stack
is a sparse file of the right shape (the cross-validated models read the base's patches, not log-mels).
One repeat per model (evaluate.cv_repeats and evaluate.deep.repeats set to 1): repeats run one after
another inside a job, so they add time, not memory. A memory probe, not a pipeline run: accuracy on tiled
copies means nothing and is not printed.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musicgenre.config import load_params, resolve
from musicgenre.io import write_json

NOISE = 1e-3  # relative noise on each copy's numbers, so copies are not identical rows
TILED = ("features", "logmel_index", "embeddings", "patches")


def tile_frame(frame: pd.DataFrame, *, copies: int, seed: int) -> pd.DataFrame:
    """`copies` renamed copies of a per-track table, float columns jittered by NOISE."""
    rng, numeric = np.random.default_rng(seed), frame.select_dtypes("floating").columns
    parts = []
    for c in range(copies):
        part = frame.copy()
        part["track"] = part["track"] + f"~{c}"
        if "group" in part:
            part["group"] = part["group"] + f"~{c}"
        if c and len(numeric):
            jitter = 1 + NOISE * rng.standard_normal((len(part), len(numeric)))
            part[numeric] = (part[numeric].to_numpy() * jitter).astype(part[numeric].dtypes.iloc[0])
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def tiled_workspace(*, params: dict[str, Any], tracks: int, folder: Path) -> dict[str, Any]:
    """The artifact tables tiled to `tracks` tracks under `folder`; params with paths pointing at them."""
    paths = params["paths"]
    splits = pd.read_csv(resolve(paths["splits"]))
    copies = math.ceil(tracks / len(splits))
    kept = set(tile_frame(splits[["track", "group"]], copies=copies, seed=0)["track"][:tracks])
    out = copy.deepcopy(params)
    for name in ("splits", *TILED):
        source = resolve(paths[name])
        frame = pd.read_csv(source) if name == "splits" else pd.read_parquet(source)
        frame = tile_frame(frame, copies=copies, seed=params["seed"])
        frame = frame[frame["track"].isin(kept)].reset_index(drop=True)
        target = folder / source.name
        frame.to_csv(target, index=False) if name == "splits" else frame.to_parquet(target, index=False)
        out["paths"][name] = str(target)
        if name == "logmel_index":
            shape = np.load(resolve(paths["logmel"]), mmap_mode="r").shape[1:]
            stack = np.lib.format.open_memmap(
                folder / "logmel.npy", mode="w+", dtype=np.float16, shape=(len(frame), *shape)
            )
            del stack  # sparse: never written, so it costs no disk
            out["paths"]["logmel"] = str(folder / "logmel.npy")
    out["evaluate"]["cv_repeats"] = out["evaluate"]["deep"]["repeats"] = 1
    return out


def phase_models(params: dict[str, Any]) -> dict[str, list[str]]:
    """The cross-validated models of each of evaluate's phases: deep first, then the others."""
    from stages.evaluate import cv_phases

    settings, configured = params["evaluate"], params["models"]
    trained = configured["names"] + configured["transfer_names"]  # what the train stages fit
    chosen = sorted(m for m in trained if configured[m]["family"] in settings["cv_families"])
    return dict(zip(("deep", "others"), cv_phases(chosen, configured=configured)))


def measure(*, params_file: Path, models: list[str], poll_s: float, log: Path) -> dict[str, float]:
    """Wall time and peak summed RSS of a child process running evaluate's cross_validation on `models`."""
    from benchmarks.scale import watch

    code = (
        "import json, sys; from stages.evaluate import cross_validation; "
        "p = json.load(open(sys.argv[1])); cross_validation(p, models=sys.argv[2:])"
    )
    result = watch(
        [sys.executable, "-c", code, str(params_file), *models], cwd=Path.cwd(), env=None, poll_s=poll_s, log=log
    )
    return {"seconds": result["seconds"], "peak_rss_mb": result["peak_rss_mb"]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    params = load_params()
    settings = params["scale"]["benchmark"]
    parser.add_argument("--tracks", type=int, nargs="+", default=settings["evaluate_probe"]["tracks"])
    parser.add_argument("--out", type=Path, default=resolve(settings["evaluate_probe"]["results"]))
    args = parser.parse_args(argv)
    poll_s = settings["poll_s"]
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    for tracks in args.tracks:
        with tempfile.TemporaryDirectory(prefix="evaluate-memory-") as scratch:
            tiled = tiled_workspace(params=params, tracks=tracks, folder=Path(scratch))
            params_file = Path(scratch) / "params.json"
            params_file.write_text(json.dumps(tiled))
            log = Path(tempfile.gettempdir()) / f"evaluate_memory.{tracks}.log"  # the children's output
            phases = {
                name: measure(params_file=params_file, models=models, poll_s=poll_s, log=log)
                for name, models in phase_models(tiled).items()
            }
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        finished = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        results[str(tracks)] = {"phases": phases, "commit": commit, "finished": finished}
        write_json(args.out, results)  # kept after every N
        print(tracks, json.dumps(phases), flush=True)


if __name__ == "__main__":
    main()
