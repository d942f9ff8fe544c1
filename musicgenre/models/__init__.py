"""Genre models behind one Predictor interface: classic sklearn/XGBoost pipelines, Keras networks and
transfer models on the pretrained tagger's embeddings.

`fit_predictor` trains any model named in params.models through the family table below (transfer
models also get the exported tagger, since their inputs come from it); `load_predictor` reads a saved
model directory for serving (musicgenre.models.served).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..extraction import TrackFeatures
from ..tagger import TaggerRef
from .predictor import Predictor, TrainedModel
from .served import load_predictor

__all__ = ["Predictor", "TrainedModel", "fit_predictor", "load_predictor", "model_names"]


def model_names(params: dict[str, Any]) -> list[str]:
    """Every trainable model: params.models.names (dvc.yaml `train`) and models.transfer_names
    (dvc.yaml `train_transfer`, whose stages also depend on the tagger embeddings)."""
    return [*params["models"]["names"], *params["models"].get("transfer_names", [])]


def _fit_classic(**inputs: Any) -> TrainedModel:
    from .classic import fit_classic

    return fit_classic(**{k: v for k, v in inputs.items() if k not in ("valid_items", "valid_labels", "embedding")})


def _fit_deep(**inputs: Any) -> TrainedModel:
    if inputs["settings"].get("input") == "patches":  # on the pretrained base's patches
        from .patch_nets import fit_patch_network  # TensorFlow is imported only for deep models

        return fit_patch_network(**{k: v for k, v in inputs.items() if k not in ("valid_items", "valid_labels")})
    from .deep import fit_deep

    return fit_deep(**{k: v for k, v in inputs.items() if k != "embedding"})


def _fit_transfer(**inputs: Any) -> TrainedModel:
    if inputs["embedding"] is None:
        raise ValueError(f"model {inputs['name']!r}: a transfer model needs the tagger it embeds with")
    from .transfer import fit_transfer

    return fit_transfer(**{k: v for k, v in inputs.items() if k not in ("valid_items", "valid_labels")})


# family -> trainer; each imports its framework only when a model of that family is fitted
TRAINERS: dict[str, Callable[..., TrainedModel]] = {
    "classic": _fit_classic,
    "deep": _fit_deep,
    "transfer": _fit_transfer,
}


def fit_predictor(
    *,
    name: str,
    settings: dict[str, Any],
    seed: int,
    classes: list[str],
    threads: int,
    train_items: list[TrackFeatures],
    train_labels: np.ndarray,
    valid_items: list[TrackFeatures],
    valid_labels: np.ndarray,
    embedding: TaggerRef | None = None,
) -> TrainedModel:
    """Fit the model `name` configured by `settings` (its params.models section); labels index `classes`.
    Deep models early-stop on the valid items; the others ignore them."""
    if settings["family"] not in TRAINERS:
        raise ValueError(f"model {name!r}: unknown family {settings['family']!r} ({', '.join(TRAINERS)})")
    return TRAINERS[settings["family"]](
        name=name,
        settings=settings,
        seed=seed,
        classes=classes,
        threads=threads,
        train_items=train_items,
        train_labels=train_labels,
        valid_items=valid_items,
        valid_labels=valid_labels,
        embedding=embedding,
    )
