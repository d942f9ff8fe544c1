"""Robustness check (docs/DEEP_CV.md step 4): one model's grouped-CV OOF rows from the pipeline
(reports/eval/oof.parquet) against a rerun with perturbed log-mels (docs/deep_runs/*.parquet), on the
same (repeat, fold, track) rows: difference of the grouped-CV mean accuracy and prediction agreement."""

from __future__ import annotations

import sys

import pandas as pd

from musicgenre.config import load_params
from musicgenre.models.predictor import proba_columns
from musicgenre.selection import fold_scores


def main(model: str, rerun: str) -> None:
    genres = load_params()["genres"]
    base = pd.read_parquet("reports/eval/oof.parquet").query("model == @model").drop(columns="model")
    other = pd.read_parquet(rerun)
    base = base[base["repeat"].isin(other["repeat"].unique())]  # a rerun may cover fewer repeats
    keys = ["repeat", "fold", "track"]
    joined = base.merge(other, on=keys, suffixes=("", "_b"))
    assert len(joined) == len(base) == len(other), (len(joined), len(base), len(other))
    a = fold_scores(oof=base.assign(model=model), classes=genres)
    b = fold_scores(oof=other.assign(model=model), classes=genres)
    cols = proba_columns(genres)
    gap = abs(joined[cols].to_numpy() - joined[[c + "_b" for c in cols]].to_numpy()).max()
    print(f"max |proba difference| {gap:.2e}")
    same = (joined[cols].to_numpy().argmax(1) == joined[[c + "_b" for c in cols]].to_numpy().argmax(1)).mean()
    print(
        f"{model}: pipeline {a['accuracy'].mean():.3f} ± {a['accuracy'].std(ddof=1):.3f}, "
        f"perturbed {b['accuracy'].mean():.3f} ± {b['accuracy'].std(ddof=1):.3f}, "
        f"difference {b['accuracy'].mean() - a['accuracy'].mean():+.3f}; "
        f"max per-fold |diff| {(b['accuracy'] - a['accuracy']).abs().max():.3f}; same top genre on {same:.1%} of rows"
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
