"""Models-from-code entry point of a registered version: MLflow copies this file into the version and
runs it to build the pyfunc. It imports nothing of the installed project: it opens the version's
bundle with the loader the bundle carries, so the version runs the code it was registered with.

pyfunc: DataFrame[path] -> path, proba_<genre> x 10, genre (top-1), error (empty when ok).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

LOADER = Path("code") / "musicgenre" / "serving" / "loader.py"


class GenreClassifier(PythonModel):
    def load_context(self, context: Any) -> None:
        bundle = Path(context.artifacts["bundle"])
        spec = importlib.util.spec_from_file_location(f"_bundle_loader_{id(self)}", bundle / LOADER)
        if spec is None or spec.loader is None:
            raise ImportError(f"{bundle / LOADER}: the bundle's loader cannot be imported")
        loader = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(loader)
        self.model = loader.open_bundle(bundle)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        paths = [str(path) for path in model_input["path"]]
        proba, errors = self.model.predict_paths(paths)
        classes = self.model.classes
        out = pd.DataFrame(proba, columns=self.model.proba_columns)
        out.insert(0, "path", paths)
        out["genre"] = [None if error else classes[int(np.argmax(row))] for row, error in zip(proba, errors)]
        out["error"] = errors
        return out


mlflow.models.set_model(GenreClassifier())
