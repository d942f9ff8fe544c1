"""Stage train_transfer: the train stage for params.models.transfer_names.

Same function, output contract and CLI as stages.train; it is a separate dvc.yaml stage only so that
these models (and not the others) depend on the tagger embeddings of the embed stage.
"""

from __future__ import annotations

from typing import Any

from stages._cli import StageError, run_stage
from stages.train import train


def train_transfer(params: dict[str, Any], *, model: str) -> dict[str, Any]:
    """Train one transfer model under every protocol (see stages.train.train)."""
    if model not in params["models"].get("transfer_names", []):
        raise StageError(f"{model!r} is not in params.models.transfer_names")
    return train(params, model=model)


if __name__ == "__main__":
    run_stage(train_transfer)
