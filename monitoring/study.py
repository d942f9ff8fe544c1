"""`python -m monitoring.study` (= `make drift-study`): the measurements behind the drift verdict and the
label-free accuracy estimate, written into docs/MONITORING.md (between the study markers) with a plot.

1. Drift verdict calibration. GTZAN tracks (the non-test split) are cut into repeated artist-grouped
   folds; a batch is drawn from one held-out fold (141 tracks leave ~47 per fold of 3: a batch larger than
   that repeats tracks, each at most ceil(size / pool) times; repeats differ in their folds) and compared
   with the other folds' tracks.
   Per batch size the share threshold is the smallest share whose false-alarm rate on `calibration_batches`
   null batches is <= max_false_alarm; the false-alarm rate is then re-measured on fresh null batches and
   the detection rate on batches where a share of the files are modern clips (../shared/data/modern).
2. Accuracy estimate validation. Out-of-fold probabilities of the champion's configuration over the
   non-test tracks; per held-out fold a temperature fitted on the other folds' rows, then the CBPE
   estimate (musicgenre.calibration.estimated_accuracy) against the realized accuracy, per fold and for
   random batches drawn from held-out folds. The interval's between-batch shift (tau) of a fold is
   cross-fitted: measured on every other fold's rows with this fold's tracks removed, never on its own.

`python -m monitoring.study --accuracy-only` re-runs part 2 alone (seconds), keeping the drift table of the
last full run (its JSON beside the figure).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monitoring.rule import drifted_share
from musicgenre.calibration import apply_temperature, batch_errors, estimated_accuracy, fit_temperature, shift_variance
from musicgenre.config import load_params, resolve
from musicgenre.crossval import cv_tracks
from musicgenre.extraction import Limits, extract_batch, to_tables
from musicgenre.features import FeatureConfig, feature_names
from musicgenre.io import write_parquet, write_text
from musicgenre.models.data import load_tables
from musicgenre.models.predictor import proba_columns
from musicgenre.oof import fold_plan, out_of_fold
from musicgenre.tagger import EmbeddingConfig, TaggerRef

BEGIN, END = "<!-- study:begin (make drift-study writes this block) -->", "<!-- study:end -->"


def study_tracks(*, params: dict[str, Any]) -> tuple[pd.DataFrame, np.ndarray]:
    """The non-test tracks (track, genre, artist_group) of the monitored split and their 88 track features;
    the test split stays untouched by any choice made here."""
    tables = load_tables(params=params, embeddings=True)
    tracks = cv_tracks(tables=tables)
    split = tables.splits.set_index("track")[params["monitoring"]["split_column"]]
    tracks = tracks[split.reindex(tracks["track"]).to_numpy() != "test"].reset_index(drop=True)
    whole = tables.features[tables.features["segment"] == -1].set_index("track")
    names = feature_names(FeatureConfig.from_params(params))
    return tracks, whole.loc[tracks["track"], names].to_numpy(np.float64)


def modern_features(*, params: dict[str, Any]) -> np.ndarray:
    """The modern clips' 88 track features, extracted once and cached (monitoring.study.modern_cache)."""
    settings, config = params["monitoring"]["study"], FeatureConfig.from_params(params)
    cache = resolve(settings["modern_cache"])
    if not cache.is_file():
        clips = sorted(
            p for ext in params["predict"]["extensions"] for p in resolve(settings["modern"]).rglob(f"*.{ext}")
        )
        items, _ = extract_batch(
            [(p.name, p) for p in clips],
            config=config,
            limits=Limits.from_params(params),
            n_jobs=params["monitoring"]["n_jobs"],
        )
        table, _, _ = to_tables(items, config)
        write_parquet(cache, table[table["segment"] == -1].reset_index(drop=True))
    return pd.read_parquet(cache)[feature_names(config)].to_numpy(np.float64)


def held_out_draw(*, rng: np.random.Generator, pool: np.ndarray, size: int) -> np.ndarray:
    """`size` rows of the held-out pool, each used once before any repeats (a shuffled pool, tiled): repeats
    are unavoidable past the pool's size, and a duplicated track is a tie that inflates the K-S statistic."""
    return np.resize(rng.permutation(pool), size)


def draw_shares(
    *,
    gtzan: np.ndarray,
    modern: np.ndarray,
    plan: list,
    size: int,
    fraction: float,
    count: int,
    seed: int,
    alpha: float,
) -> np.ndarray:
    """Drifted-feature shares of `count` batches of `size` files, round(fraction * size) of them modern
    clips and the rest drawn from one random held-out fold (vs that fold's training folds)."""
    rng = np.random.default_rng(seed)
    n_modern = int(round(fraction * size))
    shares = np.empty(count)
    for i in range(count):
        _, _, train_idx, test_idx = plan[rng.integers(len(plan))]
        rows = [gtzan[held_out_draw(rng=rng, pool=test_idx, size=size - n_modern)]]
        rows.append(modern[rng.choice(len(modern), n_modern, replace=n_modern > len(modern))])
        shares[i] = drifted_share(reference=gtzan[train_idx], current=np.vstack(rows), alpha=alpha)
    return shares


def threshold_for(*, null: np.ndarray, n_features: int, max_false_alarm: float) -> float:
    """The smallest share k/n_features whose false-alarm rate on the null shares is <= max_false_alarm."""
    for k in range(1, n_features + 1):
        if float((null >= k / n_features - 1e-12).mean()) <= max_false_alarm:
            return k / n_features
    return 1.0


def drift_calibration(*, params: dict[str, Any], tracks: pd.DataFrame, gtzan: np.ndarray) -> pd.DataFrame:
    """One row per batch size: threshold, calibration and fresh false-alarm rates, detection per fraction."""
    s, seed = params["monitoring"]["study"], params["seed"]
    alpha, modern = params["monitoring"]["stattest_threshold"], modern_features(params=params)
    plan = fold_plan(tracks, folds=s["folds"], repeats=s["repeats"], seed=seed)
    rows = []
    for j, size in enumerate(s["batch_sizes"]):
        common = {"gtzan": gtzan, "modern": modern, "plan": plan, "size": size, "alpha": alpha}
        null = draw_shares(**common, fraction=0.0, count=s["calibration_batches"], seed=seed + 1000 * j)
        fresh = draw_shares(**common, fraction=0.0, count=s["evaluation_batches"], seed=seed + 1000 * j + 1)
        threshold = threshold_for(null=null, n_features=gtzan.shape[1], max_false_alarm=s["max_false_alarm"])
        row = {
            "batch_size": size,
            "threshold": threshold,
            "null_median_share": float(np.median(null)),
            "false_alarm_calibration": float((null >= threshold - 1e-12).mean()),
            "false_alarm": float((fresh >= threshold - 1e-12).mean()),
        }
        for k, fraction in enumerate(s["modern_fractions"]):
            drifted = draw_shares(**common, fraction=fraction, count=s["drift_batches"], seed=seed + 1000 * j + 10 + k)
            row[f"detect_{int(round(100 * fraction))}"] = float((drifted >= threshold - 1e-12).mean())
        rows.append(row)
    return pd.DataFrame(rows)


def champion_model(*, params: dict[str, Any]) -> str:
    """The model the registry's champion was trained as (reports/register/champion.json of the register stage)."""
    record = json.loads((resolve(params["register"]["report_dir"]) / "champion.json").read_text(encoding="utf-8"))
    return str(record["champion"]["model"])


def champion_oof(*, params: dict[str, Any], tracks: pd.DataFrame, model: str) -> pd.DataFrame:
    """Out-of-fold probabilities of `model` (its params.models settings) over the study's tracks."""
    s = params["monitoring"]["study"]
    tagger = TaggerRef(str(resolve(params["paths"]["tagger_dir"])), EmbeddingConfig.from_params(params))
    return out_of_fold(
        name=model,
        settings=params["models"][model],
        tables=load_tables(params=params, embeddings=True),
        tracks=tracks,
        classes=list(params["genres"]),
        seed=params["seed"],
        folds=s["folds"],
        repeats=s["repeats"],
        threads=params["train"]["threads"],
        embedding=tagger,
    )


def held_out_folds(*, oof: pd.DataFrame, classes: list[str]) -> list[dict[str, Any]]:
    """Per (repeat, fold): its calibrated probabilities (temperature fitted on the same repeat's other folds),
    raw probabilities and labels."""
    folds = []
    for (repeat, fold), rows in oof.groupby(["repeat", "fold"]):
        others = oof[(oof["repeat"] == repeat) & (oof["fold"] != fold)]
        labels_other = others["genre"].map(classes.index).to_numpy()
        temperature = fit_temperature(others[proba_columns(classes)].to_numpy(), labels_other)
        raw = rows[proba_columns(classes)].to_numpy()
        folds.append(
            {
                "repeat": int(repeat),
                "fold": int(fold),
                "temperature": temperature,
                "raw": raw,
                "calibrated": apply_temperature(raw, temperature),
                "labels": rows["genre"].map(classes.index).to_numpy(),
                "tracks": rows["track"].to_numpy(),
            }
        )
    return folds


def cross_fitted_shift(*, folds: list[dict[str, Any]], judged: dict[str, Any]) -> dict[str, float]:
    """The between-batch shift tau for `judged` and the mean error (estimate - realized) it would correct,
    from every other held-out fold (same and other repeats) with the judged fold's tracks removed: no row
    or label of the judged fold enters. Other repeats' folds, so cut, are ~2/3 of a fold of other artists."""
    errors, binomial = [], []
    for fold in folds:
        keep = ~np.isin(fold["tracks"], judged["tracks"])
        if fold is judged or not keep.any():
            continue
        error, noise = batch_errors(
            proba=fold["calibrated"][keep], labels=fold["labels"][keep], batches=np.zeros(int(keep.sum()))
        )
        errors.append(error[0])
        binomial.append(noise[0])
    tau2 = shift_variance(errors=np.asarray(errors), binomial=np.asarray(binomial))
    return {"shift": float(np.sqrt(tau2)), "bias": float(np.mean(errors))}


def noise_only_within(*, proba: np.ndarray, tolerance: float, draws: int, seed: int) -> float:
    """How often a PERFECT estimate would land within `tolerance` of the realized accuracy of these rows:
    labels drawn from the (calibrated) probabilities themselves, so every miss is the binomial noise of
    a finite batch. The ceiling for the 'within ±5 points' share of any estimator on batches this size."""
    confidence = np.asarray(proba).max(axis=1)
    correct = np.random.default_rng(seed).random((draws, len(confidence))) < confidence
    return float((np.abs(correct.mean(axis=1) - confidence.mean()) <= tolerance + 1e-12).mean())


def estimate_row(
    *,
    proba: np.ndarray,
    raw: np.ndarray,
    labels: np.ndarray,
    level: float,
    tolerance: float,
    draws: int,
    shift: dict[str, float],
) -> dict[str, float]:
    """Realized accuracy, the CBPE estimate on calibrated (and on raw) probabilities, its interval with the
    cross-fitted shift (and without: binomial only), the bias-corrected estimate that was tried, and the
    share of ±tolerance hits a perfect estimate would get on rows like these."""
    found = estimated_accuracy(proba, level=level, shift=shift["shift"])
    binomial = estimated_accuracy(proba, level=level)
    return {
        "ideal_within": noise_only_within(proba=proba, tolerance=tolerance, draws=draws, seed=len(labels)),
        "n": len(labels),
        "realized": float((proba.argmax(axis=1) == labels).mean()),
        "estimate": found["estimate"],
        "low": found["low"],
        "high": found["high"],
        "shift": shift["shift"],
        "low_binomial": binomial["low"],
        "high_binomial": binomial["high"],
        "estimate_corrected": found["estimate"] - shift["bias"],
        "estimate_raw": estimated_accuracy(raw, level=level)["estimate"],
    }


def accuracy_validation(*, params: dict[str, Any], tracks: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Per held-out fold and for random held-out batches: estimate vs realized accuracy."""
    s, classes = params["monitoring"]["study"], list(params["genres"])
    model = champion_model(params=params)
    folds = held_out_folds(oof=champion_oof(params=params, tracks=tracks, model=model), classes=classes)
    level = params["monitoring"]["estimate_level"]
    shifts = [cross_fitted_shift(folds=folds, judged=f) for f in folds]
    per_fold = pd.DataFrame(
        [
            {"repeat": f["repeat"], "fold": f["fold"], "temperature": f["temperature"]}
            | estimate_row(
                proba=f["calibrated"],
                raw=f["raw"],
                labels=f["labels"],
                level=level,
                tolerance=s["estimate_tolerance"],
                draws=s["noise_draws"],
                shift=shift,
            )
            for f, shift in zip(folds, shifts)
        ]
    )
    rng, batches = np.random.default_rng(params["seed"]), []
    for size in s["accuracy_batch_sizes"]:
        for _ in range(s["accuracy_batches"]):
            k = int(rng.integers(len(folds)))
            f = folds[k]
            pick = rng.choice(len(f["labels"]), size, replace=True)  # a fold holds ~28 tracks
            row = estimate_row(
                proba=f["calibrated"][pick],
                raw=f["raw"][pick],
                labels=f["labels"][pick],
                level=level,
                tolerance=s["estimate_tolerance"],
                draws=s["noise_draws"],
                shift=shifts[k],  # a batch from a fold carries that fold's artists, so its shift
            )
            batches.append({"batch_size": size} | row)
    return per_fold, pd.DataFrame(batches), model


def plot(*, calibration: pd.DataFrame, per_fold: pd.DataFrame, fractions: list[float], target: Path) -> None:
    """Left: false-alarm and detection rate per batch size; right: estimate vs realized accuracy per fold."""
    import matplotlib

    matplotlib.use("Agg")  # no display on the servers
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    sizes = calibration["batch_size"]
    left.plot(sizes, calibration["false_alarm"], "k--o", label="false alarm (GTZAN only)")
    for fraction in fractions:
        pct = int(round(100 * fraction))
        left.plot(sizes, calibration[f"detect_{pct}"], "-o", label=f"detection, {pct} % modern")
    left.set(xscale="log", xticks=list(sizes), xticklabels=[str(n) for n in sizes], ylim=(-0.02, 1.02))
    left.set(xlabel="batch size (files)", ylabel="rate of 'drift' verdicts", title="Calibrated drift verdict")
    left.legend(fontsize=8)
    right.errorbar(
        per_fold["realized"],
        per_fold["estimate"],
        yerr=[per_fold["estimate"] - per_fold["low"], per_fold["high"] - per_fold["estimate"]],
        fmt="o",
        alpha=0.7,
        label="calibrated (90 % interval, with shift)",
    )
    right.plot(per_fold["realized"], per_fold["estimate_raw"], "x", color="grey", label="raw probabilities")
    right.plot([0, 1], [0, 1], "k-", lw=0.8)
    right.set(xlim=(0.3, 1.0), ylim=(0.3, 1.0), xlabel="realized accuracy", ylabel="estimated accuracy")
    right.set(title="Label-free accuracy estimate per held-out fold")
    right.legend(fontsize=8)
    fig.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=110)
    plt.close(fig)


def _pct(value: float) -> str:
    return f"{100 * value:.1f} %"


def _coverage(*, frame: pd.DataFrame, low: str, high: str) -> str:
    """`81.2 % (±14.3)`: the share of rows whose realized accuracy is inside [low, high], and the mean
    half-width in points."""
    inside = ((frame["realized"] >= frame[low]) & (frame["realized"] <= frame[high])).mean()
    return f"{_pct(inside)} (±{50 * (frame[high] - frame[low]).mean():.1f})"


def calibration_markdown(*, calibration: pd.DataFrame, fractions: list[float], params: dict[str, Any]) -> list[str]:
    """The drift verdict table: threshold, false alarms (calibration / fresh batches), detection per mix."""
    s = params["monitoring"]["study"]
    pcts = [int(round(100 * f)) for f in fractions]
    lines = [
        f"Null batches: {s['calibration_batches']} to choose each threshold, {s['evaluation_batches']} fresh ones to "
        f"measure the false-alarm rate; {s['drift_batches']} batches per modern share. Per-feature K-S, "
        f"p < {params['monitoring']['stattest_threshold']}.",
        "",
        "| batch size | share threshold | median null share | false alarms (calibration) | false alarms (fresh) | "
        + " | ".join(f"detection {p} % modern" for p in pcts)
        + " |",
        "|---|---|---|---|---|" + "---|" * len(pcts),
    ]
    for _, row in calibration.iterrows():
        cells = [
            str(int(row["batch_size"])),
            f"{row['threshold']:.3f} ({round(row['threshold'] * 88)}/88)",
            f"{row['null_median_share']:.3f}",
            _pct(row["false_alarm_calibration"]),
            _pct(row["false_alarm"]),
        ] + [_pct(row[f"detect_{p}"]) for p in pcts]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def accuracy_markdown(*, per_fold: pd.DataFrame, batches: pd.DataFrame, tolerance: float, model: str) -> list[str]:
    """Estimate vs realized per held-out fold, then summaries over the folds and the random batches."""
    lines = [
        f"Champion configuration `{model}`; temperature per fold fitted on the same repeat's other folds; shift "
        "tau per fold from every other fold's rows without this fold's tracks (a random batch takes its fold's).",
        "",
        "| repeat | fold | tracks | T | tau | realized | estimate (90 % interval) | error | binomial-only interval "
        "| raw-probability estimate |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in per_fold.iterrows():
        lines.append(
            f"| {r['repeat']:.0f} | {r['fold']:.0f} | {r['n']:.0f} | {r['temperature']:.2f} | {100 * r['shift']:.1f} | "
            f"{_pct(r['realized'])} | {_pct(r['estimate'])} ({_pct(r['low'])}–{_pct(r['high'])}) | "
            f"{100 * (r['estimate'] - r['realized']):+.1f} | {_pct(r['low_binomial'])}–{_pct(r['high_binomial'])} | "
            f"{_pct(r['estimate_raw'])} |"
        )
    lines += [
        "",
        "| rows | n | mean error (estimate − realized) | mean abs error | within ±5 points | "
        "a perfect estimate: within ±5 points | in the 90 % interval (mean width) | in the binomial-only interval "
        "(mean width) | bias-corrected (tried): mean error, mean abs error | raw: mean error |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    groups = [("held-out folds", per_fold)] + [(f"random batches of {n}", b) for n, b in batches.groupby("batch_size")]
    for name, frame in groups:
        error, corrected = frame["estimate"] - frame["realized"], frame["estimate_corrected"] - frame["realized"]
        lines.append(
            f"| {name} | {len(frame)} | {100 * error.mean():+.1f} | {100 * error.abs().mean():.1f} | "
            f"{_pct((error.abs() <= tolerance + 1e-12).mean())} | {_pct(frame['ideal_within'].mean())} | "
            f"{_coverage(frame=frame, low='low', high='high')} | "
            f"{_coverage(frame=frame, low='low_binomial', high='high_binomial')} | "
            f"{100 * corrected.mean():+.1f}, {100 * corrected.abs().mean():.1f} | "
            f"{100 * (frame['estimate_raw'] - frame['realized']).mean():+.1f} |"
        )
    weighted = per_fold.assign(r=per_fold["realized"] * per_fold["n"], e=per_fold["estimate"] * per_fold["n"])
    sums = weighted.groupby("repeat")[["r", "e", "n"]].sum()
    pooled, pooled_est = sums["r"] / sums["n"], sums["e"] / sums["n"]
    lines += [
        "",
        "All held-out rows of a repeat pooled: "
        + "; ".join(f"repeat {r}: realized {_pct(pooled[r])}, estimate {_pct(pooled_est[r])}" for r in pooled.index)
        + ".",
    ]
    return lines


def write_doc(*, doc: Path, block: list[str]) -> None:
    """Replace the study block of docs/MONITORING.md (or append it), leaving the hand-written text alone."""
    text = doc.read_text(encoding="utf-8") if doc.is_file() else "# Monitoring\n"
    body = "\n".join([BEGIN, *block, END])
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    text = pattern.sub(lambda _: body, text) if pattern.search(text) else text.rstrip() + "\n\n" + body + "\n"
    write_text(doc, text)


def run_study(*, params: dict[str, Any], accuracy_only: bool = False) -> dict[str, Any]:
    """Both studies, the plot and the doc block; returns the numbers (also saved as JSON next to the plot).
    accuracy_only: keep the last run's drift table (the JSON) and re-run only the accuracy validation."""
    s, started = params["monitoring"]["study"], time.perf_counter()
    tracks, gtzan = study_tracks(params=params)
    if accuracy_only:  # the drift part is minutes of K-S tests; the accuracy part seconds
        saved = json.loads(resolve(s["figure"]).with_suffix(".json").read_text(encoding="utf-8"))
        calibration = pd.DataFrame(saved["calibration"])
    else:
        calibration = drift_calibration(params=params, tracks=tracks, gtzan=gtzan)
    per_fold, batches, model = accuracy_validation(params=params, tracks=tracks)
    figure = resolve(s["figure"])
    plot(calibration=calibration, per_fold=per_fold, fractions=s["modern_fractions"], target=figure)
    doc = resolve(s["doc"])
    block = [
        f"_Regenerated by `make drift-study` on {len(tracks)} non-test GTZAN tracks, {s['folds']}-fold artist-grouped, "
        f"{s['repeats']} repeats, seed {params['seed']}._",
        "",
        "### Drift verdict: false alarms and detection",
        "",
        *calibration_markdown(calibration=calibration, fractions=s["modern_fractions"], params=params),
        "",
        "### Estimated vs realized accuracy",
        "",
        *accuracy_markdown(per_fold=per_fold, batches=batches, tolerance=s["estimate_tolerance"], model=model),
        "",
        f"![drift study]({figure.relative_to(doc.parent).as_posix()})",
    ]
    write_doc(doc=doc, block=block)
    results = {"calibration": calibration.to_dict(orient="records"), "per_fold": per_fold.to_dict(orient="records")}
    write_text(figure.with_suffix(".json"), json.dumps(results, indent=2))
    print(f"drift study: {len(tracks)} tracks, model {model} in {time.perf_counter() - started:.0f} s -> {doc}")
    print(calibration.to_string(index=False))
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accuracy-only", action="store_true", help="keep the drift table, re-run part 2")
    run_study(params=load_params(None), accuracy_only=parser.parse_args().accuracy_only)
