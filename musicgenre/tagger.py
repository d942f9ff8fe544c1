"""The pretrained musicnn tagger as it serves: an ONNX graph on ONNX Runtime, a numpy front end.

`stages.export_tagger` converts the tagger once (TensorFlow, tf2onnx) into a folder holding
`tagger.onnx` (the forward graph up to the embedding layer; its outputs are that layer and, when
exported, the mid-end's temporal mean/max pools), `mel_basis.npy` (the tagger's mel filter
bank) and `tagger.json` (its front end and tensor names). Everything here reads that folder only:
neither TensorFlow nor librosa is imported, so a transfer model starts in a fraction of a second.

Per track: float32 log-mel exactly as the tagger was trained on (power STFT of a periodic Hann
window, centred with zero padding like librosa's, the mel bank, log10(C * mel + 1)); whole
non-overlapping 3-s patches; at most `max_patches` of them, the centres of equal parts of the
track, so the cost of a clip is bounded whatever its length; the layer's activations pooled over
the chosen patches into [mean, max] (the embedding), and the same for the pooled layer (`pooled`).
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from .blas import single_blas_thread

MODEL_FILE = "tagger.onnx"
MEL_FILE = "mel_basis.npy"
SPEC_FILE = "tagger.json"
TAGGER_FILES = (MODEL_FILE, MEL_FILE, SPEC_FILE)


class ModelFileError(RuntimeError):
    """A model file (ONNX graph, mel bank, spec) is missing or unreadable; the message names the file."""


@dataclass(frozen=True)
class EmbeddingConfig:
    """params.embeddings: which tagger, which layer, how a track becomes patches."""

    tagger: str  # folder of the musicnn package: MSD_musicnn, MTT_musicnn
    input_tensor: str  # the spectrogram placeholder (patches, frames, mel bands)
    training_flag: str  # the is_training placeholder, frozen to False (batch-norm moving stats, no dropout)
    layer: str  # tensor whose activations are pooled into the embedding
    patch_seconds: float  # the tagger's input length
    log_compression: float  # C in log10(C * mel + 1), as the tagger's training pre-processing
    max_patches: int | None  # patches per track, spread evenly; None = every whole patch
    batch_patches: int  # patches per ONNX Runtime call (bounds memory on long files)
    # a second output: the mid-end's temporal mean+max pools (what the penultimate layer reads); None = none
    pooled_layer: str | None = None
    # keep `layer` per patch instead of pooling [mean, max] over the track (the deep models' pretrained base)
    per_patch: bool = False
    # intra-op threads, 0 = one per core: how to run, not what is computed (not compared)
    threads: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        if self.max_patches is not None and self.max_patches < 1:
            raise ValueError(f"embeddings.max_patches must be >= 1 or null, not {self.max_patches}")
        if self.batch_patches < 1 or self.patch_seconds <= 0 or self.log_compression <= 0:
            raise ValueError("embeddings: batch_patches, patch_seconds and log_compression must be positive")

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "EmbeddingConfig":
        section = params["embeddings"]
        return cls(**{f.name: section[f.name] for f in fields(cls) if f.name in section})

    @classmethod
    def base_from_params(cls, params: dict[str, Any]) -> "EmbeddingConfig":
        """params.embeddings.base: the deep models' pretrained convolutional base, on the same patches as
        the tagger (its front end is musicnn's too), kept per patch."""
        return replace(cls.from_params(params), **params["embeddings"]["base"])

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FrontEnd:
    """The tagger's fixed input pipeline (tagger.json): the weights were trained on exactly this."""

    sample_rate: int
    n_fft: int
    hop_length: int
    n_mels: int
    patch_frames: int
    input_name: str
    output_name: str
    pooled_name: str | None = None  # exported without the pooled output (an older folder): None


def read_front_end(folder: Path) -> FrontEnd:
    path = Path(folder) / SPEC_FILE
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
        return FrontEnd(**{f.name: spec[f.name] for f in fields(FrontEnd) if f.name in spec or f.default is not None})
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelFileError(f"{path}: not a readable tagger spec ({exc})") from None


def stft_frames(y: np.ndarray, *, n_fft: int, hop_length: int) -> np.ndarray:
    """(frames, n_fft) view of the signal framed as librosa frames it: centred, zero padding."""
    padded = np.pad(np.asarray(y, dtype=np.float32), n_fft // 2)
    count = 1 + (len(padded) - n_fft) // hop_length
    step = padded.strides[0]
    return np.lib.stride_tricks.as_strided(padded, shape=(count, n_fft), strides=(step * hop_length, step))


def power_spectrogram(y: np.ndarray, *, n_fft: int, hop_length: int, frames: np.ndarray | None = None) -> np.ndarray:
    """(frames, 1 + n_fft // 2) |STFT|^2 as librosa computes it (periodic Hann window); only the frames
    `frames` indexes when given, the same rows a full spectrogram would have."""
    framed = stft_frames(y, n_fft=n_fft, hop_length=hop_length)
    if frames is not None:
        framed = framed[frames]
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)
    spectrum = np.fft.rfft(framed * window, axis=1).astype(np.complex64)
    return (spectrum.real**2 + spectrum.imag**2).astype(np.float32)


def patch_indices(*, available: int, max_patches: int | None) -> np.ndarray:
    """Which whole patches are used: all, or `max_patches` centres of equal parts of the track."""
    if max_patches is None or available <= max_patches:
        return np.arange(available)
    return np.floor((np.arange(max_patches) + 0.5) * available / max_patches).astype(int)


class Tagger:
    """One ONNX Runtime session over an exported tagger folder; `embed(y)` for a signal at its rate."""

    def __init__(self, folder: str | os.PathLike, *, config: EmbeddingConfig):
        self.folder, self.config = Path(folder), config
        self.front = read_front_end(self.folder)
        self.mel_basis = _read_mel_basis(self.folder / MEL_FILE)
        self.mel_matrix = np.ascontiguousarray(self.mel_basis.T)  # (bins, mels): power rows @ it
        self.session = onnx_session(self.folder / MODEL_FILE, threads=config.threads)

    @property
    def sample_rate(self) -> int:
        return self.front.sample_rate

    def patches(self, y: np.ndarray) -> np.ndarray:
        """(patches, frames, n_mels) float32 log-mel patches of the signal, the chosen ones only (only
        their STFT frames are computed)."""
        f = self.front
        available = len(stft_frames(y, n_fft=f.n_fft, hop_length=f.hop_length)) // f.patch_frames
        if available == 0:
            raise ValueError(f"audio shorter than one {f.patch_frames}-frame patch of the tagger")
        chosen = patch_indices(available=available, max_patches=self.config.max_patches)
        frames = (chosen[:, None] * f.patch_frames + np.arange(f.patch_frames)).ravel()
        power = power_spectrogram(y, n_fft=f.n_fft, hop_length=f.hop_length, frames=frames)
        # one BLAS thread: idle OpenBLAS threads spin after a product and would slow the network that
        # follows on the same cores (measured: warm predict 175 -> 125 ms with a single BLAS thread)
        with single_blas_thread():
            mel = (power @ self.mel_matrix).reshape(len(chosen), f.patch_frames, -1)
        return np.log10(self.config.log_compression * mel + 1.0, dtype=np.float32)

    @property
    def outputs(self) -> list[str]:
        """The embedding layer, then the pooled layer when the folder exports it (one network pass)."""
        return [self.front.output_name] + ([self.front.pooled_name] if self.front.pooled_name else [])

    def layer_activations(self, batch: np.ndarray) -> list[np.ndarray]:
        """Per exported output, its (patches, units) activations, `batch_patches` patches at a time."""
        step = self.config.batch_patches
        runs = [
            self.session.run(self.outputs, {self.front.input_name: batch[start : start + step]})
            for start in range(0, len(batch), step)
        ]
        return [np.concatenate([run[i] for run in runs]).reshape(len(batch), -1) for i in range(len(self.outputs))]

    def activations(self, batch: np.ndarray) -> np.ndarray:
        """(patches, units) activations of the embedding layer."""
        return self.layer_activations(batch)[0]

    def embed_layers(self, y: np.ndarray) -> list[np.ndarray]:
        """Per exported output, [mean, max] over the chosen patches (float64, 2 * units): the embedding,
        then the pooled layer's when exported."""
        vectors = []
        for activations in self.layer_activations(self.patches(y)):
            activations = activations.astype(np.float64)
            vectors.append(np.concatenate([activations.mean(axis=0), activations.max(axis=0)]))
        if not all(np.isfinite(vector).all() for vector in vectors):
            raise ValueError("the tagger produced non-finite activations")
        return vectors

    def patch_activations(self, y: np.ndarray) -> np.ndarray:
        """(patches, units) float32 activations of the embedding layer for each chosen patch, unpooled."""
        activations = self.activations(self.patches(y))
        if not np.isfinite(activations).all():
            raise ValueError("the pretrained network produced non-finite activations")
        return activations

    def embed(self, y: np.ndarray) -> np.ndarray:
        """[mean, max] over the chosen patches of the embedding layer's activations (float64, 2 * units)."""
        return self.embed_layers(y)[0]


def _read_mel_basis(path: Path) -> np.ndarray:
    try:
        return np.ascontiguousarray(np.load(path, allow_pickle=False), dtype=np.float32)
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{path}: cannot read the tagger's mel filter bank ({exc})") from None


def onnx_session(path: Path, *, threads: int = 0) -> Any:
    """An ONNX Runtime CPU session with full graph optimisation; a clear error naming a bad file."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 4  # failures reach the caller as exceptions; warnings are not the user's concern
    if not Path(path).is_file():
        raise ModelFileError(f"{path}: ONNX model file missing")
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for every kind of bad file
        raise ModelFileError(f"{path}: not a loadable ONNX model ({str(exc).splitlines()[0][:200]})") from None


@dataclass(frozen=True)
class TaggerRef:
    """An exported tagger folder and how to run it: picklable, so each batch worker builds its own session."""

    folder: str
    config: EmbeddingConfig

    def load(self) -> "Tagger":
        return cached_tagger(self.folder, self.config)

    def single_threaded(self) -> "TaggerRef":
        """For worker processes that already use every core between them."""
        return TaggerRef(self.folder, replace(self.config, threads=1))


@functools.lru_cache(maxsize=4)
def cached_tagger(folder: str, config: EmbeddingConfig) -> Tagger:
    """One tagger per process, folder and config (worker processes of a batch each build their own)."""
    return Tagger(folder, config=config)


EMBEDDING_PREFIX, POOLED_PREFIX, BASE_PREFIX = "emb_", "pool_", "base_"


def embedding_columns(size: int, *, prefix: str = EMBEDDING_PREFIX) -> list[str]:
    """Column names of an embedding of `size` values: the mean half, then the max half."""
    half = size // 2
    return [f"{prefix}mean_{i:04d}" for i in range(half)] + [f"{prefix}max_{i:04d}" for i in range(half)]
