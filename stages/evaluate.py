"""Stage evaluate: every trained model under both protocols, scored from its stored predictions."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from musicgenre.config import resolve
from musicgenre.evaluation import (confusion_pairs, evaluate_predictions, load_run, misclassifications,
                                   plot_confusion)
from musicgenre.io import write_csv, write_json, write_text
from stages._cli import StageError, run_stage

SCALARS = ("accuracy", "macro_f1", "log_loss")


def model_dirs(*, models_dir: Path) -> list[Path]:
    """Every <model>/<protocol>/ folder holding a finished run (meta.json + predictions)."""
    found = sorted(path.parent for path in models_dir.glob("*/*/meta.json")
                   if (path.parent / "predictions.parquet").is_file())
    if not found:
        raise StageError(f"no trained models (meta.json + predictions.parquet) under {models_dir}")
    return found


def scalar_metrics(result: dict[str, Any]) -> dict[str, Any]:
    """The compact numbers for `dvc metrics show`: no per-genre tables or matrices."""
    compact = {split: {name: result[split][name] for name in SCALARS} for split in ("valid", "test")
               if split in result}
    if "train" in result:
        compact["train_accuracy"] = result["train"]["accuracy"]
    if "train_test_gap" in result:
        compact["train_test_gap"] = result["train_test_gap"]
    return compact


def summary_table(*, metrics: dict[str, dict[str, Any]], protocols: list[str]) -> str:
    """Markdown: one row per model, the protocols side by side (grouped vs random = leakage)."""
    header = ["model"] + [f"{protocol} {column}" for protocol in protocols
                          for column in ("test acc", "test F1", "valid acc", "valid F1", "train-test gap")]
    leakage = {"grouped", "random"} <= set(protocols)
    header += ["random − grouped test acc"] if leakage else []
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model, by_protocol in sorted(metrics.items()):
        cells = [model]
        for protocol in protocols:
            m = by_protocol.get(protocol, {})
            values = [m.get("test", {}).get("accuracy"), m.get("test", {}).get("macro_f1"),
                      m.get("valid", {}).get("accuracy"), m.get("valid", {}).get("macro_f1"),
                      m.get("train_test_gap")]
            cells += ["–" if value is None else f"{value:.3f}" for value in values]
        if leakage:  # how much artist leakage inflates the random protocol's score
            accs = [by_protocol.get(p, {}).get("test", {}).get("accuracy") for p in ("random", "grouped")]
            cells.append("–" if None in accs else f"{accs[0] - accs[1]:+.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def misclassification_markdown(*, report: dict[str, list[dict[str, Any]]], limit: int) -> str:
    lines = ["# Test-split misclassifications", "",
             "Most frequent confusions (true → predicted) per model and protocol, with each track's top predictions.", ""]
    for run, groups in report.items():
        lines += [f"## {run}", ""] + (["No test track misclassified.", ""] if not groups else [])
        for group in groups[:limit]:
            lines.append(f"- **{group['actual']} → {group['predicted']}** ({group['count']})")
            for track in group["tracks"]:
                top = ", ".join(f"{p['genre']} {p['probability']:.2f}" for p in track["top"])
                lines.append(f"  - `{track['track']}`: {top}")
        lines.append("")
    return "\n".join(lines)


def score_run(*, model_dir: Path, settings: dict[str, Any], genres: list[str], out: Path) -> tuple[dict, dict, list]:
    """Metrics, confusion plot data + PNG and misclassifications of one model/protocol."""
    meta, predictions = load_run(model_dir)
    if meta["classes"] != genres:
        raise StageError(f"{model_dir}: classes {meta['classes']} differ from params genres {genres}")
    result = evaluate_predictions(frame=predictions, classes=genres, splits=settings["splits"])
    if "test" not in result:
        raise StageError(f"{model_dir}: predictions.parquet has no test rows")
    name = f"{meta['model']}_{meta['protocol']}"
    test = predictions[predictions["split"] == "test"]
    write_csv(out / "confusion" / f"{name}.csv", confusion_pairs(frame=test, classes=genres))
    plot_confusion(matrix=result["test"]["confusion"], classes=genres, target=out / "figures" / f"{name}.png",
                   title=f"{meta['model']} ({meta['protocol']}) test accuracy {result['test']['accuracy']:.2f}")
    return meta, result, misclassifications(frame=test, classes=genres, top_k=settings["top_k"])


def evaluate(params: dict[str, Any]) -> dict[str, Any]:
    """Score every trained model on train/valid/test under both protocols; write the reports."""
    settings, genres = params["evaluate"], params["genres"]
    out = resolve(settings["report_dir"])
    metrics: dict[str, dict[str, Any]] = {}
    details: dict[str, dict[str, Any]] = {}
    errors: dict[str, list] = {}
    for model_dir in model_dirs(models_dir=resolve(params["paths"]["models"])):
        meta, result, wrong = score_run(model_dir=model_dir, settings=settings, genres=genres, out=out)
        metrics.setdefault(meta["model"], {})[meta["protocol"]] = scalar_metrics(result)
        details.setdefault(meta["model"], {})[meta["protocol"]] = result
        errors[f"{meta['model']} ({meta['protocol']})"] = wrong
    protocols = sorted({protocol for by_protocol in metrics.values() for protocol in by_protocol})
    write_json(out / "metrics.json", metrics)
    write_json(out / "details.json", details)
    write_json(out / "misclassifications.json", errors)
    write_text(out / "misclassifications.md",
               misclassification_markdown(report=errors, limit=settings["top_confusions"]))
    write_text(out / "summary.md", "# Model evaluation (track level)\n\n"
               + summary_table(metrics=metrics, protocols=protocols) + "\n\n"
               + "grouped = artist-disjoint splits; random = stratified random (artist leakage inflates it).\n")
    return metrics


if __name__ == "__main__":
    run_stage(evaluate)
