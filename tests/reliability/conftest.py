"""Reliability fixtures: the bad-input corpus in a batch folder, and a temp MLflow registry with a
real champion (a small model trained on the pipeline's real features)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers import write_model
from tests.reliability import corpus
from tests.workspace import local_registry


@pytest.fixture(scope="session")
def batch(params, gtzan_slice, tmp_path_factory) -> dict:
    """folder: the corpus + two untouched real tracks + two links leaving the folder;
    files: case name -> path; outside: the real file the links point at."""
    root = tmp_path_factory.mktemp("reliability")
    folder = root / "batch folder ü"
    files = corpus.build(folder, source=gtzan_slice["abs_path"].iloc[0], limits=params["limits"])
    for path in gtzan_slice["abs_path"].iloc[[3, 6]]:
        files[f"real_{path.stem}"] = Path(shutil.copy2(path, folder / path.name))
    outside = Path(shutil.copy2(gtzan_slice["abs_path"].iloc[9], root / "secret outside.flac"))
    files.update(corpus.add_outside_link(folder, outside=outside))
    return {"folder": folder, "files": files, "outside": outside, "root": root}


@pytest.fixture(scope="session")
def registry(params, pipeline_artifacts, tmp_path_factory):
    """A temp sqlite registry whose champion is a real small model (never the project's mlflow.db)."""
    from musicgenre.models.data import load_tables
    from musicgenre.registry import register

    root = tmp_path_factory.mktemp("registry")
    uri, local = local_registry(params, root)
    model_dir, scores = write_model(
        params=local, tables=load_tables(params=local), root=root / "models", name="lr", shuffle_labels=False
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        record = register(model_dir=model_dir, scores=scores, params=local)
        yield {"uri": uri, "params": local, "record": record, "root": root}
