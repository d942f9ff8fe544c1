"""Experiment driver for the deep models' grouped CV (docs/DEEP_CV.md): one model, hyper overrides,
per-fit wall and CPU time, fold scores; optional relative noise on the model's inputs (the log-mels, or the
pretrained base's patches: a robustness check standing in for a second machine).

python -m benchmarks.deep_cv --model cnn --set '{"epochs": 12}' --repeats 1 --out docs/deep_runs/x.json
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np

import musicgenre.oof as oof
from musicgenre.config import load_params
from musicgenre.crossval import cv_tracks
from musicgenre.models.data import load_tables
from musicgenre.selection import fold_scores
from stages.embed import pretrained_input


def timed(fit, log: list):
    def wrapper(**kwargs):
        wall, cpu = time.perf_counter(), time.process_time()
        predictor = fit(**kwargs)
        log.append({"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu})
        return predictor

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--set", default="{}")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--noise", type=float, default=0.0)
    parser.add_argument("--noise-seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    params = load_params()
    settings = copy.deepcopy(params["models"][args.model])
    settings["hyper"].update(json.loads(args.set))
    settings["hyper"]["verbose"] = 0
    on_patches = settings.get("input") == "patches"
    tables = load_tables(params=params, patches=on_patches)
    rng = np.random.default_rng(args.noise_seed)
    if args.noise and on_patches:
        assert tables.patches is not None
        units = [c for c in tables.patches.columns if c.startswith("base_")]
        values = tables.patches[units].to_numpy(np.float32)
        tables.patches[units] = values * (1 + args.noise * rng.standard_normal(values.shape, dtype=np.float32))
    elif args.noise:
        mels = np.asarray(tables.logmel, np.float32)
        tables.logmel = mels * (1 + args.noise * rng.standard_normal(mels.shape, dtype=np.float32))
    log: list = []
    oof.fit_predictor = timed(oof.fit_predictor, log)
    deep = params["evaluate"].get("deep", {})
    started = time.perf_counter()
    rows = oof.out_of_fold(
        name=args.model,
        settings=settings,
        tables=tables,
        tracks=cv_tracks(tables=tables),
        classes=params["genres"],
        seed=params["seed"],
        folds=params["evaluate"]["cv_folds"],
        repeats=args.repeats,
        threads=params["train"]["threads"],
        inner_folds=deep.get("inner_folds", 5) if settings["hyper"].get("patience") is not None else None,
        seed_per_repeat=True,
        embedding=pretrained_input(params, model=args.model),
    )
    total = time.perf_counter() - started
    scores = fold_scores(oof=rows.assign(model=args.model), classes=params["genres"])
    result = {
        "model": args.model,
        "hyper": settings["hyper"],
        "repeats": args.repeats,
        "noise": args.noise,
        "acc_mean": float(scores["accuracy"].mean()),
        "acc_std": float(scores["accuracy"].std(ddof=1)),
        "f1_mean": float(scores["macro_f1"].mean()),
        "fold_acc": scores["accuracy"].round(4).tolist(),
        "fits": log,
        "fit_wall_mean_s": float(np.mean([f["wall_s"] for f in log])),
        "fit_cpu_mean_s": float(np.mean([f["cpu_s"] for f in log])),
        "total_wall_s": total,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    rows.to_parquet(Path(args.out).with_suffix(".parquet"))
    print(json.dumps({k: v for k, v in result.items() if k not in ("fits", "hyper")}))


if __name__ == "__main__":
    main()
