"""Stage export_tagger: the pretrained musicnn tagger converted once to ONNX (paths.tagger_dir).

TensorFlow runs here and nowhere on the serving path: the embed stage, `predict`, the scoring service
and monitoring all run the exported graph on ONNX Runtime. Before the folder is published, the ONNX
activations are checked against TensorFlow's on a fixed batch of patches (embeddings.onnx_rtol).
"""

from __future__ import annotations

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
    """Convert, then verify the published folder against TensorFlow; a mismatch fails the stage."""
    config, settings = EmbeddingConfig.from_params(params), params["embeddings"]
    folder = resolve(params["paths"]["tagger_dir"])
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
