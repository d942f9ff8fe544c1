"""`predict PATH...`: top genres of audio files with the registry's champion model, with calibrated
probabilities and the split-conformal genre set (e.g. "rock | metal", `"set"` in --json).

Exit codes: 0 every file scored, 1 some files failed (each named with its reason), 2 usage error
or no champion in the registry.

Cold start is what a person waits for, so this path imports neither TensorFlow nor MLflow: the
champion is resolved through the registry's own store (serving.champion) and its bundle is run on
ONNX Runtime with the version's own code (serving.loader).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from .config import load_params

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def collect(*, paths: list[Path], extensions: list[str]) -> tuple[list[Path], list[dict[str, str]]]:
    """Files as given plus audio files found recursively in folders; missing paths become errors."""
    suffixes = {f".{ext.lower()}" for ext in extensions}
    files, errors = [], []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
        elif path.exists():
            files.append(path)  # an explicit file is tried whatever its suffix: the decoder decides
        else:
            errors.append({"path": str(path), "error": f"{path}: no such file or folder"})
    return files, errors


def ranked(
    *, paths: list[str], proba: np.ndarray, errors: list[str], sets: list[list[str]], classes: list[str], top_k: int
) -> list[dict[str, Any]]:
    """One record per file: its top-k genres with (calibrated) probabilities and its genre set, or its error."""
    records: list[dict[str, Any]] = []
    for path, row, error, chosen in zip(paths, proba, errors, sets):
        if error:
            records.append({"path": path, "error": error})
            continue
        order = np.argsort(-row, kind="stable")[:top_k]
        top = [{"genre": classes[i], "probability": round(float(row[i]), 4)} for i in order]
        records.append({"path": path, "top": top, "set": chosen})
    return records


def render(*, records: list[dict[str, Any]], console: Console, top_k: int) -> None:
    table = Table(title="Genre predictions (champion model)")
    table.add_column("file", overflow="fold")
    for rank in range(1, top_k + 1):
        table.add_column(f"#{rank}")
    table.add_column("set")  # split-conformal: holds the true genre with the bundle's coverage target
    for record in records:
        if "error" in record:
            continue
        cells = [f"{p['genre']} {p['probability']:.1%}" for p in record["top"]]
        genres = " | ".join(record["set"]) or "–"
        table.add_row(record["path"], *cells, *[""] * (top_k - len(cells)), genres)
    console.print(table)
    for record in records:
        if "error" in record:
            console.print(f"[red]error[/red] {record['error']}", soft_wrap=True)


@app.command()
def main(
    paths: list[Path] = typer.Argument(..., help="audio files or folders (searched recursively)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON records instead of a table"),
    tracking_uri: Optional[str] = typer.Option(None, help="MLflow registry (default: env or params)"),
    model_name: Optional[str] = typer.Option(None, help="registered model (default: params)"),
    params_file: Optional[Path] = typer.Option(None, "--params", help="params.yaml to read"),
) -> None:
    """Print the top genres of each audio file with the champion model from the MLflow registry."""
    params = load_params(params_file)
    settings, console = params["predict"], Console(stderr=False)
    if not console.is_terminal:  # piped or captured output is read whole: no folding of paths at 80 columns
        console = Console(stderr=False, width=settings["table_width"])
    files, errors = collect(paths=paths, extensions=settings["extensions"])
    if not files and not errors:
        typer.echo(f"no audio files ({', '.join(settings['extensions'])}) under {[str(p) for p in paths]}", err=True)
        raise typer.Exit(EXIT_USAGE)
    records = []
    if files:
        classes, proba, failures, sets = score(
            files=files, params=params, tracking_uri=tracking_uri, model_name=model_name
        )
        records = ranked(
            paths=[str(f) for f in files],
            proba=proba,
            errors=failures,
            sets=sets,
            classes=classes,
            top_k=settings["top_k"],
        )
    records += errors
    if as_json:
        typer.echo(json.dumps(records, indent=2))
    else:
        render(records=records, console=console, top_k=settings["top_k"])
    raise typer.Exit(EXIT_FAILED if any("error" in r for r in records) else EXIT_OK)


def score(
    *, files: list[Path], params: dict[str, Any], tracking_uri: str | None, model_name: str | None
) -> tuple[list[str], np.ndarray, list[str], list[list[str]]]:
    """The champion's classes, calibrated probabilities, per-file errors and genre sets; no champion is a
    usage error (exit 2)."""
    from .serving.champion import NoChampion, open_champion, resolve_tracking_uri

    settings = params["register"]
    try:
        _, model = open_champion(
            uri=tracking_uri or resolve_tracking_uri(params=params),
            name=model_name or settings["model_name"],
            alias=settings["alias"],
        )
    except NoChampion as exc:
        typer.echo(f"no champion model in the registry: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    proba, errors = model.predict_paths([str(f) for f in files])
    # a version registered before bundles carried a calibration has no sets
    sets = model.genre_sets(proba) if hasattr(model, "genre_sets") else [[] for _ in files]
    return model.classes, proba, errors, sets


if __name__ == "__main__":
    app()
