"""Stage train: fit one model (params.models.<name>) under every protocol and write, per protocol,
artifacts/models/<model>/<protocol>/ = fitted model + meta.json + predictions.parquet.

Predictions come from the model reloaded from its written directory through `load_predictor`, so
what is evaluated is exactly what gets registered and served.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd
import typer

from musicgenre.config import load_params, resolve
from musicgenre.embeddings import EmbeddingConfig
from musicgenre.io import atomic_dir, write_json, write_parquet
from musicgenre.models import Predictor, fit_predictor, load_predictor, model_names
from musicgenre.models.data import Tables, load_tables, protocol_split, track_features
from musicgenre.models.predictor import META_FILE, PREDICTIONS_FILE
from musicgenre.splits import SPLITS
from stages._cli import StageError


def train(params: dict[str, Any], *, model: str) -> dict[str, Any]:
    """Train `model` under each protocol; returns per protocol the track accuracy of each split."""
    if model not in model_names(params):
        raise StageError(f"unknown model {model!r}; params.models names/transfer_names list {model_names(params)}")
    tables = load_tables(params=params, embeddings=params["models"][model]["family"] == "transfer")
    target = resolve(params["paths"]["models"]) / model
    return {protocol: train_protocol(params, model=model, tables=tables, protocol=protocol,
                                     target=target / protocol)
            for protocol in params["train"]["protocols"]}


def train_protocol(params: dict[str, Any], *, model: str, tables: Tables, protocol: str,
                   target: Path) -> dict[str, Any]:
    """Fit on the protocol's train tracks, then write the model directory atomically."""
    genres, settings = list(params["genres"]), params["models"][model]
    split = protocol_split(tables=tables, protocol=protocol)
    unknown = sorted(set(split["genre"]) - set(genres))
    if unknown:
        raise StageError(f"splits table has genres {unknown} that params.genres lacks")
    labels = split["genre"].map(genres.index).to_numpy()
    items = track_features(tables=tables, tracks=split["track"])
    part = {name: (split["split"] == name).to_numpy() for name in ("train", "valid")}
    transfer = settings["family"] == "transfer"
    embedding = EmbeddingConfig.from_params(params) if transfer else None
    started = time.perf_counter()
    predictor = fit_predictor(
        name=model, settings=settings, seed=params["seed"], classes=genres, threads=params["train"]["threads"],
        train_items=[i for i, keep in zip(items, part["train"]) if keep], train_labels=labels[part["train"]],
        valid_items=[i for i, keep in zip(items, part["valid"]) if keep], valid_labels=labels[part["valid"]],
        embedding=embedding)
    meta = {"model": model, "family": settings["family"], "input": predictor.input, "protocol": protocol,
            "classes": genres,
            "feature_columns": tables.feature_columns if settings["family"] in ("classic", "transfer") else [],
            **({"embeddings": embedding.as_dict()} if transfer else {}),
            "train_seconds": round(time.perf_counter() - started, 3), "params": settings,
            "n_train_tracks": int(part["train"].sum()), "seed": params["seed"]}
    predictions = write_model_dir(target=target, predictor=predictor, meta=meta, split=split, items=items)
    return {"train_seconds": meta["train_seconds"], **track_accuracy(predictions, genres=genres)}


def write_model_dir(*, target: Path, predictor: Predictor, meta: dict[str, Any], split: pd.DataFrame,
                    items: list) -> pd.DataFrame:
    """Save model + meta, reload it, predict every track with the reloaded model; all or nothing."""
    with atomic_dir(target) as tmp:
        predictor.save(tmp)
        write_json(tmp / META_FILE, meta)
        proba = load_predictor(tmp).predict_proba(items)
        predictions = split[["track", "genre", "split"]].reset_index(drop=True)
        predictions[[f"proba_{genre}" for genre in meta["classes"]]] = proba
        write_parquet(tmp / PREDICTIONS_FILE, predictions)
    return predictions


def track_accuracy(predictions: pd.DataFrame, *, genres: list[str]) -> dict[str, float]:
    """Share of tracks whose most probable genre is the true one, per split."""
    columns = [f"proba_{genre}" for genre in genres]
    predicted = np.asarray(genres)[predictions[columns].to_numpy().argmax(axis=1)]
    correct = pd.Series(predicted == predictions["genre"].to_numpy(), index=predictions.index)
    return {f"{name}_accuracy": round(float(correct[predictions["split"] == name].mean()), 4)
            for name in SPLITS}


app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def main(model: str = typer.Option(..., "--model", help="a name from params.models.names or transfer_names"),
         params: Optional[Path] = typer.Option(None, help="params.yaml to read (default: the project's)")) -> None:
    try:
        summary = train(load_params(params), model=model)
    except StageError as exc:
        typer.echo(f"stage train failed: {exc}", err=True)
        raise typer.Exit(code=1)
    typer.echo(json.dumps(summary, indent=2, default=str))


if __name__ == "__main__":
    app(prog_name="python -m stages.train")
