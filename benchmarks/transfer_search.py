"""The search behind transfer_ridge's settings, re-run with its nested estimate: `make transfer-search`.

Which tagger layers, how many patches and which estimator were chosen by looking at grouped-CV scores
on the same folds that report them, so the best score of the grid is optimistic. This re-runs the whole
grid (params `search`) on the evaluate stage's fold plan (5 artist-grouped folds x 3 repeats over the
non-test tracks) and scores the choice itself: for each outer fold, the configuration best on the other
folds of its repeat is scored on the outer fold (musicgenre.selection.nested_estimate). Writes the table
to docs/MODEL_SEARCH.md. Needs the pipeline's artifacts (features, splits, the exported tagger).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from musicgenre.config import load_params, resolve
from musicgenre.crossval import cv_tracks
from musicgenre.extraction import Limits, extract_batch
from musicgenre.io import write_json, write_text
from musicgenre.models.data import load_tables, track_features
from musicgenre.oof import out_of_fold
from musicgenre.selection import cv_summary, fold_scores, nested_estimate
from musicgenre.tagger import EmbeddingConfig, TaggerRef


def tagger_at(*, params: dict[str, Any], max_patches: int) -> TaggerRef:
    config = replace(EmbeddingConfig.from_params(params), max_patches=max_patches)
    return TaggerRef(str(resolve(params["paths"]["tagger_dir"])), config)


def embed_tracks(*, params: dict[str, Any], tracks: pd.DataFrame, max_patches: int) -> dict[str, Any]:
    """track -> TrackFeatures holding the tagger's embedding and pooled layer at `max_patches` patches."""
    paths = pd.read_csv(resolve(params["paths"]["tracks"])).set_index("track")["path"]
    items, failures = extract_batch(
        ((track, resolve(paths[track])) for track in tracks["track"]),
        config=None,
        limits=Limits.from_params(params),
        n_jobs=params["data"]["n_jobs"],
        show_progress=False,
        embedding=tagger_at(params=params, max_patches=max_patches),
    )
    if failures:
        raise RuntimeError(f"could not embed: {[vars(f) for f in failures]}")
    return {item.key: item for item in items}


def candidates(search: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """name -> transfer model settings for every (input, estimator) pair of the grid."""
    grid = {}
    for input, (estimator, hyper) in itertools.product(search["inputs"], search["estimators"].items()):
        if input in search.get("ridge_only_inputs", []) and not estimator.startswith("ridge"):
            continue  # a logistic fit on ~3,500 dimensions takes minutes per fold and scored below ridge
        grid[f"{input}|{estimator}"] = {
            "family": "transfer",
            "input": input,
            "estimator": hyper["estimator"],
            "hyper": hyper["hyper"],
        }
    return grid


def grid_oof(*, params: dict[str, Any]) -> pd.DataFrame:
    """Out-of-fold rows of every configuration x patch count, model = 'input|estimator|patches'."""
    tables, search, evaluate = load_tables(params=params), params["search"], params["evaluate"]
    tracks = cv_tracks(tables=tables)
    parts = []
    for patches in search["max_patches"]:
        embedded = embed_tracks(params=params, tracks=tracks, max_patches=patches)
        items = track_features(tables=tables, tracks=tracks["track"])  # the classic features ...
        for item in items:  # ... with this patch count's tagger layers
            item.embedding, item.pooled = embedded[item.key].embedding, embedded[item.key].pooled
        for name, settings in candidates(search).items():
            started = time.perf_counter()
            oof = out_of_fold(
                name=name,
                settings=settings,
                tables=tables,
                tracks=tracks,
                classes=params["genres"],
                seed=params["seed"],
                folds=evaluate["cv_folds"],
                repeats=evaluate["cv_repeats"],
                threads=params["train"]["threads"],
                items=items,
                embedding=tagger_at(params=params, max_patches=patches),
            )
            parts.append(oof.assign(model=f"{name}|{patches}"))
            print(f"{name}|{patches}: {time.perf_counter() - started:.0f} s", flush=True)
    return pd.concat(parts, ignore_index=True)


def report(*, oof: pd.DataFrame, classes: list[str]) -> str:
    scores = fold_scores(oof=oof, classes=classes)
    summary = cv_summary(scores=scores)
    lines = ["| input | estimator | patches | grouped CV acc | grouped CV F1 |", "|---|---|---|---|---|"]
    for model, entry in sorted(summary.items(), key=lambda kv: -kv[1]["cv_accuracy_mean"]):
        input, estimator, patches = model.split("|")
        acc = f"{entry['cv_accuracy_mean']:.3f} ± {entry['cv_accuracy_std']:.3f}"
        lines.append(f"| {input} | {estimator} | {patches} | {acc} | {entry['cv_macro_f1_mean']:.3f} |")
    lines.append("")
    for metric in ("accuracy", "macro_f1"):
        nested = nested_estimate(scores=scores, metric=metric)
        lines.append(
            f"Nested, choosing by {metric}: accuracy {nested['accuracy_mean']:.3f} ± {nested['accuracy_std']:.3f}, "
            f"macro-F1 {nested['macro_f1_mean']:.3f} ± {nested['macro_f1_std']:.3f} over {nested['models']} "
            "configurations; chosen per outer fold: "
            + ", ".join(f"`{name}` x{count}" for name, count in nested["chosen"].items())
        )
        lines.append("")
    return "\n".join(lines)


def nested_results(*, oof: pd.DataFrame, classes: list[str]) -> dict[str, Any]:
    """The search's nested estimates, choosing by accuracy and by macro-F1 (evaluate's summary.md row)."""
    scores = fold_scores(oof=oof, classes=classes)
    return {
        f"by_{metric}": {k: v for k, v in nested_estimate(scores=scores, metric=metric).items() if k != "chosen"}
        for metric in ("accuracy", "macro_f1")
    }


def main() -> None:
    params = load_params()
    started = time.perf_counter()
    oof = grid_oof(params=params)
    table = report(oof=oof, classes=params["genres"])
    write_json(Path(resolve(params["search"]["results"])), nested_results(oof=oof, classes=params["genres"]))
    target = Path(resolve(params["search"]["doc"]))
    header = (Path(__file__).parent / "transfer_search.md").read_text(encoding="utf-8")
    write_text(
        target, f"{header}\n{table}\nRun time: {time.perf_counter() - started:.0f} s (`make transfer-search`).\n"
    )
    print(table)


if __name__ == "__main__":
    main()
