"""The one-STFT extractor agrees with direct librosa calls (features_reference) on real tracks, per
track, per segment and for the log-mel, and handles degenerate signals with finite values or a
clear ValueError."""
from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from musicgenre.audio import load_audio, load_audio_at
from musicgenre.features import FeatureConfig, extract, feature_names
from musicgenre.features_reference import naive_extract

GROUPS = ("tempo", "chroma", "mfcc", "contrast", "centroid", "rolloff", "zcr")


@pytest.fixture(scope="module")
def config(params) -> FeatureConfig:
    return FeatureConfig.from_params(params)


@pytest.fixture(scope="module")
def real_tracks(gtzan_slice, config) -> dict[str, np.ndarray]:
    """Three real tracks of contrasting genres (quiet classical, dense metal, hiphop)."""
    picks = gtzan_slice[gtzan_slice["genre"].isin(["classical", "metal", "hiphop"])].groupby("genre").head(1)
    return {row.track: load_audio(row.abs_path, sample_rate=config.sample_rate) for row in picks.itertuples()}


@pytest.fixture(scope="module")
def pairs(real_tracks, config) -> dict[str, tuple[tuple, tuple]]:
    return {key: (extract(y, config=config), naive_extract(y, config=config)) for key, y in real_tracks.items()}


def assert_agrees(fast: np.ndarray, naive: np.ndarray, *, rtol: float, names: list[str]) -> None:
    """|fast - naive| <= rtol * max|naive| of each feature over the rows (the documented tolerance)."""
    scale = np.maximum(np.abs(naive).max(axis=0), np.finfo(np.float32).eps)
    excess = np.abs(fast - naive) / scale
    worst = int(np.argmax(excess.max(axis=0)))
    assert excess.max() <= rtol, f"{names[worst]} differs by {excess.max():.2e} of its scale"


def test_feature_names_match_vector(pairs, config):
    names = feature_names(config)
    assert len(names) == 1 + 2 * 12 + 2 * config.n_mfcc + 2 * (config.n_contrast_bands + 1) + 9
    assert {name.split("_")[0] for name in names} == set(GROUPS)
    for (track, segments, log_mels), _ in pairs.values():
        assert track.shape == (len(names),) and segments.shape[1] == len(names)


def test_track_level_equals_naive_calls(pairs, params, config):
    for (fast, _, _), (naive, _, _) in pairs.values():
        assert_agrees(fast[None], naive[None], rtol=params["features"]["reference_rtol"], names=feature_names(config))


def test_segment_level_equals_naive_calls_on_cut_segments(pairs, real_tracks, params, config):
    for key, ((_, fast, _), (_, naive, _)) in pairs.items():
        assert len(fast) == len(real_tracks[key]) // config.segment_samples == len(naive)
        assert_agrees(fast, naive, rtol=params["features"]["reference_rtol"], names=feature_names(config))


def test_log_mel_equals_naive_per_segment(pairs, params, config):
    for (_, _, fast), (_, _, naive) in pairs.values():
        assert fast.dtype == np.float32 and fast.shape == naive.shape
        assert fast.shape[1:] == (config.n_mels, config.segment_frames)
        assert np.abs(fast - naive).max() <= params["features"]["reference_logmel_atol_db"]
        # per-segment dB reference: every segment's loudest bin sits at 0 dB or below, floor 80 dB under it
        assert np.all(fast.max(axis=(1, 2)) - fast.min(axis=(1, 2)) <= 80.0 + 1e-3)


def test_one_segment_of_real_audio_with_dc_offset_equals_naive(real_tracks, params, config):
    y = next(iter(real_tracks.values()))[:config.segment_samples] + np.float32(0.3)
    track, segments, log_mels = extract(y, config=config)
    naive_track, naive_segments, _ = naive_extract(y, config=config)
    assert segments.shape[0] == 1 and log_mels.shape[0] == 1
    names = feature_names(config)
    assert_agrees(track[None], naive_track[None], rtol=params["features"]["reference_rtol"], names=names)
    assert_agrees(segments, naive_segments, rtol=params["features"]["reference_rtol"], names=names)


def test_threads_share_no_fft_buffers(real_tracks, config):
    """Each thread plans its own FFTW buffers: concurrent extraction equals sequential bit for bit.
    The caller holds one BLAS limit around the threads, as flows.extraction does: threadpoolctl lets
    only one thread set OpenBLAS's process-wide thread count, and 2 BLAS threads sum the products in
    another order (the last digits of centroid and chroma change)."""
    signals = list(real_tracks.values()) * 2
    sequential = [extract(y, config=config) for y in signals]
    with threadpool_limits(limits=1), ThreadPoolExecutor(max_workers=len(signals)) as pool:
        concurrent = list(pool.map(lambda y: extract(y, config=config), signals))
    for one, other in zip(sequential, concurrent):
        for a, b in zip(one, other):
            np.testing.assert_array_equal(a, b)


def test_one_decode_gives_each_rate_as_load_audio_does(gtzan_slice, config):
    path = gtzan_slice.iloc[0].abs_path
    signals = load_audio_at(path, sample_rates=[config.sample_rate, 16000])
    for rate, y in signals.items():
        np.testing.assert_array_equal(y, load_audio(path, sample_rate=rate))
    assert len(signals[16000]) == pytest.approx(len(signals[config.sample_rate]) * 16000 / config.sample_rate, abs=2)


@pytest.mark.parametrize("changes", [{"hop_length": 300, "n_mels": 64, "n_mfcc": 13},
                                     {"n_fft": 1024, "hop_length": 256, "n_contrast_bands": 5}])
def test_other_frame_settings_still_equal_naive(changes, real_tracks, params, config):
    """Hops that do not divide the segment or n_fft/2 (more edge frames, gcd blocks for the ZCR)."""
    other = dataclasses.replace(config, **changes)
    y = next(iter(real_tracks.values()))[:2 * other.segment_samples + 1000]
    fast, naive = extract(y, config=other), naive_extract(y, config=other)
    names = feature_names(other)
    assert_agrees(fast[0][None], naive[0][None], rtol=params["features"]["reference_rtol"], names=names)
    assert_agrees(fast[1], naive[1], rtol=params["features"]["reference_rtol"], names=names)
    assert np.abs(fast[2] - naive[2]).max() <= params["features"]["reference_logmel_atol_db"]


@pytest.mark.parametrize("make", [
    pytest.param(lambda n: np.zeros(n, np.float32), id="silence"),
    pytest.param(lambda n: np.full(n, 0.5, np.float32), id="dc-only"),
    pytest.param(lambda n: np.random.default_rng(0).normal(0, 0.1, n // 2 + 1).astype(np.float32),
                 id="under-one-segment"),
    pytest.param(lambda n: np.random.default_rng(1).normal(0, 0.1, 2 * n + 777).astype(np.float32), id="odd-length"),
])
def test_degenerate_signals_give_finite_features(make, config):
    y = make(config.segment_samples)
    track, segments, log_mels = extract(y, config=config)
    assert np.isfinite(track).all() and np.isfinite(segments).all() and np.isfinite(log_mels).all()
    assert len(segments) == len(log_mels) == len(y) // config.segment_samples


@pytest.mark.parametrize("y, message", [
    (np.zeros(100, np.float32), "shorter than one frame"),
    (np.zeros((2, 30000), np.float32), "mono"),
    (np.array([np.nan] * 30000, np.float32), "NaN"),
])
def test_invalid_signals_raise_clear_value_error(y, message, config):
    with pytest.raises(ValueError, match=message):
        extract(y, config=config)
