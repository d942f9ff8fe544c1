"""The seed feature set from one STFT per track: track-level and per-segment aggregates plus log-mel.

Every frame-level feature is computed once on the whole track; segment features aggregate the
frames of each segment, so one STFT serves the track, its segments and the deep models' log-mel.
"""
from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from typing import Any

import librosa
import numpy as np
from scipy import stats

STATS = ("mean", "std", "skew")


@dataclass(frozen=True)
class FeatureConfig:
    sample_rate: int
    n_fft: int
    hop_length: int
    n_mels: int
    n_mfcc: int
    n_contrast_bands: int
    segment_seconds: float
    chroma_tuning: float | None = 0.0

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "FeatureConfig":
        section = params["features"]
        return cls(**{name: section[name] for name in cls.__dataclass_fields__ if name in section})

    @property
    def segment_samples(self) -> int:
        return int(round(self.segment_seconds * self.sample_rate))

    @property
    def segment_frames(self) -> int:
        return int(round(self.segment_samples / self.hop_length))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FrameFeatures:
    """Frame-level matrices (rows = coefficients, columns = frames) of one track."""
    matrices: dict[str, np.ndarray]
    onset_envelope: np.ndarray
    log_mel: np.ndarray


def feature_names(config: FeatureConfig) -> list[str]:
    """Column names of the aggregated feature vector, in order."""
    names = ["tempo"]
    for stat in ("mean", "std"):
        names += [f"chroma_{stat}_{i:02d}" for i in range(12)]
    for stat in ("mean", "std"):
        names += [f"mfcc_{stat}_{i:02d}" for i in range(1, config.n_mfcc + 1)]
    for stat in ("mean", "std"):
        names += [f"contrast_{stat}_{i}" for i in range(config.n_contrast_bands + 1)]
    for name in ("centroid", "rolloff", "zcr"):
        names += [f"{name}_{stat}" for stat in STATS]
    return names


def frame_features(y: np.ndarray, *, config: FeatureConfig) -> FrameFeatures:
    """All frame-level features of a mono signal from a single STFT."""
    _check_signal(y, config)
    magnitude = np.abs(librosa.stft(y, n_fft=config.n_fft, hop_length=config.hop_length))
    power = magnitude**2
    mel_power = _mel_basis(config) @ power
    log_mel = librosa.power_to_db(mel_power)
    sr, hop = config.sample_rate, config.hop_length
    matrices = {
        "chroma": librosa.feature.chroma_stft(S=power, sr=sr, n_fft=config.n_fft, hop_length=hop,
                                              tuning=config.chroma_tuning),
        "mfcc": librosa.feature.mfcc(S=log_mel, n_mfcc=config.n_mfcc),
        "contrast": librosa.feature.spectral_contrast(S=magnitude, sr=sr, n_fft=config.n_fft,
                                                      hop_length=hop, n_bands=config.n_contrast_bands),
        "centroid": librosa.feature.spectral_centroid(S=magnitude, sr=sr, n_fft=config.n_fft),
        "rolloff": librosa.feature.spectral_rolloff(S=magnitude, sr=sr, n_fft=config.n_fft),
        "zcr": librosa.feature.zero_crossing_rate(y, frame_length=config.n_fft, hop_length=hop),
    }
    onset_envelope = librosa.onset.onset_strength(S=log_mel, sr=sr, hop_length=hop)
    return FrameFeatures(matrices=matrices, onset_envelope=onset_envelope, log_mel=log_mel)


def aggregate(frames: FrameFeatures, start: int, stop: int, *, config: FeatureConfig) -> np.ndarray:
    """The feature vector (order of `feature_names`) of the frames [start, stop)."""
    window = {name: matrix[:, start:stop] for name, matrix in frames.matrices.items()}
    tempo = librosa.feature.tempo(onset_envelope=frames.onset_envelope[start:stop], sr=config.sample_rate,
                                  hop_length=config.hop_length)
    parts = [np.atleast_1d(tempo)[:1]]
    for name in ("chroma", "mfcc", "contrast"):
        parts += [window[name].mean(axis=1), window[name].std(axis=1)]
    for name in ("centroid", "rolloff", "zcr"):
        row = window[name][0]
        parts.append(np.array([row.mean(), row.std(), _skew(row)]))
    return np.concatenate(parts).astype(np.float64)


def segment_bounds(n_samples: int, *, config: FeatureConfig) -> list[tuple[int, int]]:
    """Frame ranges of the whole segments of a signal of n_samples (a partial last one is dropped)."""
    n_segments = n_samples // config.segment_samples
    starts = [int(round(i * config.segment_samples / config.hop_length)) for i in range(n_segments)]
    return [(start, start + config.segment_frames) for start in starts]


def extract(y: np.ndarray, *, config: FeatureConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Track vector (n_features,), segment vectors (n_segments, n_features) and
    log-mel segments (n_segments, n_mels, segment_frames) of one mono signal."""
    frames = frame_features(y, config=config)
    n_frames = frames.log_mel.shape[1]
    track_vector = aggregate(frames, 0, n_frames, config=config)
    bounds = [(a, b) for a, b in segment_bounds(len(y), config=config) if b <= n_frames]
    segment_vectors = np.stack([aggregate(frames, a, b, config=config) for a, b in bounds]) if bounds \
        else np.empty((0, len(track_vector)))
    log_mels = np.stack([frames.log_mel[:, a:b] for a, b in bounds]) if bounds \
        else np.empty((0, config.n_mels, config.segment_frames), dtype=np.float32)
    return track_vector, segment_vectors, log_mels.astype(np.float32)


@functools.lru_cache(maxsize=8)
def _mel_basis(config: FeatureConfig) -> np.ndarray:
    return librosa.filters.mel(sr=config.sample_rate, n_fft=config.n_fft, n_mels=config.n_mels)


def _skew(row: np.ndarray) -> float:
    # a constant row (e.g. silence) has no skew; report 0 instead of NaN
    return float(stats.skew(row)) if row.std() > 0 else 0.0


def _check_signal(y: np.ndarray, config: FeatureConfig) -> None:
    if y.ndim != 1:
        raise ValueError(f"expected a mono signal (1-D), got shape {y.shape}")
    if len(y) < config.n_fft:
        raise ValueError(f"signal of {len(y)} samples is shorter than one frame ({config.n_fft})")
    if not np.isfinite(y).all():
        raise ValueError("signal contains NaN or infinite samples")
