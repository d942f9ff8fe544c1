"""Audio I/O: probe headers, decode, downmix and resample, with errors that name the file."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .errors import GenreError

_BIT_DEPTH = {
    "PCM_S8": 8,
    "PCM_U8": 8,
    "PCM_16": 16,
    "PCM_24": 24,
    "PCM_32": 32,
    "FLOAT": 32,
    "DOUBLE": 64,
    "ULAW": 8,
    "ALAW": 8,
}


class AudioError(GenreError, ValueError):
    """A file that cannot be used as audio; the message names the file and the reason."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    channels: int
    frames: int
    bit_depth: int | None
    format: str
    subtype: str

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def probe(path: str | os.PathLike, *, max_file_mb: float | None = None) -> AudioInfo:
    """Read the header only; raise AudioError for a missing, empty, oversized or unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "not a regular file")
    size = path.stat().st_size
    if size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    if max_file_mb is not None and size > max_file_mb * 1024 * 1024:
        raise AudioError(path, f"file is {size / 2**20:.1f} MB, above the limit of {max_file_mb} MB")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # libsndfile reports many formats' faults with one exception type
        raise AudioError(path, f"cannot read audio header ({_short(exc)})") from None
    if info.samplerate <= 0 or info.channels <= 0:
        raise AudioError(path, "header has no sample rate or channels")
    return AudioInfo(
        sample_rate=int(info.samplerate),
        channels=int(info.channels),
        frames=int(info.frames),
        bit_depth=_BIT_DEPTH.get(info.subtype),
        format=info.format,
        subtype=info.subtype,
    )


def read_native(
    path: str | os.PathLike, *, max_file_mb: float | None = None, max_duration_s: float | None = None
) -> tuple[np.ndarray, int]:
    """Decode at the file's own rate: float32 array (frames, channels) and the rate."""
    info = probe(path, max_file_mb=max_file_mb)
    if max_duration_s is not None and info.duration_s > max_duration_s:
        raise AudioError(path, f"duration {info.duration_s:.1f} s is above the limit of {max_duration_s} s")
    try:
        samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioError(path, f"cannot decode audio ({_short(exc)})") from None
    if samples.shape[0] == 0:
        raise AudioError(path, "no audio samples")
    if not np.isfinite(samples).all():
        raise AudioError(path, "audio contains NaN or infinite samples")
    return samples, int(rate)


def load_audio(
    path: str | os.PathLike,
    *,
    sample_rate: int,
    min_duration_s: float | None = None,
    max_duration_s: float | None = None,
    max_file_mb: float | None = None,
) -> np.ndarray:
    """Decode, downmix to mono and resample to `sample_rate`: a 1-D float32 array."""
    return load_audio_at(
        path,
        sample_rates=[sample_rate],
        min_duration_s=min_duration_s,
        max_duration_s=max_duration_s,
        max_file_mb=max_file_mb,
    )[sample_rate]


def load_audio_at(
    path: str | os.PathLike,
    *,
    sample_rates: Sequence[int],
    min_duration_s: float | None = None,
    max_duration_s: float | None = None,
    max_file_mb: float | None = None,
) -> dict[int, np.ndarray]:
    """Decode once, downmix to mono and resample to each rate: {rate: 1-D float32 array}. Every signal
    is resampled from the file's own rate, so each equals what `load_audio` gives at that rate."""
    samples, rate = read_native(path, max_file_mb=max_file_mb, max_duration_s=max_duration_s)
    duration = samples.shape[0] / rate
    if min_duration_s is not None and duration < min_duration_s:
        raise AudioError(path, f"duration {duration:.2f} s is below the minimum of {min_duration_s} s")
    # float64 downmix: the mean of float32 samples near the float32 maximum must not overflow to inf
    mono = samples.mean(axis=1, dtype=np.float64)
    signals = {}
    for target in dict.fromkeys(sample_rates):
        signals[target] = resample(mono, orig_sr=rate, target_sr=target)
        if not np.isfinite(signals[target]).all():  # huge (finite) float samples overshoot when resampled
            raise AudioError(path, "sample values too large: not finite after downmix and resampling")
    return signals


def resample(y: np.ndarray, *, orig_sr: int, target_sr: int) -> np.ndarray:
    """A 1-D signal at `target_sr` as contiguous float32: soxr at high quality, trimmed or zero-padded to
    ceil(len * ratio) samples, which is exactly librosa.resample(res_type="soxr_hq") without importing
    librosa (its numba start-up costs a second per process)."""
    if orig_sr == target_sr:
        return np.ascontiguousarray(y, dtype=np.float32)
    import soxr

    size = int(np.ceil(len(y) * float(target_sr) / orig_sr))
    with np.errstate(over="ignore"):  # an overflow becomes inf, which the caller reports as AudioError
        out = soxr.resample(y, orig_sr, target_sr, quality="soxr_hq")[:size]
        out = np.pad(out, (0, size - len(out))) if len(out) < size else out
        return np.ascontiguousarray(out, dtype=np.float32)


def _short(exc: Exception) -> str:
    """libsndfile's first line without its "Error opening '<path>': " prefix (the path is named already)."""
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    line = text.splitlines()[0]
    if line.startswith("Error opening") and "': " in line:
        line = line.split("': ", 1)[1]
    # libsndfile says this when no decoder accepts the bytes of an existing regular file
    if "not a regular file" in line:
        line = "no decoder recognises the content"
    return line[:200]
