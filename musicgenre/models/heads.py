"""The classifier head of a classic or transfer model: a scikit-learn pipeline on feature rows.

Saved twice: `model.skops` (the fitted pipeline, for inspection and as the fallback) and, when
skl2onnx converts it and the converted graph reproduces the pipeline's probabilities on the training
rows within `train.onnx.atol`, `head.onnx`. Serving prefers the ONNX head: it needs neither scikit-learn nor
skops (about a second of imports), which is most of a cold `predict`. Converters do not cover every
estimator (HistGradientBoosting, XGBoost) nor reproduce every one (distance-weighted bagged KNN):
those serve from the skops file, and meta.json says which.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from .predictor import ExportSettings

SKOPS_FILE = "model.skops"
ONNX_FILE = "head.onnx"
# skops refuses unknown types on load; only these libraries' types may be in our own model files
TRUSTED_PREFIXES = ("sklearn.", "xgboost.", "numpy.", "scipy.", "builtins.")
HeadFunction = Callable[[np.ndarray], np.ndarray]


def save_head(*, pipeline: Any, rows: np.ndarray, directory: Path, export: ExportSettings) -> dict[str, Any]:
    """Write the skops file and, if it reproduces the pipeline, the ONNX head; returns ModelMeta.served."""
    import skops.io as sio

    sio.dump(pipeline, Path(directory) / SKOPS_FILE)
    served = {"classes": [int(c) for c in pipeline.classes_], "skops": SKOPS_FILE}
    reason = _export_onnx(pipeline=pipeline, rows=rows, target=Path(directory) / ONNX_FILE, export=export)
    return (
        {**served, "format": "skops", "onnx_refused": reason}
        if reason
        else {**served, "format": "onnx", "onnx": ONNX_FILE}
    )


def _export_onnx(*, pipeline: Any, rows: np.ndarray, target: Path, export: ExportSettings) -> str:
    """'' when the ONNX head was written and checked, else why it was not."""
    try:  # skl2onnx and ONNX Runtime raise many types for graphs they cannot build or run
        from skl2onnx import to_onnx

        graph = to_onnx(pipeline, rows[:1].astype(np.float64), options={"zipmap": False}, target_opset=export.opset)
        target.write_bytes(graph.SerializeToString())
        error = float(np.abs(onnx_head(target)(rows) - pipeline.predict_proba(rows)).max())
    except Exception as exc:
        target.unlink(missing_ok=True)
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    if error > export.atol:
        target.unlink()
        return f"converted graph differs from the pipeline by {error:.2e} (> {export.atol})"
    return ""


def onnx_head(path: Path) -> HeadFunction:
    """Probabilities of float64 rows from an skl2onnx graph (outputs: label, probabilities)."""
    from ..tagger import onnx_session

    session = onnx_session(path, threads=1)
    name = session.get_inputs()[0].name
    return lambda rows: session.run(["probabilities"], {name: np.asarray(rows, np.float64)})[0]


def skops_head(path: Path) -> HeadFunction:
    """predict_proba of the saved pipeline, loading only trusted library types."""
    import skops.io as sio

    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file missing")
    untrusted = sio.get_untrusted_types(file=path)
    foreign = [name for name in untrusted if not name.startswith(TRUSTED_PREFIXES)]
    if foreign:
        raise ValueError(f"{path} holds types outside sklearn/xgboost/numpy: {foreign}")
    return sio.load(path, trusted=untrusted).predict_proba


def load_head(*, directory: Path, served: dict[str, Any]) -> HeadFunction:
    """The head a model folder serves with (ModelMeta.served)."""
    if served.get("format") == "onnx":
        return onnx_head(Path(directory) / served["onnx"])
    return skops_head(Path(directory) / served["skops"])
