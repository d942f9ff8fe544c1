"""The bad-input corpus: small audio files (and non-audio files) that upload paths meet in practice,
generated from one real GTZAN track so the usable ones carry real music.

Each entry says what the loader must do with it: decode (`error` is None) or refuse with an
AudioError whose reason contains `error`. `probe_error` is what the header probe (ingestion) says;
`native_error` what the full native decode (validation) says, when it differs from the loader's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import soundfile as sf

from musicgenre.audio import resample

SR = 22050


@dataclass(frozen=True)
class Case:
    name: str
    filename: str
    write: Callable[[Path, np.ndarray, dict[str, Any]], None]
    error: str | None = None  # load_audio (predict, scoring): reason substring or None
    probe_error: str | None = None  # probe (ingestion)
    native_error: str | None = field(default="same")  # read_native (validation); "same" = as load_audio
    formats: tuple[str, ...] = ()  # soundfile formats the case needs

    def validation_error(self) -> str | None:
        return self.error if self.native_error == "same" else self.native_error


def _wav(path: Path, y: np.ndarray, rate: int = SR, subtype: str = "PCM_16") -> None:
    sf.write(path, y, rate, subtype=subtype, format="WAV")


def _real_wav_bytes(path: Path, y: np.ndarray) -> bytes:
    _wav(path, y)
    return path.read_bytes()


def corrupt_header(path, y, limits):
    data = _real_wav_bytes(path, y)
    path.write_bytes(b"JUNK" + data[4:12] + b"XXXX" + data[16:])  # RIFF and fmt ids destroyed


def truncated_wav(path, y, limits):
    data = _real_wav_bytes(path, y)
    path.write_bytes(data[: len(data) // 3])  # header still claims 30 s


def truncated_flac(path, y, limits):
    sf.write(path, y, SR, format="FLAC")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def zero_bytes(path, y, limits):
    path.write_bytes(b"")


def text_as_wav(path, y, limits):
    path.write_text("these are liner notes, not audio\n" * 20, encoding="utf-8")


def silence(path, y, limits):
    _wav(path, np.zeros_like(y))


def one_second(path, y, limits):
    _wav(path, y[:SR])


def ten_minutes(path, y, limits):
    """600 s (under limits.max_duration_s) at 8 kHz: the real track repeated, 9.6 MB."""
    low = resample(y, orig_sr=SR, target_sr=8000)
    _wav(path, np.tile(low, int(np.ceil(600 * 8000 / len(low))))[: 600 * 8000], rate=8000)


def over_duration(path, y, limits):
    """Longer than limits.max_duration_s at a 1 kHz rate, 8-bit: small on disk, refused from the header."""
    rate, seconds = 1000, int(limits["max_duration_s"] * 1.5)
    tone = 0.5 * np.sin(2 * np.pi * 110 * np.arange(rate * seconds) / rate)
    _wav(path, tone, rate=rate, subtype="PCM_U8")


def over_size(path, y, limits):
    """A valid WAV header then a sparse hole past limits.max_file_mb: no disk space, refused by size."""
    _wav(path, y[:SR])
    with open(path, "r+b") as handle:
        handle.truncate(int((limits["max_file_mb"] + 1) * 2**20))


def rate_8k(path, y, limits):
    _wav(path, resample(y, orig_sr=SR, target_sr=8000), rate=8000)


def rate_96k(path, y, limits):
    _wav(path, resample(y[: 10 * SR], orig_sr=SR, target_sr=96000), rate=96000)


def stereo_44k(path, y, limits):
    up = resample(y, orig_sr=SR, target_sr=44100)
    _wav(path, np.stack([up, 0.5 * up], axis=1), rate=44100)


def pcm_u8(path, y, limits):
    _wav(path, y, subtype="PCM_U8")


def float_nan_inf(path, y, limits):
    bad = y.astype(np.float32).copy()
    bad[SR :: SR * 5] = np.nan
    bad[SR * 2 :: SR * 7] = np.inf
    _wav(path, bad, subtype="FLOAT")


def dc_offset(path, y, limits):
    _wav(path, 0.3 * y / max(np.abs(y).max(), 1e-9) + 0.6)  # peaks stay below full scale


def mp3(path, y, limits):
    sf.write(path, y, SR, format="MP3", subtype="MPEG_LAYER_III")


def ogg(path, y, limits):
    sf.write(path, y, SR, format="OGG", subtype="VORBIS")


def flac(path, y, limits):
    sf.write(path, y, SR, format="FLAC")


def plain(path, y, limits):
    _wav(path, y)


CASES: tuple[Case, ...] = (
    Case(
        "corrupt_header",
        "corrupt_header.wav",
        corrupt_header,
        error="cannot read audio header",
        probe_error="cannot read audio header",
    ),
    Case("truncated_wav", "truncated.wav", truncated_wav),  # decodes what is there (10 s); validation flags duration
    Case("truncated_flac", "truncated.flac", truncated_flac, error="cannot decode audio"),
    Case("zero_bytes", "zero_bytes.wav", zero_bytes, error="empty file", probe_error="empty file"),
    Case(
        "text_as_wav",
        "liner_notes.wav",
        text_as_wav,
        error="cannot read audio header",
        probe_error="cannot read audio header",
    ),
    Case("silence", "silence.wav", silence),
    Case("one_second", "one_second.wav", one_second, error="below the minimum", native_error=None),
    Case("ten_minutes", "ten_minutes.wav", ten_minutes),
    Case("over_duration", "over_duration.wav", over_duration, error="above the limit"),
    Case("over_size", "over_size.wav", over_size, error="above the limit", probe_error="above the limit"),
    Case("rate_8k", "rate_8k.wav", rate_8k),
    Case("rate_96k", "rate_96k.wav", rate_96k),
    Case("stereo_44k", "stereo_44k.wav", stereo_44k),
    Case("pcm_u8", "pcm_u8.wav", pcm_u8),
    Case("float_nan_inf", "float_nan_inf.wav", float_nan_inf, error="NaN or infinite"),
    Case("dc_offset", "dc_offset.wav", dc_offset),
    Case("mp3", "track.mp3", mp3, formats=("MP3",)),
    Case("ogg", "track.ogg", ogg, formats=("OGG",)),
    Case("flac", "track.flac", flac, formats=("FLAC",)),
    Case("name_spaces", "my song (live) final.wav", plain),
    Case("name_quotes", 'it\'s "quoted" `tick`.wav', plain),
    Case("name_unicode", "Björk – Jóga 音楽 🎵.wav", plain),
    Case("name_dotdot", "..hidden..dots...wav", plain),
)


def build(folder: Path, *, source: Path, limits: dict[str, Any]) -> dict[str, Path]:
    """Write every case whose format this libsndfile supports into `folder`; name -> path."""
    y, rate = sf.read(source, dtype="float32")
    y = resample(y if y.ndim == 1 else y.mean(axis=1), orig_sr=rate, target_sr=SR)
    available = sf.available_formats()
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for case in CASES:
        if all(name in available for name in case.formats):
            case.write(folder / case.filename, y, limits)
            written[case.name] = folder / case.filename
    return written


def add_outside_link(folder: Path, *, outside: Path) -> dict[str, Path]:
    """Two escapes from the batch folder: an absolute symlink to a real file outside it, and a
    relative `../` symlink to the same file."""
    absolute, relative = folder / "outside_link.wav", folder / "dotdot_link.wav"
    absolute.symlink_to(outside.resolve())
    relative.symlink_to(os.path.relpath(outside, folder))
    return {"symlink_outside": absolute, "symlink_dotdot": relative}


BY_NAME = {case.name: case for case in CASES}


def build_gtzan(
    root: Path, *, source: Path, limits: dict[str, Any], genres: list[str], outside: Path
) -> dict[str, str]:
    """The corpus in GTZAN layout (genres/<genre>/<genre>.000NN.<ext>, under a folder whose name has
    spaces, quotes and unicode), plus a symlink leaving the root; case name -> track id."""
    y, rate = sf.read(source, dtype="float32")
    y = resample(y if y.ndim == 1 else y.mean(axis=1), orig_sr=rate, target_sr=SR)
    available, tracks = sf.available_formats(), {}
    for number, case in enumerate(CASES):
        if not all(name in available for name in case.formats):
            continue
        genre = genres[number % len(genres)]
        path = root / "genres" / genre / f"{genre}.{900 + number:05d}{Path(case.filename).suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        case.write(path, y, limits)
        tracks[case.name] = f"{genre}.{900 + number:05d}"
    link = root / "genres" / genres[0] / f"{genres[0]}.00999.flac"
    link.symlink_to(outside.resolve())
    tracks["symlink_outside"] = f"{genres[0]}.00999"
    return tracks
