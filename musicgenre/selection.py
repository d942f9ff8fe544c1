"""Model selection on paired artist-grouped folds: per-fold scores, the champion by mean grouped-CV score,
a nested estimate of that choice, and the promotion gate (a paired bootstrap over folds).

Every model's out-of-fold rows (musicgenre.oof) come from the same fold plan, so fold i of one model
and fold i of another held out the same tracks: differences are paired, and fold-to-fold noise (a
~27-track fold moves accuracy by ~4 points per track) cancels in part.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score

from .models.predictor import proba_columns

METRICS = ("accuracy", "macro_f1")
FOLD_KEYS = ["repeat", "fold"]


def fold_scores(*, oof: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """model, repeat, fold, accuracy, macro_f1: one row per model per held-out fold."""
    rows = []
    for (model, repeat, fold), part in oof.groupby(["model", *FOLD_KEYS], sort=True):
        truth = part["genre"].map(classes.index).to_numpy()
        predicted = part[proba_columns(classes)].to_numpy().argmax(axis=1)
        rows.append(
            {
                "model": model,
                "repeat": int(repeat),
                "fold": int(fold),
                "accuracy": float(accuracy_score(truth, predicted)),
                "macro_f1": float(f1_score(truth, predicted, average="macro", zero_division=0)),
            }
        )
    return pd.DataFrame(rows)


def cv_summary(*, scores: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per model: cv_<metric>_mean/_std over its folds x repeats (sample std), and the fold counts."""
    summary: dict[str, dict[str, Any]] = {}
    for model, part in scores.groupby("model", sort=True):
        entry: dict[str, Any] = {}
        for metric in METRICS:
            entry[f"cv_{metric}_mean"] = float(part[metric].mean())
            entry[f"cv_{metric}_std"] = float(part[metric].std(ddof=1)) if len(part) > 1 else 0.0
        entry.update(cv_folds=int(part["fold"].nunique()), cv_repeats=int(part["repeat"].nunique()), cv_fits=len(part))
        summary[str(model)] = entry
    return summary


def best_model(*, scores: pd.DataFrame, metric: str) -> str:
    """The model with the highest mean `metric` over the given folds (ties: lower spread, then name)."""
    table = scores.groupby("model")[metric].agg(["mean", "std"]).fillna(0.0)
    return str(min(table.index, key=lambda model: (-table.loc[model, "mean"], table.loc[model, "std"], model)))


def complete_models(*, scores: pd.DataFrame) -> list[str]:
    """Models scored on every fold of the plan. Only they can be champion: the promotion gate pairs a
    challenger with the champion fold by fold, so both need the whole plan (a family cross-validated on
    fewer repeats, e.g. the deep one, is compared on the folds it has but cannot be chosen)."""
    plan = scores[FOLD_KEYS].drop_duplicates()
    counts = scores.groupby("model").size()
    return sorted(str(model) for model in counts.index[counts == len(plan)])


def nested_estimate(*, scores: pd.DataFrame, metric: str) -> dict[str, Any]:
    """Score of the selection procedure itself: for each outer fold, the model best on the OTHER folds of
    the same repeat (inner folds; other repeats hold the outer fold's tracks) is scored on the outer fold.
    The models' refits are not nested (each fold's fit saw the outer fold's tracks): the choice is.
    A model cross-validated on fewer repeats competes only in the repeats it has (the folds it shares)."""
    outcomes, chosen = [], []
    for (repeat, fold), outer in scores.groupby(FOLD_KEYS, sort=True):
        inner = scores[(scores["repeat"] == repeat) & (scores["fold"] != fold)]
        pick = best_model(scores=inner, metric=metric)
        chosen.append(pick)
        outcomes.append(outer.set_index("model").loc[pick, list(METRICS)])
    frame = pd.DataFrame(outcomes)
    estimate: dict[str, Any] = {
        f"{name}_{stat}": float(getattr(frame[name], stat)(**({"ddof": 1} if stat == "std" else {})))
        for name in METRICS
        for stat in ("mean", "std")
    }
    return {
        **estimate,
        "chosen": dict(pd.Series(chosen).value_counts().sort_index()),
        "models": scores["model"].nunique(),
    }


def fold_vector(*, scores: pd.DataFrame, model: str, metric: str) -> list[float]:
    """One model's per-fold metric in (repeat, fold) order: the input of the paired gate."""
    part = scores[scores["model"] == model].sort_values(FOLD_KEYS)
    return [float(value) for value in part[metric]]


def fold_fingerprint(*, plan: pd.DataFrame, hashes: dict[str, str]) -> str:
    """Identity of a fold plan: every (repeat, fold, track) with the track's audio hash. Two scores are
    paired only when their fingerprints are equal."""
    rows = plan[[*FOLD_KEYS, "track"]].drop_duplicates().sort_values([*FOLD_KEYS, "track"])
    lines = "\n".join(f"{r.repeat}:{r.fold}:{r.track}:{hashes.get(r.track, '?')}" for r in rows.itertuples())
    return hashlib.sha256(lines.encode()).hexdigest()


def paired_gain(
    *, challenger: list[float], champion: list[float], resamples: int, confidence: float, seed: int
) -> dict[str, Any]:
    """Mean per-fold gain (challenger - champion) and its paired-bootstrap interval over folds; `promote`
    when the interval's lower end is above 0. Folds of different repeats share tracks, so they are not
    independent: the interval is, if anything, too narrow, and the rule errs towards promoting."""
    if not challenger or len(challenger) != len(champion):
        raise ValueError(f"paired gate needs equal, non-empty fold lists ({len(challenger)} vs {len(champion)})")
    gains = np.asarray(challenger, float) - np.asarray(champion, float)
    draws = np.random.default_rng(seed).integers(0, gains.size, size=(resamples, gains.size))
    means = gains[draws].mean(axis=1)
    tail = (1.0 - confidence) / 2.0  # two-sided interval; the gate reads its lower end
    low, high = (float(q) for q in np.quantile(means, [tail, 1.0 - tail]))
    return {"gain": float(gains.mean()), "low": low, "high": high, "folds": int(gains.size), "promote": low > 0.0}
