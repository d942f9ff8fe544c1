"""Stage export_tagger: the pretrained networks of the musicnn wheel converted once to ONNX: the MSD_musicnn
tagger (paths.tagger_dir, the transfer models' embeddings) and the MSD_vgg base (paths.base_dir, the deep
models' frozen convolutional layers).

TensorFlow runs here and nowhere on the serving path: the embed stages, `predict`, the scoring service
and monitoring all run the exported graphs on ONNX Runtime. Before a folder is published, its ONNX
activations are checked against TensorFlow's on a fixed batch of patches (embeddings.onnx_rtol).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from musicgenre.config import resolve
from musicgenre.tagger import EmbeddingConfig, Tagger, read_front_end
from musicgenre.tagger_export import export_tagger, tensorflow_activations
from stages._cli import StageError, run_stage


def check_batch(*, frames: int, n_mels: int, seed: int, patches: int) -> np.ndarray:
    """Log-mel-like patches (log10(C * mel + 1) of a power spectrum spans about 0..6)."""
    return np.random.default_rng(seed).gamma(2.0, 1.0, size=(patches, frames, n_mels)).astype(np.float32)


def relative_difference(onnx: np.ndarray, reference: np.ndarray) -> float:
    """max |onnx - tensorflow| over max |tensorflow|: the export's error on the scale of the layer."""
    return float(np.abs(onnx - reference).max() / np.abs(reference).max())


def export_tagger_stage(params: dict[str, Any]) -> dict[str, Any]:
    """Convert the tagger and the deep models' base, each verified against TensorFlow."""
    paths = params["paths"]
    return {
        "tagger": export_checked(
            params, config=EmbeddingConfig.from_params(params), folder=resolve(paths["tagger_dir"])
        ),
        "base": export_checked(
            params, config=EmbeddingConfig.base_from_params(params), folder=resolve(paths["base_dir"])
        ),
    }


def export_checked(params: dict[str, Any], *, config: EmbeddingConfig, folder: Path) -> dict[str, Any]:
    """Convert, then verify the published folder against TensorFlow; a mismatch fails the stage."""
    settings = params["embeddings"]
    export_tagger(config=config, folder=folder, opset=settings["onnx_opset"])
    front = read_front_end(folder)
    batch = check_batch(
        frames=front.patch_frames, n_mels=front.n_mels, seed=params["seed"], patches=settings["check_patches"]
    )
    layers = [config.layer] + ([config.pooled_layer] if config.pooled_layer else [])
    onnx_outputs = Tagger(folder, config=config).layer_activations(batch)
    # every exported output: the embedding layer and the pooled layer
    error = max(
        relative_difference(onnx, tensorflow_activations(batch, config=config, layer=layer).reshape(onnx.shape))
        for onnx, layer in zip(onnx_outputs, layers)
    )
    if error > settings["onnx_rtol"]:
        raise StageError(
            f"ONNX activations differ from TensorFlow's by {error:.2e} of their range "
            f"(> embeddings.onnx_rtol {settings['onnx_rtol']}); {folder} is not usable"
        )
    return {"tagger": config.tagger, "folder": str(folder), "onnx_vs_tensorflow": f"{error:.1e}"}


if __name__ == "__main__":
    run_stage(export_tagger_stage)
