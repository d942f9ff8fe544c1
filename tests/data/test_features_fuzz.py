"""Property test: any finite mono signal gives finite features of the documented shapes, or the
documented ValueError when it is shorter than one FFT frame."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from musicgenre.config import load_params
from musicgenre.features import FeatureConfig, extract, feature_names

CONFIG = FeatureConfig.from_params(load_params())


@st.composite
def signals(draw) -> np.ndarray:
    """Noise, tones or silence with a DC offset, of 100 samples to 2.5 segments (bounded for speed)."""
    n = draw(st.integers(100, int(2.5 * CONFIG.segment_samples)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["noise", "tone", "silence", "impulses"]))
    amplitude = draw(st.floats(1e-6, 1.0))
    if kind == "noise":
        y = rng.normal(0, amplitude, n)
    elif kind == "tone":
        frequency = draw(st.floats(20, CONFIG.sample_rate / 2))
        y = amplitude * np.sin(2 * np.pi * frequency * np.arange(n) / CONFIG.sample_rate)
    elif kind == "impulses":
        y = np.where(rng.random(n) < 0.001, amplitude, 0.0)
    else:
        y = np.zeros(n)
    return (y + draw(st.floats(-0.5, 0.5))).astype(draw(st.sampled_from([np.float32, np.float64])))


@settings(max_examples=12, deadline=None)
@given(y=signals())
def test_extract_is_finite_or_raises_the_documented_error(y):
    config = CONFIG
    if len(y) < config.n_fft:
        with pytest.raises(ValueError, match="shorter than one frame"):
            extract(y, config=config)
        return
    track, segments, log_mels = extract(y, config=config)
    n_segments = len(y) // config.segment_samples
    assert track.shape == (len(feature_names(config)),)
    assert segments.shape == (n_segments, len(track))
    assert log_mels.shape == (n_segments, config.n_mels, config.segment_frames) and log_mels.dtype == np.float32
    assert np.isfinite(track).all() and np.isfinite(segments).all() and np.isfinite(log_mels).all()
