"""The naive extractor: one direct librosa call per feature and per signal, as tutorials do.

It is the ground truth that the one-STFT extractor in `features.py` is tested and benchmarked
against; each call recomputes its own STFT (and segments are cut from the audio). Tempo uses the
onset envelope librosa.feature.tempo(y=...) would compute, with the configured n_fft and n_mels."""

from __future__ import annotations

import librosa
import numpy as np
from scipy import stats

from .features import FeatureConfig


def naive_vector(y: np.ndarray, *, config: FeatureConfig) -> np.ndarray:
    """The feature vector of one signal, in `feature_names` order, from direct librosa calls."""
    sr, n_fft, hop = config.sample_rate, config.n_fft, config.hop_length
    chroma = librosa.feature.chroma_stft(y=y, sr=sr, n_fft=n_fft, hop_length=hop, tuning=config.chroma_tuning)
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=config.n_mfcc, n_fft=n_fft, hop_length=hop, n_mels=config.n_mels)
    contrast = librosa.feature.spectral_contrast(
        y=y, sr=sr, n_fft=n_fft, hop_length=hop, n_bands=config.n_contrast_bands
    )
    rows = {
        "centroid": librosa.feature.spectral_centroid(y=y, sr=sr, n_fft=n_fft, hop_length=hop)[0],
        "rolloff": librosa.feature.spectral_rolloff(y=y, sr=sr, n_fft=n_fft, hop_length=hop)[0],
        "zcr": librosa.feature.zero_crossing_rate(y, frame_length=n_fft, hop_length=hop)[0],
    }
    onset = librosa.onset.onset_strength(y=y, sr=sr, n_fft=n_fft, hop_length=hop, n_mels=config.n_mels)
    tempo = librosa.feature.tempo(onset_envelope=onset, sr=sr, hop_length=hop)
    parts = [np.atleast_1d(tempo)[:1]]
    for matrix in (chroma, mfcc, contrast):
        parts += [matrix.mean(axis=1), matrix.std(axis=1)]
    for row in rows.values():
        parts.append(np.array([row.mean(), row.std(), stats.skew(row) if row.std() > 0 else 0.0]))
    return np.concatenate(parts)


def naive_log_mel(y: np.ndarray, *, config: FeatureConfig) -> np.ndarray:
    mel = librosa.feature.melspectrogram(
        y=y, sr=config.sample_rate, n_fft=config.n_fft, hop_length=config.hop_length, n_mels=config.n_mels
    )
    return librosa.power_to_db(mel)


def naive_extract(y: np.ndarray, *, config: FeatureConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Track vector, segment vectors and log-mel segments, each segment cut from the audio.

    Segments are cut as `features.extract` defines them: consecutive, `config.segment_samples`
    (a whole number of hops) long, a partial last one dropped."""
    size = config.segment_samples
    segments = [y[start : start + size] for start in range(0, len(y) - size + 1, size)]
    track_vector = naive_vector(y, config=config)
    if not segments:
        return (
            track_vector,
            np.empty((0, len(track_vector))),
            np.empty((0, config.n_mels, config.segment_frames), dtype=np.float32),
        )
    segment_vectors = np.stack([naive_vector(s, config=config) for s in segments])
    log_mels = np.stack([naive_log_mel(s, config=config)[:, : config.segment_frames] for s in segments])
    return track_vector, segment_vectors, log_mels
