"""Stage evaluate: every trained model under both protocols, scored from its stored predictions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from musicgenre.calibrated import calibration_summary, plot_reliability
from musicgenre.cluster import joblib_backend, runner_kind
from musicgenre.config import resolve
from musicgenre.crossval import cv_tracks
from musicgenre.evaluation import confusion_pairs, evaluate_predictions, load_run, misclassifications, plot_confusion
from musicgenre.io import write_csv, write_json, write_parquet, write_text
from musicgenre.models.predictor import META_FILE, PREDICTIONS_FILE, ModelMeta
from musicgenre.oof import out_of_fold
from musicgenre.selection import (
    METRICS,
    best_model,
    complete_models,
    cv_summary,
    fold_scores,
    fold_vector,
    nested_estimate,
)
from stages._cli import StageError, run_stage

SCALARS = ("accuracy", "macro_f1", "log_loss")
CV_PROTOCOL = "grouped"  # the cross-validation is artist-grouped: its numbers sit beside that protocol's


def model_dirs(*, models_dir: Path) -> list[Path]:
    """Every <model>/<protocol>/ folder holding a finished run (meta.json + predictions)."""
    found = sorted(
        path.parent for path in models_dir.glob(f"*/*/{META_FILE}") if (path.parent / PREDICTIONS_FILE).is_file()
    )
    if not found:
        raise StageError(f"no trained models ({META_FILE} + {PREDICTIONS_FILE}) under {models_dir}")
    return found


def scalar_metrics(result: dict[str, Any]) -> dict[str, Any]:
    """The compact numbers for `dvc metrics show`: no per-genre tables or matrices."""
    compact: dict[str, Any] = {
        split: {name: result[split][name] for name in SCALARS} for split in ("valid", "test") if split in result
    }
    if "train" in result:
        compact["train_accuracy"] = result["train"]["accuracy"]
    if "train_test_gap" in result:
        compact["train_test_gap"] = result["train_test_gap"]
    return compact


def summary_table(
    *,
    metrics: dict[str, dict[str, Any]],
    nested: dict[str, Any] | None,
    champion: str | None,
    search: dict[str, Any] | None = None,
) -> str:
    """Markdown: one row per model (grouped CV, test, calibration, genre sets, the random protocol's
    leakage), plus the nested estimates of choosing the champion among the cross-validated models and of
    the transfer search that chose transfer_ridge's settings (`search`: params.search.results)."""
    header = ["model", "grouped CV acc (mean ± std)", "grouped CV F1 (mean ± std)", "grouped test acc"]
    header += ["grouped test F1", "grouped train-test gap", "ECE raw → calibrated", "set coverage", "mean set size"]
    header += ["random test acc", "random − grouped test acc"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model, by_protocol in sorted(metrics.items()):
        grouped, random = by_protocol.get(CV_PROTOCOL, {}), by_protocol.get("random", {})
        test, random_test = grouped.get("test", {}).get("accuracy"), random.get("test", {}).get("accuracy")
        cells = [f"**{model}** (champion)" if model == champion else model, *cv_cells(grouped)]
        cells += [number(test), number(grouped.get("test", {}).get("macro_f1")), number(grouped.get("train_test_gap"))]
        ece = f"{grouped['ece_raw']:.3f} → {grouped['ece']:.3f}" if "ece" in grouped else "–"
        cells += [ece, number(grouped.get("coverage")), number(grouped.get("set_size"), digits=2)]
        # how much artist leakage inflates the random protocol's score
        cells += [number(random_test), "–" if None in (test, random_test) else f"{random_test - test:+.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    if nested:
        cells = [f"champion choice, nested ({nested['models']} models)"]
        cells += [f"{nested[f'{m}_mean']:.3f} ± {nested[f'{m}_std']:.3f}" for m in ("accuracy", "macro_f1")]
        lines.append("| " + " | ".join(cells + ["–"] * (len(header) - len(cells))) + " |")
    for metric, found in (search or {}).items():  # how transfer_ridge's settings were chosen (make transfer-search)
        cells = [f"transfer search, nested ({found['models']} configurations, chosen {metric.replace('_', ' ')})"]
        cells += [f"{found[f'{m}_mean']:.3f} ± {found[f'{m}_std']:.3f}" for m in ("accuracy", "macro_f1")]
        lines.append("| " + " | ".join(cells + ["–"] * (len(header) - len(cells))) + " |")
    return "\n".join(lines)


def search_results(params: dict[str, Any]) -> dict[str, Any] | None:
    """The nested estimates `make transfer-search` wrote (params.search.results), if it was run."""
    path = resolve(params["search"]["results"])
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def number(value: float | None, *, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def cv_cells(scores: dict[str, Any]) -> list[str]:
    """'mean ± std' of the grouped CV accuracy and macro-F1, or '–' when not cross-validated."""
    return [
        f"{scores[f'cv_{m}_mean']:.3f} ± {scores[f'cv_{m}_std']:.3f}" if f"cv_{m}_mean" in scores else "–"
        for m in ("accuracy", "macro_f1")
    ]


def skip_reason(*, family: str | None) -> str:
    if family is None:
        return "not configured in params.models, so it cannot be refitted"
    return f"family {family!r} not in evaluate.cv_families"


def cv_options(*, settings: dict[str, Any], model: dict[str, Any]) -> dict[str, Any]:
    """How a model is cross-validated: on the fold plan's first `repeats` repeats (the same folds for
    every model); the deep family may use fewer (evaluate.deep.repeats), fits repeat r with seed + r (its
    repeats are also its seeds) and, when it early-stops, holds back an inner artist-grouped fold of each
    training fold for that (without early stopping it trains on the whole training fold)."""
    if model["family"] != "deep":
        return {"repeats": settings["cv_repeats"]}
    deep, stops = settings["deep"], model["hyper"].get("patience") is not None
    return {"repeats": deep["repeats"], "inner_folds": deep["inner_folds"] if stops else None, "seed_per_repeat": True}


def cross_validation(params: dict[str, Any], *, models: list[str]) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """Out-of-fold probabilities of each model whose family is in evaluate.cv_families, on the same
    artist-grouped folds (in parallel worker processes); the others get the reason they were skipped."""
    from joblib import delayed

    from musicgenre.models.data import load_tables
    from stages.embed import pretrained_input

    settings, configured = params["evaluate"], params["models"]
    skipped = {
        model: skip_reason(family=configured.get(model, {}).get("family"))
        for model in models
        if configured.get(model, {}).get("family") not in settings["cv_families"]
    }
    chosen = sorted(m for m in models if m not in skipped)
    if not chosen:
        return {}, skipped
    tables = load_tables(
        params=params,
        embeddings=any(configured[model]["family"] == "transfer" for model in chosen),
        patches=any(configured[model].get("input") == "patches" for model in chosen),
    )
    jobs = {
        model: delayed(out_of_fold)(
            name=model,
            settings=configured[model],
            tables=tables,
            tracks=cv_tracks(tables=tables),
            classes=params["genres"],
            seed=params["seed"],
            folds=settings["cv_folds"],
            threads=params["train"]["threads"],
            embedding=pretrained_input(params, model=model),
            **cv_options(settings=settings, model=configured[model]),
        )
        for model in chosen
    }
    phases = cv_phases(chosen, configured=configured)
    results = run_phases([[jobs[m] for m in phase] for phase in phases], params=params, n_jobs=settings["cv_n_jobs"])
    return dict(zip([model for phase in phases for model in phase], results)), skipped


def cv_phases(models: list[str], *, configured: dict[str, Any]) -> list[list[str]]:
    """The models cross-validated in each phase, in order: the deep ones (TensorFlow), then the others."""
    return [
        [m for m in models if configured[m]["family"] == "deep"],
        [m for m in models if configured[m]["family"] != "deep"],
    ]


def run_phases(phases: list[list[Any]], *, params: dict[str, Any], n_jobs: int) -> list[Any]:
    """The results of every phase's joblib jobs, in order. Locally each phase gets fresh worker processes:
    loky reuses workers, and one that ran a deep model keeps TensorFlow's ~1 GB for the rest of the stage.
    On Dask (orchestration.task_runner) the cluster's workers are its own business: all jobs go at once."""
    from joblib import Parallel
    from joblib.externals.loky import get_reusable_executor

    if runner_kind(params) == "dask":
        with joblib_backend(params):
            return Parallel(n_jobs=n_jobs)(job for phase in phases for job in phase)
    results: list[Any] = []
    for phase in phases:
        results += Parallel(n_jobs=n_jobs)(phase) if phase else []
        get_reusable_executor(reuse=True).shutdown(wait=True)  # the workers exit with what they loaded
    return results


def selection_report(params: dict[str, Any], *, oof: dict[str, pd.DataFrame], out: Path) -> dict[str, Any]:
    """From the OOF rows: grouped-CV scores per fold, the champion (mean `register.metric`), the nested
    estimate of that choice, each model's calibration (reliability PNG); writes oof_file and selection_file."""
    settings, genres, metric = params["evaluate"], params["genres"], params["register"]["metric"]
    frame = pd.concat([rows.assign(model=model) for model, rows in sorted(oof.items())], ignore_index=True)
    write_parquet(out / settings["oof_file"], frame[["model", *[c for c in frame.columns if c != "model"]]])
    scores, check = fold_scores(oof=frame, classes=genres), settings["calibration"]
    calibration = {}
    for model in sorted(oof):
        calibration[model] = calibration_summary(
            oof=frame[frame["model"] == model],
            classes=genres,
            bins=check["ece_bins"],
            edge_positions=check["ece_edge_positions"],
            coverage=check["coverage"],
            floor_draws=check["floor_draws"],
            seed=params["seed"],
        )
        plot_reliability(
            summary=calibration[model],
            title=f"{model}: grouped out-of-fold reliability",
            target=out / "figures" / f"reliability_{model}.png",
        )
    selection = {
        "metric": metric,
        "champion": best_model(scores=scores[scores["model"].isin(complete_models(scores=scores))], metric=metric),
        "tracks": int(frame.groupby("repeat")["track"].nunique().max()),
        "folds": [[int(r), int(k)] for r, k in scores[["repeat", "fold"]].drop_duplicates().to_numpy()],
        "scores": {m: {n: fold_vector(scores=scores, model=m, metric=n) for n in METRICS} for m in sorted(oof)},
        "nested": nested_estimate(scores=scores, metric=metric) if len(oof) > 1 else None,
        "calibration": {
            m: {k: v for k, v in c.items() if not k.startswith("reliability")} for m, c in calibration.items()
        },
    }
    write_json(out / settings["selection_file"], selection)
    return {**selection, "summary": cv_summary(scores=scores), "reliability": calibration}


def misclassification_markdown(*, report: dict[str, list[dict[str, Any]]], limit: int) -> str:
    lines = [
        "# Test-split misclassifications",
        "",
        "Most frequent confusions (true → predicted) per model and protocol, with each track's top predictions.",
        "",
    ]
    for run, groups in report.items():
        lines += [f"## {run}", ""] + (["No test track misclassified.", ""] if not groups else [])
        for group in groups[:limit]:
            lines.append(f"- **{group['actual']} → {group['predicted']}** ({group['count']})")
            for track in group["tracks"]:
                top = ", ".join(f"{p['genre']} {p['probability']:.2f}" for p in track["top"])
                lines.append(f"  - `{track['track']}`: {top}")
        lines.append("")
    return "\n".join(lines)


def score_run(
    *, model_dir: Path, settings: dict[str, Any], genres: list[str], out: Path
) -> tuple[ModelMeta, dict, list]:
    """Metrics, confusion plot data + PNG and misclassifications of one model/protocol."""
    meta, predictions = load_run(model_dir)
    if meta.classes != genres:
        raise StageError(f"{model_dir}: classes {meta.classes} differ from params genres {genres}")
    result = evaluate_predictions(frame=predictions, classes=genres, splits=settings["splits"])
    if "test" not in result:
        raise StageError(f"{model_dir}: {PREDICTIONS_FILE} has no test rows")
    name = f"{meta.model}_{meta.protocol}"
    test = predictions[predictions["split"] == "test"]
    write_csv(out / "confusion" / f"{name}.csv", confusion_pairs(frame=test, classes=genres))
    plot_confusion(
        matrix=result["test"]["confusion"],
        classes=genres,
        target=out / "figures" / f"{name}.png",
        title=f"{meta.model} ({meta.protocol}) test accuracy {result['test']['accuracy']:.2f}",
    )
    return meta, result, misclassifications(frame=test, classes=genres, top_k=settings["top_k"])


def notes(*, params: dict[str, Any], skipped: dict[str, str], selection: dict[str, Any] | None) -> str:
    """How the columns were computed, the champion's calibration check, and which models were not
    cross-validated and why."""
    settings, check = params["evaluate"], params["evaluate"]["calibration"]
    text = (
        "grouped = artist-disjoint splits; random = stratified random (artist leakage inflates it).\n"
        f"grouped CV = {settings['cv_folds']}-fold artist-grouped cross-validation x {settings['cv_repeats']} "
        "repeats over the tracks outside the grouped test split (the same folds for every model), each model "
        "refitted per fold; mean ± std over the folds. The test split is scored once, by the train stage's model.\n"
        f"The champion is the model with the best mean grouped-CV {params['register']['metric']} (never valid or "
        "test). Nested: for each outer fold, the best model on the other folds of its repeat, scored on the outer "
        "fold (the choice is nested; each model's refits are not).\n"
        f"ECE ({check['ece_bins']} bins) and the genre sets are cross-fitted on the out-of-fold rows: the temperature "
        "and the split-conformal (LAC, hand-written: MAPIE is not installed) threshold are fitted on the other "
        f"folds of a repeat and scored on the held-out fold; target coverage {check['coverage']:.0%}. The served "
        "temperature and threshold are fitted on all out-of-fold rows. The temperature minimises log loss, "
        "not ECE: for a model that gives the true genre probability ~0 on some tracks (knn_bagging) it "
        "flattens every row and ECE rises.\n"
    )
    if "deep" in settings["cv_families"]:
        deep = settings["deep"]
        text += (
            f"Deep models (cnn, crnn): the first {deep['repeats']} repeat(s) of the same fold plan, repeat r fitted "
            "with seed + r (so the spread is over folds and seeds); early stopping, when configured, on one of "
            f"{deep['inner_folds']} artist-grouped folds of each training fold, never on the held-out fold.\n"
        )
    if selection is not None:
        champion = selection["calibration"][selection["champion"]]
        verdict = (champion["ece"] <= check["max_ece"], champion["coverage"] >= check["min_coverage"])
        edge_low, edge_high = champion["ece_edge_range"]
        text += (
            f"Champion {selection['champion']}: calibrated ECE {champion['ece']:.3f} "
            f"({'meets' if verdict[0] else 'MISSES'} ≤ {check['max_ece']}; {edge_low:.3f} to {edge_high:.3f} as the "
            f"{check['ece_bins']} bin edges move through one bin width, and perfectly calibrated rows would show "
            f"{champion['ece_floor']:.3f} from sampling noise alone), coverage {champion['coverage']:.3f} "
            f"({'meets' if verdict[1] else 'MISSES'} ≥ {check['min_coverage']}), mean set size "
            f"{champion['set_size']:.2f}, temperature {champion['temperature']:.3f}.\n"
        )
    if skipped:
        text += "CV skipped for: " + "; ".join(f"{model} ({why})" for model, why in sorted(skipped.items()))
        text += "; they cannot be champion.\n"
    return text


def evaluate(params: dict[str, Any]) -> dict[str, Any]:
    """Score every trained model on train/valid/test under both protocols; grouped-CV selection and
    calibration from out-of-fold rows; write the reports."""
    settings, genres = params["evaluate"], params["genres"]
    out = resolve(settings["report_dir"])
    metrics: dict[str, dict[str, Any]] = {}
    details: dict[str, dict[str, Any]] = {}
    errors: dict[str, list] = {}
    for model_dir in model_dirs(models_dir=resolve(params["paths"]["models"])):
        meta, result, wrong = score_run(model_dir=model_dir, settings=settings, genres=genres, out=out)
        metrics.setdefault(meta.model, {})[meta.protocol] = scalar_metrics(result)
        details.setdefault(meta.model, {})[meta.protocol] = result
        errors[f"{meta.model} ({meta.protocol})"] = wrong
    oof, skipped = cross_validation(params, models=sorted(m for m in metrics if CV_PROTOCOL in metrics[m]))
    selection = selection_report(params, oof=oof, out=out) if oof else None
    for model in oof:
        assert selection is not None
        scalars = {k: v for k, v in selection["calibration"][model].items() if k != "coverage_target"}
        metrics[model][CV_PROTOCOL].update({**selection["summary"][model], **scalars})
        details[model][CV_PROTOCOL]["cv"] = {**selection["summary"][model], **selection["reliability"][model]}
    write_json(out / "metrics.json", metrics)
    write_json(out / "details.json", details)
    write_json(out / "misclassifications.json", errors)
    write_text(
        out / "misclassifications.md", misclassification_markdown(report=errors, limit=settings["top_confusions"])
    )
    nested, champion = (selection["nested"], selection["champion"]) if selection else (None, None)
    write_text(
        out / "summary.md",
        "# Model evaluation (track level)\n\n"
        + summary_table(metrics=metrics, nested=nested, champion=champion, search=search_results(params))
        + "\n\n"
        + notes(params=params, skipped=skipped, selection=selection),
    )
    return metrics


if __name__ == "__main__":
    run_stage(evaluate)
