"""The pretrained musicnn tagger converted once for serving: TensorFlow in, an ONNX folder out.

The tagger's checkpoint (`musicnn/<tagger>/` with files `.meta`, `.index`, `.data-*`) is read from the
installed package, nothing is downloaded. Only the forward part of the checkpoint's graph is kept and
its variables are frozen to constants, so neither tf-keras nor `musicnn.extractor` is needed:
that extractor computes the log-mel in float16 (inf on most GTZAN tracks), repeats its first patch
for the intermediate layers and hides a failed restore behind a bare `except`.

`export_tagger` writes what `musicgenre.tagger` serves: the frozen graph as ONNX (tf2onnx), the mel
filter bank of the tagger's front end and its settings. TensorFlow is needed here (a training-time
dependency) and in the tests that compare the two runtimes, never when serving.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .io import atomic_dir
from .tagger import MEL_FILE, MODEL_FILE, SPEC_FILE, EmbeddingConfig
from .tf_runtime import tensorflow  # imports TensorFlow only when called

# the checkpoint files are named by an empty prefix inside the tagger's folder
META_FILE = ".meta"
VARIABLE_OPS = ("VariableV2", "Variable", "VarHandleOp")


def signal_settings() -> dict[str, int]:
    """The tagger's fixed front end (not a setting: the weights were trained on exactly this)."""
    from musicnn import configuration  # pure constants: importing it does not load TensorFlow

    return {
        "sample_rate": configuration.SR,
        "n_fft": configuration.FFT_SIZE,
        "hop_length": configuration.FFT_HOP,
        "n_mels": configuration.N_MELS,
    }


def patch_frames(config: EmbeddingConfig) -> int:
    """Frames per patch, computed as musicnn does (187 for 3 s)."""
    import librosa

    s = signal_settings()
    return (
        int(
            librosa.time_to_frames(
                config.patch_seconds, sr=s["sample_rate"], n_fft=s["n_fft"], hop_length=s["hop_length"]
            )
        )
        + 1
    )


def tagger_dir(name: str) -> Path:
    """The installed checkpoint folder; a clear error when the package or the tagger is missing."""
    try:
        import musicnn
    except ImportError as exc:
        raise FileNotFoundError("the musicnn package is not installed (pip install --no-deps musicnn)") from exc
    folder = Path(musicnn.__file__).parent / name
    if not (folder / META_FILE).is_file() or not (folder / ".index").is_file():
        raise FileNotFoundError(f"{folder}: no checkpoint (.meta/.index) for tagger {name!r}")
    return folder


def frozen_graph_def(config: EmbeddingConfig) -> Any:
    """The forward sub-graph up to `config.layer`, its variables replaced by the checkpoint's values and
    the training flag by a constant False. With the flag constant, TensorFlow's graph optimiser can
    prune the training branches (92 Switch / 14 Merge nodes) at run time: measured 27 % less time per
    patch, activations equal to the fed-flag graph's within 6e-6 (of values up to 4)."""
    tf = tensorflow()
    from tensorflow.core.protobuf import meta_graph_pb2
    from tensorflow.python.util import deprecation

    folder = tagger_dir(config.tagger)
    meta = meta_graph_pb2.MetaGraphDef()
    meta.ParseFromString((folder / META_FILE).read_bytes())
    # the training part (gradients, Adam) does not import in TF 2; the forward part does. The TF 1
    # helper is deprecated, not removed, and is exactly what this needs: its notice is silenced.
    with deprecation.silence():
        ends = [name.split(":")[0] for name in (config.layer, config.pooled_layer) if name]
        graph = tf.compat.v1.graph_util.extract_sub_graph(meta.graph_def, ends)
    reader = tf.compat.v1.train.NewCheckpointReader(str(folder) + os.sep)  # explicit prefix: `checkpoint` is stale
    for node in graph.node:
        node.device = ""
        node.attr.pop("_output_shapes", None)
        if node.op in VARIABLE_OPS:
            # KeyError names the variable if the checkpoint lacks it
            _make_constant(node, tf.make_tensor_proto(reader.get_tensor(node.name)))
        elif node.name == config.training_flag.split(":")[0]:
            _make_constant(node, tf.make_tensor_proto(False))
    return graph


def _make_constant(node: Any, value: Any) -> None:
    """Turn a graph node (variable or placeholder) into a Const holding the tensor proto `value`."""
    node.op = "Const"
    for key in list(node.attr):
        node.attr.pop(key)
    node.attr["dtype"].type = value.dtype
    node.attr["value"].tensor.CopyFrom(value)


def export_tagger(*, config: EmbeddingConfig, folder: Path, opset: int) -> dict[str, Any]:
    """Write the ONNX graph, the mel filter bank and the front-end spec into `folder`, all or nothing."""
    import librosa
    import tf2onnx

    front = signal_settings()
    spec = {
        **front,
        "patch_frames": patch_frames(config),
        "tagger": config.tagger,
        "input_name": _tensor_name(config.input_tensor),
        "output_name": _tensor_name(config.layer),
        "pooled_name": _tensor_name(config.pooled_layer) if config.pooled_layer else None,
        "opset": opset,
    }
    mel_basis = librosa.filters.mel(sr=front["sample_rate"], n_fft=front["n_fft"], n_mels=front["n_mels"])
    with atomic_dir(folder) as tmp:
        tf2onnx.convert.from_graph_def(
            frozen_graph_def(config),
            input_names=[spec["input_name"]],
            output_names=[name for name in (spec["output_name"], spec["pooled_name"]) if name],
            opset=opset,
            output_path=str(tmp / MODEL_FILE),
        )
        np.save(tmp / MEL_FILE, mel_basis.astype(np.float32))
        (tmp / SPEC_FILE).write_text(json.dumps(spec, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return spec


def _tensor_name(name: str) -> str:
    return name if ":" in name else f"{name}:0"


def tensorflow_activations(batch: np.ndarray, *, config: EmbeddingConfig, layer: str | None = None) -> np.ndarray:
    """The same layer (`config.layer` unless `layer` is given) computed by TensorFlow on the frozen graph:
    the reference the ONNX export is checked against (tests, export stage)."""
    tf = tensorflow()
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(frozen_graph_def(config), name="")
    with tf.compat.v1.Session(graph=graph) as session:
        return session.run(
            graph.get_tensor_by_name(_tensor_name(layer or config.layer)),
            feed_dict={graph.get_tensor_by_name(_tensor_name(config.input_tensor)): batch},
        )
