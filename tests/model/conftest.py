"""The model tests' shared temporary MLflow registry (session scope: built once for all model tests)."""

from __future__ import annotations

import pytest

from musicgenre.models.data import load_tables, protocol_split, track_features
from musicgenre.registry import register
from musicgenre.splits import SPLITS
from tests.helpers import train_and_register, write_model
from tests.workspace import local_registry


@pytest.fixture(scope="session")
def grouped(params, pipeline_artifacts):
    """The real grouped split as train / valid / test / held_out (valid + test) pairs of
    (TrackFeatures list, genre-index labels), plus the tables they come from."""
    tables = load_tables(params=params, patches=True)
    split = protocol_split(tables=tables, protocol="grouped")
    items = track_features(tables=tables, tracks=split["track"])
    labels = split["genre"].map(params["genres"].index).to_numpy()
    masks = {name: (split["split"] == name).to_numpy() for name in SPLITS}
    masks["held_out"] = ~masks["train"]
    pairs = {name: ([item for item, keep in zip(items, mask) if keep], labels[mask]) for name, mask in masks.items()}
    return {**pairs, "tables": tables}


@pytest.fixture(scope="session")
def registry(params, pipeline_artifacts, tmp_path_factory):
    """A temp registry where a near-chance model, then a real one, then the near-chance again are registered
    (each with its grouped-CV fold scores on the same folds and its calibration)."""
    root = tmp_path_factory.mktemp("registry")
    uri, local = local_registry(params, root)
    tables = load_tables(params=local)
    bad_dir, bad = write_model(params=local, tables=tables, root=root / "models", name="chance", shuffle_labels=True)
    good_dir, good = write_model(params=local, tables=tables, root=root / "models", name="lr", shuffle_labels=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)  # never the project's own mlflow.db
        records = [
            register(model_dir=d, scores=s, params=local, calibration=s["calibration"])
            for d, s in ((bad_dir, bad), (good_dir, good), (bad_dir, bad))
        ]
        yield {
            "uri": uri,
            "good_dir": good_dir,
            "params": local,
            "records": records,
            "scores": {"chance": bad, "lr": good},
            "report_dir": root / "reports",
        }


@pytest.fixture(scope="session")
def transfer_champion(params, pipeline_artifacts, tmp_path_factory):
    """transfer_logreg trained by the train stage on the real embeddings and registered as champion."""
    return train_and_register(params=params, root=tmp_path_factory.mktemp("transfer"), model="transfer_logreg")
