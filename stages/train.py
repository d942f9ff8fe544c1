"""Stage train: fit one model (params.models.<name>) under every protocol and write, per protocol,
artifacts/models/<model>/<protocol>/ = fitted model + meta.json + predictions.parquet.

Predictions come from the model reloaded from its written directory through `load_predictor`, so
what is evaluated is exactly what gets registered and served.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musicgenre.config import resolve
from musicgenre.io import atomic_dir, write_parquet
from musicgenre.models import TrainedModel, fit_predictor, load_predictor, model_names
from musicgenre.models.data import Tables, load_tables, protocol_split, track_features
from musicgenre.models.predictor import PREDICTIONS_FILE, ExportSettings, ModelMeta, proba_columns
from musicgenre.splits import SPLITS
from stages._cli import StageError, run_stage
from stages.embed import pretrained_input


def train(params: dict[str, Any], *, model: str) -> dict[str, Any]:
    """Train `model` under each protocol; returns per protocol the track accuracy of each split."""
    if model not in model_names(params):
        raise StageError(f"unknown model {model!r}; params.models names/transfer_names list {model_names(params)}")
    settings = params["models"][model]
    tables = load_tables(
        params=params, embeddings=settings["family"] == "transfer", patches=settings.get("input") == "patches"
    )
    target = resolve(params["paths"]["models"]) / model
    return {
        protocol: train_protocol(params, model=model, tables=tables, protocol=protocol, target=target / protocol)
        for protocol in params["train"]["protocols"]
    }


def train_protocol(
    params: dict[str, Any], *, model: str, tables: Tables, protocol: str, target: Path
) -> dict[str, Any]:
    """Fit on the protocol's train tracks, then write the model directory atomically."""
    genres, settings = list(params["genres"]), params["models"][model]
    split = protocol_split(tables=tables, protocol=protocol)
    unknown = sorted(set(split["genre"]) - set(genres))
    if unknown:
        raise StageError(f"splits table has genres {unknown} that params.genres lacks")
    labels = split["genre"].map(genres.index).to_numpy()
    items = track_features(tables=tables, tracks=split["track"])
    part = {name: (split["split"] == name).to_numpy() for name in ("train", "valid")}
    pretrained = pretrained_input(params, model=model)  # the tagger or the base the inputs come from
    started = time.perf_counter()
    predictor = fit_predictor(
        name=model,
        settings=settings,
        seed=params["seed"],
        classes=genres,
        threads=params["train"]["threads"],
        train_items=[i for i, keep in zip(items, part["train"]) if keep],
        train_labels=labels[part["train"]],
        valid_items=[i for i, keep in zip(items, part["valid"]) if keep],
        valid_labels=labels[part["valid"]],
        embedding=pretrained,
    )
    seconds = time.perf_counter() - started
    meta = ModelMeta(
        model=model,
        family=settings["family"],
        input=predictor.input,
        protocol=protocol,
        classes=genres,
        params=settings,
        n_train_tracks=int(part["train"].sum()),
        seed=params["seed"],
        feature_columns=tables.feature_columns if settings["family"] != "deep" else [],
        embeddings=pretrained.config.as_dict() if pretrained is not None else None,
    )
    predictions = write_model_dir(
        target=target,
        predictor=predictor,
        meta=meta,
        split=split,
        items=items,
        export=ExportSettings.from_params(params),
    )
    return {
        "train_seconds": round(seconds, 1),
        "served_by": meta.served["format"],
        **track_accuracy(predictions, genres=genres),
    }


def write_model_dir(
    *, target: Path, predictor: TrainedModel, meta: ModelMeta, split: pd.DataFrame, items: list, export: ExportSettings
) -> pd.DataFrame:
    """Save model + meta, reload it as served, predict every track with it; all or nothing."""
    with atomic_dir(target) as tmp:
        meta.served = predictor.save(tmp, export=export)
        meta.write(tmp)
        proba = load_predictor(tmp).predict_proba(items)
        predictions = split[["track", "genre", "split"]].reset_index(drop=True)
        predictions[proba_columns(meta.classes)] = proba
        write_parquet(tmp / PREDICTIONS_FILE, predictions)
    return predictions


def track_accuracy(predictions: pd.DataFrame, *, genres: list[str]) -> dict[str, float]:
    """Share of tracks whose most probable genre is the true one, per split."""
    columns = proba_columns(genres)
    predicted = np.asarray(genres)[predictions[columns].to_numpy().argmax(axis=1)]
    correct = pd.Series(predicted == predictions["genre"].to_numpy(), index=predictions.index)
    return {f"{name}_accuracy": round(float(correct[predictions["split"] == name].mean()), 4) for name in SPLITS}


if __name__ == "__main__":
    run_stage(train)
