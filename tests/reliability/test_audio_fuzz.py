"""Property test of the audio loader: random arrays written with random container, subtype, rate,
channel count and length load as finite float32 mono at the requested rate, or raise the
documented AudioError naming the file. Nothing else may escape."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from musicgenre.audio import AudioError, load_audio

# (format, subtype, extension) libsndfile writes; the loader must read all of them
CONTAINERS = [
    ("WAV", "PCM_16", "wav"),
    ("WAV", "PCM_U8", "wav"),
    ("WAV", "PCM_24", "wav"),
    ("WAV", "PCM_32", "wav"),
    ("WAV", "FLOAT", "wav"),
    ("WAV", "DOUBLE", "wav"),
    ("FLAC", "PCM_16", "flac"),
    ("FLAC", "PCM_S8", "flac"),
    ("OGG", "VORBIS", "ogg"),
    ("AU", "PCM_16", "au"),
    ("AIFF", "PCM_S8", "aiff"),
    ("MP3", "MPEG_LAYER_III", "mp3"),
]
CONTAINERS = [c for c in CONTAINERS if c[0] in sf.available_formats()]
RATES = [1000, 8000, 11025, 16000, 22050, 44100, 48000, 96000]


@st.composite
def audio_files(draw):
    fmt, subtype, ext = draw(st.sampled_from(CONTAINERS))
    rate = draw(st.sampled_from(RATES))
    channels = draw(st.integers(1, 2 if fmt in ("MP3", "OGG") else 6))
    frames = draw(st.integers(0, int(rate * 1.5)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    # out-of-range and NaN/inf samples only into WAV: the MP3/Vorbis/FLAC encoders abort() on them
    kind = draw(st.sampled_from(["noise", "silence", "dc"] + (["loud", "specials"] if fmt == "WAV" else [])))
    y = rng.uniform(-1, 1, (frames, channels))
    if kind == "silence":
        y[:] = 0.0
    elif kind == "loud":  # float files may hold any finite value, far beyond full scale
        y *= draw(st.floats(1.0, 3.0e38))
    elif kind == "dc":
        y = 0.3 * y + draw(st.floats(-0.7, 0.7))
    elif kind == "specials" and frames:
        y.flat[rng.integers(0, y.size, max(1, y.size // 100))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    dtype = np.float32 if subtype == "FLOAT" else np.float64
    return fmt, subtype, ext, rate, np.asarray(y, dtype=dtype), draw(st.sampled_from([16000, 22050, 44100]))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=audio_files())
def test_loader_returns_finite_mono_float32_or_audio_error(case):
    fmt, subtype, ext, rate, y, target = case
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"fuzz.{ext}"
        try:
            with np.errstate(all="ignore"):
                sf.write(path, y, rate, format=fmt, subtype=subtype)
        except (sf.LibsndfileError, RuntimeError, ValueError, AssertionError):
            # the encoder refused (a rate MP3 lacks, NaN into FLAC): load whatever it left, or an empty upload
            if not path.exists():
                path.write_bytes(b"")
        try:
            out = load_audio(path, sample_rate=target)
        except AudioError as exc:
            assert exc.path == str(path) and str(path) in str(exc) and exc.reason
            event(f"AudioError: {exc.reason.split('(')[0].split(' ')[0]}")
            return
        info = sf.info(str(path))
        expected = round(info.frames * target / info.samplerate)
    event(f"loaded {fmt}")
    assert out.dtype == np.float32 and out.ndim == 1 and len(out) > 0 and np.isfinite(out).all()
    # the length follows the rate change; a compressed stream's decoder may pad or trim its edges
    tolerance = max(2, 0.1 * expected) if fmt in ("MP3", "OGG") else 2
    assert abs(len(out) - expected) <= tolerance, (len(out), expected)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_refused_by_name(tmp_path, value):
    y = np.zeros((22050, 2), np.float32)
    y[100, 1] = value
    path = tmp_path / "bad samples.wav"
    sf.write(path, y, 22050, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN or infinite") as raised:
        load_audio(path, sample_rate=22050)
    assert raised.value.path == str(path)


def test_near_float32_max_does_not_overflow_into_inf(tmp_path):
    """Two channels at the float32 maximum: the downmix and resampling must not produce inf."""
    path = tmp_path / "huge.wav"
    y = np.full((4410, 2), np.finfo(np.float32).max, np.float32)
    y[::2] *= -1
    sf.write(path, y, 44100, subtype="FLOAT")
    try:
        out = load_audio(path, sample_rate=22050)
    except AudioError as exc:
        assert "too large" in exc.reason
    else:
        assert np.isfinite(out).all() and out.dtype == np.float32
