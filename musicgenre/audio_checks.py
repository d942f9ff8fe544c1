"""Per-track audio measurements for the audio suite (no GX import: joblib workers stay light)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from scipy.signal import welch

from .audio import AudioError, read_native
from .config import resolve
from .errors import require


@dataclass(frozen=True)
class AudioCheckConfig:
    clip_level: float
    band_limit_hz: float
    band_limit_guard_hz: float
    band_limit_width_hz: float
    welch_nperseg: int
    max_file_mb: float | None = None
    max_duration_s: float | None = None

    def __post_init__(self) -> None:
        """Refuse settings no measurement can honour, naming the params key."""
        require(0 < self.clip_level <= 1, f"validate.clip_level must be in (0, 1] of full scale, got {self.clip_level}")
        for name in ("band_limit_hz", "band_limit_width_hz", "welch_nperseg"):
            require(getattr(self, name) > 0, f"validate.{name} must be positive, got {getattr(self, name)}")
        require(
            0 <= self.band_limit_guard_hz < self.band_limit_hz,
            f"validate.band_limit_guard_hz ({self.band_limit_guard_hz}) must be in [0, band_limit_hz "
            f"({self.band_limit_hz}))",
        )
        require(
            self.band_limit_guard_hz + self.band_limit_width_hz <= self.band_limit_hz,
            f"validate.band_limit_guard_hz + band_limit_width_hz ({self.band_limit_guard_hz} + "
            f"{self.band_limit_width_hz}) must fit below band_limit_hz ({self.band_limit_hz})",
        )
        for name in ("max_file_mb", "max_duration_s"):
            value = getattr(self, name)
            require(value is None or value > 0, f"limits.{name} must be positive (or absent), got {value}")

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "AudioCheckConfig":
        section, limits = params["validate"], params.get("limits", {})
        return cls(
            clip_level=section["clip_level"],
            band_limit_hz=section["band_limit_hz"],
            band_limit_guard_hz=section["band_limit_guard_hz"],
            band_limit_width_hz=section["band_limit_width_hz"],
            welch_nperseg=section["welch_nperseg"],
            max_file_mb=limits.get("max_file_mb"),
            max_duration_s=limits.get("max_duration_s"),
        )


def band_measures(mono: np.ndarray, *, rate: int, config: AudioCheckConfig) -> dict[str, float]:
    """Share of energy above the band limit, and the edge ratio: mean power just above the limit over
    mean power just below it. A 16 kHz source upsampled has a cliff there (ratio near 0); real
    22050 Hz audio rolls off gradually, even when it has little treble (so the share alone misleads)."""
    freqs, power = welch(mono, fs=rate, nperseg=min(config.welch_nperseg, len(mono)))
    edge, guard, width = config.band_limit_hz, config.band_limit_guard_hz, config.band_limit_width_hz
    above = power[(freqs >= edge + guard) & (freqs < edge + guard + width)]
    below = power[(freqs >= edge - guard - width) & (freqs < edge - guard)]
    total = power.sum()
    share = float(power[freqs >= edge].sum() / total) if total > 0 else float("nan")
    # Undefined (NaN, skipped by the expectation) when the file's Nyquist is below the bands or it is silent.
    ratio = float(above.mean() / below.mean()) if above.size and below.size and below.mean() > 0 else float("nan")
    return {"hf_energy_share": share, "band_edge_ratio": ratio}


def measure_track(*, track: str, path: Path, config: AudioCheckConfig) -> dict[str, Any]:
    """Decode one file and measure it; a file that cannot be decoded is reported, not raised."""
    row: dict[str, Any] = {"track": track, "decodes": False, "decode_error": ""}
    try:
        samples, rate = read_native(path, max_file_mb=config.max_file_mb, max_duration_s=config.max_duration_s)
    except AudioError as exc:
        row["decode_error"] = str(exc)
        return row
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    mono = samples.mean(axis=1)
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    row.update(
        decodes=True,
        # The decoded samples, not the file bytes: the same audio re-encoded is still a replica.
        audio_sha256=hashlib.sha256(samples.tobytes()).hexdigest(),
        decoded_duration_s=samples.shape[0] / rate,
        decoded_sample_rate=rate,
        decoded_channels=samples.shape[1],
        # Floor at the smallest float32 so digital silence is a finite (very low) level.
        rms_dbfs=20 * np.log10(max(rms, float(np.finfo(np.float32).tiny))),
        clip_fraction=float(np.mean(np.abs(samples) >= config.clip_level)),
        **band_measures(mono, rate=rate, config=config),
    )
    return row


def measure_tracks(*, manifest: pd.DataFrame, config: AudioCheckConfig, n_jobs: int) -> pd.DataFrame:
    """Measure every manifest row in parallel; columns follow the manifest's track order."""
    rows = Parallel(n_jobs=n_jobs)(
        delayed(measure_track)(track=track, path=resolve(path), config=config)
        for track, path in zip(manifest["track"], manifest["path"])
    )
    return pd.DataFrame(
        rows,
        columns=[
            "track",
            "decodes",
            "decode_error",
            "audio_sha256",
            "decoded_duration_s",
            "decoded_sample_rate",
            "decoded_channels",
            "rms_dbfs",
            "clip_fraction",
            "hf_energy_share",
            "band_edge_ratio",
        ],
    )
