"""Stage evaluate: every trained model under both protocols, scored from its stored predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from musicgenre.config import resolve
from musicgenre.crossval import cross_validate
from musicgenre.evaluation import confusion_pairs, evaluate_predictions, load_run, misclassifications, plot_confusion
from musicgenre.io import write_csv, write_json, write_text
from musicgenre.models.predictor import META_FILE, PREDICTIONS_FILE, ModelMeta
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


def summary_table(*, metrics: dict[str, dict[str, Any]], protocols: list[str]) -> str:
    """Markdown: one row per model, the protocols side by side (grouped vs random = leakage)."""
    header = ["model", "grouped CV acc (mean ± std)", "grouped CV F1 (mean ± std)"]
    header += [
        f"{protocol} {column}"
        for protocol in protocols
        for column in ("test acc", "test F1", "valid acc", "valid F1", "train-test gap")
    ]
    leakage = {"grouped", "random"} <= set(protocols)
    header += ["random − grouped test acc"] if leakage else []
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model, by_protocol in sorted(metrics.items()):
        cells = [model, *cv_cells(by_protocol.get(CV_PROTOCOL, {}))]
        for protocol in protocols:
            m = by_protocol.get(protocol, {})
            values = [
                m.get("test", {}).get("accuracy"),
                m.get("test", {}).get("macro_f1"),
                m.get("valid", {}).get("accuracy"),
                m.get("valid", {}).get("macro_f1"),
                m.get("train_test_gap"),
            ]
            cells += ["–" if value is None else f"{value:.3f}" for value in values]
        if leakage:  # how much artist leakage inflates the random protocol's score
            accs = [by_protocol.get(p, {}).get("test", {}).get("accuracy") for p in ("random", "grouped")]
            cells.append("–" if None in accs else f"{accs[0] - accs[1]:+.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cv_cells(scores: dict[str, Any]) -> list[str]:
    """'mean ± std' of the grouped CV accuracy and macro-F1, or '–' when not cross-validated."""
    return [
        f"{scores[f'cv_{m}_mean']:.3f} ± {scores[f'cv_{m}_std']:.3f}" if f"cv_{m}_mean" in scores else "–"
        for m in ("accuracy", "macro_f1")
    ]


def skip_reason(*, family: str | None) -> str:
    if family is None:
        return "not configured in params.models, so it cannot be refitted"
    if family == "deep":  # measured: ~140 s per fit, so folds x repeats refits would take ~35 min per model
        return (
            "deep: one fit takes minutes on the shared 2-core CPU; add `deep` to evaluate.cv_families "
            "(and lower its epochs) to include it"
        )
    return f"family {family!r} not in evaluate.cv_families"


def cross_validation(params: dict[str, Any], *, models: list[str]) -> tuple[dict[str, dict], dict[str, str]]:
    """Grouped CV of each model whose family is in evaluate.cv_families (in parallel worker processes);
    the others get the reason they were skipped."""
    from joblib import Parallel, delayed

    from musicgenre.models.data import load_tables
    from stages.embed import tagger_ref

    settings, configured = params["evaluate"], params["models"]
    skipped = {
        model: skip_reason(family=configured.get(model, {}).get("family"))
        for model in models
        if configured.get(model, {}).get("family") not in settings["cv_families"]
    }
    chosen = [model for model in models if model not in skipped]
    if not chosen:
        return {}, skipped
    transfer = any(configured[model]["family"] == "transfer" for model in chosen)
    tables = load_tables(params=params, embeddings=transfer)
    embedding = tagger_ref(params) if transfer else None
    jobs = (
        delayed(cross_validate)(
            name=model,
            settings=configured[model],
            tables=tables,
            classes=params["genres"],
            seed=params["seed"],
            folds=settings["cv_folds"],
            repeats=settings["cv_repeats"],
            threads=params["train"]["threads"],
            embedding=embedding,
        )
        for model in chosen
    )
    results = Parallel(n_jobs=settings["cv_n_jobs"])(jobs)
    return dict(zip(chosen, results)), skipped


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


def cv_note(*, settings: dict[str, Any], skipped: dict[str, str]) -> str:
    """How the CV columns were computed, and which models were not cross-validated and why."""
    note = (
        f"grouped CV = {settings['cv_folds']}-fold artist-grouped cross-validation x {settings['cv_repeats']} "
        "repeats over all split tracks, each model refitted per fold; mean ± std over the folds.\n"
    )
    if skipped:
        note += "CV skipped for: " + "; ".join(f"{model} ({why})" for model, why in sorted(skipped.items())) + ".\n"
    return note


def evaluate(params: dict[str, Any]) -> dict[str, Any]:
    """Score every trained model on train/valid/test under both protocols; write the reports."""
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
    protocols = sorted({protocol for by_protocol in metrics.values() for protocol in by_protocol})
    cv, skipped = cross_validation(params, models=sorted(m for m in metrics if CV_PROTOCOL in metrics[m]))
    for model, scores in cv.items():
        metrics[model][CV_PROTOCOL].update(scores)
        details[model][CV_PROTOCOL]["cv"] = scores
    write_json(out / "metrics.json", metrics)
    write_json(out / "details.json", details)
    write_json(out / "misclassifications.json", errors)
    write_text(
        out / "misclassifications.md", misclassification_markdown(report=errors, limit=settings["top_confusions"])
    )
    write_text(
        out / "summary.md",
        "# Model evaluation (track level)\n\n"
        + summary_table(metrics=metrics, protocols=protocols)
        + "\n\n"
        + "grouped = artist-disjoint splits; random = stratified random (artist leakage inflates it).\n"
        + cv_note(settings=settings, skipped=skipped),
    )
    return metrics


if __name__ == "__main__":
    run_stage(evaluate)
