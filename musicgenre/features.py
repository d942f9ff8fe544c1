"""The seed feature set from one STFT per track: track-level and per-segment aggregates plus log-mel.

Design (what makes segment features equal to naive librosa calls on each segment):
- A segment is `segment_frames` hops long (129 * 512 = 66048 samples, 2.996 s for 3 s at 22050 Hz)
  and segment i starts at sample i * segment_samples. With centred frames, frame j of a segment is
  then exactly frame i * segment_frames + j of the track, so one track STFT serves every segment.
- Only the frames whose window crosses a segment boundary differ (a naive call zero-pads the
  segment): ceil(n_fft / 2 / hop) = 2 frames at each end. They are recomputed from zero-padded
  segment edges (4 extra frames per segment, +3 % STFT work), so every segment frame is exact.
- Everything that depends on the whole signal is computed per signal (track or segment): the dB
  reference of power_to_db(top_db=80) for log-mel, MFCC, onset strength and spectral contrast,
  the tempogram, and the edge padding of the zero-crossing rate.
- librosa's filter banks (mel, chroma) and its formulas are kept; the generic per-feature calls
  are replaced by numpy on the shared spectrogram, laid out frames x bins so every reduction runs
  on contiguous memory, and batched over all segments of a track at once.
- The STFT is computed like librosa's (float64 FFT, kept at the input precision), by FFTW (pyFFTW)
  in cache-sized blocks of frames. The mean tempogram is one matrix product per signal instead of
  one FFT per frame (`_mean_tempogram`). The segment ZCR reuses the track's interior frames.
- Spectrogram-sized temporaries stay in the process heap between tracks (musicgenre.memory).
What remains different from the naive calls is float rounding (summation order): measured
<= 3e-6 of each feature's scale, log-mel <= 1e-5 dB (asserted tolerance: `features.reference_rtol`
= 1e-4 of the feature's max |value|, `reference_logmel_atol_db`). Rolloff could move by one bin
where the 85 % energy threshold is a near-tie, and tempo (an argmax over tempo bins) flip on a
near-tie; BENCHMARKS.md reports the measured differences per feature group.
"""

from __future__ import annotations

import functools
import math
import threading
from dataclasses import asdict, dataclass
from typing import Any

import librosa
import numpy as np
import pyfftw
import scipy.fft
import scipy.sparse

from .blas import single_blas_thread
from .errors import DataError, require
from .memory import keep_freed_buffers

STATS = ("mean", "std", "skew")
TOP_DB = 80.0  # librosa.power_to_db defaults: the naive calls use them
AMIN = 1e-10
ROLL_PERCENT = 0.85  # librosa.feature.spectral_rolloff default
ZC_THRESHOLD = 1e-10  # librosa.zero_crossings default
CONTRAST_FMIN, CONTRAST_QUANTILE = 200.0, 0.02  # librosa.feature.spectral_contrast defaults
STFT_BLOCK_FRAMES = 32  # frames per FFT block: 32 x 2048 float64 = 0.5 MB, stays in a core's L2 cache
TEMPO_AC_SIZE_S, TEMPO_START_BPM, TEMPO_MAX_BPM = 8.0, 120.0, 320.0  # librosa.feature.tempo defaults
MAX_TUNING_BINS = 0.5  # librosa's tuning deviation is a fraction of a chroma bin in [-0.5, 0.5)


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

    def __post_init__(self) -> None:
        """Refuse settings the extractor cannot honour, naming the params key (as librosa's ParameterError)."""
        for name in ("sample_rate", "n_fft", "hop_length", "n_mels", "n_mfcc", "n_contrast_bands", "segment_seconds"):
            require(getattr(self, name) > 0, f"features.{name} must be positive, got {getattr(self, name)}")
        require(
            self.hop_length <= self.n_fft,
            f"features.hop_length ({self.hop_length}) must not exceed features.n_fft ({self.n_fft}): "
            "frames would skip samples",
        )
        require(
            self.n_mfcc <= self.n_mels,
            f"features.n_mfcc ({self.n_mfcc}) must not exceed features.n_mels ({self.n_mels}): "
            "the MFCCs are the DCT of the mel bands",
        )
        top_edge = CONTRAST_FMIN * 2.0 ** (self.n_contrast_bands - 1)
        require(
            top_edge < self.sample_rate / 2,
            f"features.n_contrast_bands ({self.n_contrast_bands}) puts a contrast band edge at {top_edge:g} Hz, "
            f"at or above Nyquist ({self.sample_rate / 2:g} Hz): reduce the bands or raise the sample rate",
        )
        require(
            self.sample_rate / self.n_fft <= CONTRAST_FMIN,
            f"features.n_fft ({self.n_fft}) is too short: the {CONTRAST_FMIN:g} Hz contrast octave needs FFT "
            f"bins at most {CONTRAST_FMIN:g} Hz apart (n_fft >= {math.ceil(self.sample_rate / CONTRAST_FMIN)})",
        )
        require(
            self.segment_samples >= self.n_fft,
            f"features.segment_seconds ({self.segment_seconds}) is shorter than one frame "
            f"(features.n_fft = {self.n_fft} samples)",
        )
        require(
            self.chroma_tuning is None or -MAX_TUNING_BINS <= self.chroma_tuning < MAX_TUNING_BINS,
            f"features.chroma_tuning must be null or in [-0.5, 0.5) of a chroma bin, got {self.chroma_tuning}",
        )

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "FeatureConfig":
        section = params["features"]
        return cls(**{name: section[name] for name in cls.__dataclass_fields__ if name in section})

    @property
    def segment_frames(self) -> int:
        return int(round(self.segment_seconds * self.sample_rate / self.hop_length))

    @property
    def segment_samples(self) -> int:
        # a whole number of hops, so segment frames coincide with track frames
        return self.segment_frames * self.hop_length

    @property
    def edge_frames(self) -> int:
        """Frames at each end of a segment whose window reaches past the segment."""
        return math.ceil(self.n_fft // 2 / self.hop_length)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Banks:
    """Everything that depends on the configuration only (computed once per process)."""

    window: np.ndarray
    mel: scipy.sparse.csr_array  # (n_mels, bins): each bin feeds at most 2 triangles
    freqs: np.ndarray  # (bins,)
    contrast_bands: tuple[tuple[np.ndarray, int], ...]  # (bin indices, bins averaged) per band
    tempo_window: np.ndarray
    tempo_bpms: np.ndarray
    tempo_logprior: np.ndarray


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


def extract(y: np.ndarray, *, config: FeatureConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Track vector (n_features,), segment vectors (n_segments, n_features) and
    log-mel segments (n_segments, n_mels, segment_frames) float32 of one mono signal."""
    # One track's matrices are too small for BLAS threads to pay off; on shared cores their
    # spin-waits made extract 3-5x slower (measured), so BLAS runs single-threaded here. The count
    # also sets the summation order of the products (2 threads change the last digits), and
    # threadpoolctl lets one thread at a time set it: callers that extract from several threads
    # hold the limit around all of them (flows.extraction.map_extraction does).
    keep_freed_buffers()
    with single_blas_thread():
        return _extract(_check_signal(y, config), config)


def _extract(y: np.ndarray, config: FeatureConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One table of per-frame spectra, aggregated once for the track and once for all segments."""
    n_segments = len(y) // config.segment_samples
    table, n_frames = frame_table(y, n_segments=n_segments, config=config)
    track_index = np.arange(n_frames)[None, :]
    track_zcr = _zcr(y[None, :], config=config)
    track_vector, _ = aggregate(table, track_index, track_zcr, config=config)
    if n_segments == 0:
        return (
            track_vector[0],
            np.empty((0, len(track_vector[0]))),
            np.empty((0, config.n_mels, config.segment_frames), dtype=np.float32),
        )
    segments = y[: n_segments * config.segment_samples].reshape(n_segments, config.segment_samples)
    index = segment_index(n_frames, n_segments=n_segments, config=config)
    segment_vectors, log_mel = aggregate(table, index, _segment_zcr(track_zcr, segments, config), config=config)
    log_mels = np.ascontiguousarray(log_mel[:, : config.segment_frames].transpose(0, 2, 1), dtype=np.float32)
    return track_vector[0], segment_vectors, log_mels


def frame_table(y: np.ndarray, *, n_segments: int, config: FeatureConfig) -> tuple[dict[str, np.ndarray], int]:
    """Per-frame quantities (rows = frames) of the track frames followed by the segments' edge frames."""
    half = config.n_fft // 2
    track = _frames(np.pad(y, half), config)
    edges = _edge_windows(y, n_segments, config)
    magnitude = np.empty((len(track) + len(edges), half + 1), dtype=y.dtype)
    _magnitude(track, out=magnitude[: len(track)], config=config)
    _magnitude(edges, out=magnitude[len(track) :], config=config)
    banks = _banks(config)
    power = magnitude**2
    total = magnitude.sum(axis=1)
    cumulative = np.cumsum(magnitude, axis=1)
    rolloff_bin = np.argmax(cumulative >= np.float32(ROLL_PERCENT) * cumulative[:, -1:], axis=1)
    peak, valley = _contrast_extremes(magnitude, banks)
    table = {
        "mel": (banks.mel @ power.T).T,
        "chroma": _chroma(power, config),
        "peak": peak,
        "valley": valley,
        # spectral_centroid normalises each frame by its sum; an all-zero frame stays 0
        "centroid": (magnitude @ banks.freqs.astype(magnitude.dtype)) / np.where(total > 0, total, 1),
        "rolloff": banks.freqs[rolloff_bin],
    }
    return table, track.shape[0]


def segment_index(n_frames: int, *, n_segments: int, config: FeatureConfig) -> np.ndarray:
    """(n_segments, segment_frames + 1) rows of `frame_table` making up each segment."""
    frames, edge = config.segment_frames, config.edge_frames
    index = np.arange(n_segments)[:, None] * frames + np.arange(frames + 1)[None, :]
    edge_rows = n_frames + np.arange(n_segments)[:, None] * 2 * edge + np.arange(2 * edge)[None, :]
    index[:, :edge], index[:, frames + 1 - edge :] = edge_rows[:, :edge], edge_rows[:, edge:]
    return index


def aggregate(
    table: dict[str, np.ndarray], index: np.ndarray, zcr: np.ndarray, *, config: FeatureConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Feature vectors (n, n_features) of the signals whose frames are the rows `index` (n, frames),
    and their log-mel (n, frames, n_mels) with a per-signal dB reference."""
    log_mel = _power_to_db(table["mel"][index])
    mfcc = scipy.fft.dct(log_mel, axis=-1, type=2, norm="ortho")[..., : config.n_mfcc]
    contrast = _power_to_db(table["peak"][index]) - _power_to_db(table["valley"][index])
    parts = [_tempo(_onset_strength(log_mel, config), config)[:, None]]
    for matrix in (table["chroma"][index], mfcc, contrast):
        matrix = matrix.astype(np.float64)
        parts += [matrix.mean(axis=1), matrix.std(axis=1)]
    for row in (table["centroid"][index], table["rolloff"][index], zcr):
        parts.append(_moments(row.astype(np.float64)))
    return np.concatenate(parts, axis=1), log_mel


def _magnitude(frames: np.ndarray, *, out: np.ndarray, config: FeatureConfig) -> None:
    """|STFT| of the frames (rows) into `out`."""
    # As librosa.stft: the float64 window promotes the frames, the result is kept at input precision.
    # A float32 FFT would be faster, but its rounding (1e-7 of a frame's peak) reaches the near-empty
    # top octave of band-limited tracks, where spectral contrast then drifts by ~1e-3. FFTW's float64
    # transform (AVX-512 codelets) takes 3 ms per track where scipy's pocketfft takes 7.5 ms.
    plan = _frame_fft(config)
    block_in, block_out = plan.input_array, plan.output_array
    window = _banks(config).window
    for start in range(0, len(frames), STFT_BLOCK_FRAMES):
        block = frames[start : start + STFT_BLOCK_FRAMES]
        block_in[: len(block)] = block  # widen to float64 first: a mixed-precision multiply is 25 % slower
        block_in[len(block) :] = 0
        block_in *= window
        plan()
        # librosa keeps the spectrum at the input's precision (complex64 for float32 audio) before abs
        spectrum = block_out[: len(block)].astype(np.result_type(out.dtype, np.complex64), copy=False)
        np.abs(spectrum, out=out[start : start + len(block)])


_thread_plans = threading.local()


def _frame_fft(config: FeatureConfig) -> pyfftw.FFTW:
    """This thread's FFTW plan for a block of frames: a plan owns its buffers, so threads must not share one.
    FFTW_ESTIMATE picks the algorithm without timing trials, so every run computes bit-identical spectra."""
    plans: dict[int, pyfftw.FFTW] = _thread_plans.__dict__.setdefault("plans", {})
    if config.n_fft not in plans:
        frames = pyfftw.empty_aligned((STFT_BLOCK_FRAMES, config.n_fft), dtype="float64")
        spectrum = pyfftw.empty_aligned((STFT_BLOCK_FRAMES, config.n_fft // 2 + 1), dtype="complex128")
        plans[config.n_fft] = pyfftw.FFTW(
            frames, spectrum, axes=(1,), threads=1, flags=("FFTW_ESTIMATE", "FFTW_DESTROY_INPUT")
        )
    return plans[config.n_fft]


def _edge_windows(y: np.ndarray, n_segments: int, config: FeatureConfig) -> np.ndarray:
    """Frames (n_segments * 2 * edge, n_fft) at both ends of each zero-padded segment, in segment order."""
    half, hop, edge, size = config.n_fft // 2, config.hop_length, config.edge_frames, config.segment_samples
    span = (edge - 1) * hop + half  # samples of the segment under its edge frames
    starts = np.arange(n_segments) * size
    zeros = np.zeros((n_segments, half), dtype=y.dtype)
    left = np.concatenate([zeros, y[starts[:, None] + np.arange(span)]], axis=1)
    right = np.concatenate([y[starts[:, None] + size - span + np.arange(span)], zeros], axis=1)
    return np.concatenate([_frames(left, config), _frames(right, config)], axis=-2).reshape(-1, config.n_fft)


def _frames(signal: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Strided view (..., n_frames, n_fft) of the frames of an already padded signal."""
    windows = np.lib.stride_tricks.sliding_window_view(signal, config.n_fft, axis=-1)
    return windows[..., :: config.hop_length, :]


def _chroma(power: np.ndarray, config: FeatureConfig) -> np.ndarray:
    tuning = config.chroma_tuning
    if tuning is None:  # estimated once on the whole track; a naive segment call would estimate its own
        tuning = librosa.estimate_tuning(S=power.T, sr=config.sample_rate, n_fft=config.n_fft)
    bank = _chroma_bank(config, float(tuning))
    return librosa.util.normalize(power @ bank, norm=np.inf, axis=1)


def _contrast_extremes(magnitude: np.ndarray, banks: _Banks) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the lowest / highest quantile of bins per octave band and frame (spectral_contrast)."""
    peak = np.empty((magnitude.shape[0], len(banks.contrast_bands)))
    valley = np.empty_like(peak)
    for k, (bins, count) in enumerate(banks.contrast_bands):
        band = magnitude[:, bins[0] : bins[-1] + 1]  # the bins of a band are contiguous
        if count == 1:  # the low bands average one bin: min / max, no sort needed
            valley[:, k], peak[:, k] = band.min(axis=1), band.max(axis=1)
            continue
        ordered = np.sort(band, axis=1)
        valley[:, k], peak[:, k] = ordered[:, :count].mean(axis=1), ordered[:, -count:].mean(axis=1)
    return peak, valley


def _power_to_db(power: np.ndarray) -> np.ndarray:
    """librosa.power_to_db (ref 1, top_db clamp) with the clamp relative to each signal's own maximum."""
    db = 10.0 * np.log10(np.maximum(AMIN, power))
    return np.maximum(db, db.max(axis=(1, 2), keepdims=True) - TOP_DB)


def _onset_strength(log_mel: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """librosa.onset.onset_strength(S=log_mel) for signals (n, frames, n_mels): lag 1, mean, centred."""
    flux = np.maximum(0.0, log_mel[:, 1:] - log_mel[:, :-1]).mean(axis=2)
    pad = 1 + config.n_fft // (2 * config.hop_length)
    return np.pad(flux, ((0, 0), (pad, 0)))[:, : log_mel.shape[1]]


def _tempo(onset: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """librosa.feature.tempo(onset_envelope=...) per row: mean tempogram weighted by the log-normal prior."""
    banks = _banks(config)
    tempogram = _mean_tempogram(onset, banks.tempo_window.astype(onset.dtype))
    best = np.argmax(np.log1p(1e6 * tempogram) + banks.tempo_logprior, axis=1)
    return banks.tempo_bpms[best]


def _mean_tempogram(onset: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Mean over frames of librosa.feature.tempogram (rows = signals), without one FFT per frame.

    The tempogram of frame t is r_t[k] / r_t[0], r_t the autocorrelation of x_t = w * (onset window
    at t). Its mean over the n frames is the sum of the k-th superdiagonal of
    G = sum_t x_t x_t^T / (n r_t[0]): one matrix product per signal; every term is >= 0 (onsets
    are), so float32 stays accurate."""
    width, n = len(window), onset.shape[1]
    padded = np.pad(onset, ((0, 0), (width // 2, width // 2)), mode="linear_ramp", end_values=0)
    frames = np.lib.stride_tricks.sliding_window_view(padded, width, axis=1)[:, :n] * window
    energy = np.einsum("stk,stk->st", frames, frames)  # r_t[0], the peak util.normalize divides by
    weight = 1 / (np.where(energy < np.finfo(energy.dtype).tiny, 1, energy) * n)  # all-zero frame stays 0
    # G is written into rows of width + 1 (zero tail): once its lower triangle is zeroed, that layout
    # puts G[i, i + k] in column k, so the superdiagonal sums are column sums
    flat = np.empty((len(onset), width * (width + 1)), dtype=frames.dtype)
    flat[:, width * width :] = 0
    gram = flat[:, : width * width].reshape(len(onset), width, width)
    np.matmul((frames * weight[..., None]).transpose(0, 2, 1), frames, out=gram)
    gram *= _upper_triangle(width, frames.dtype)
    return flat.reshape(len(onset), width, width + 1).sum(axis=1, dtype=np.float64)[:, :width]


@functools.lru_cache(maxsize=4)
def _upper_triangle(width: int, dtype: np.dtype) -> np.ndarray:
    return np.triu(np.ones((width, width), dtype=dtype))


def _zcr(signals: np.ndarray, *, config: FeatureConfig) -> np.ndarray:
    """librosa.feature.zero_crossing_rate per row (edge-padded, centred frames) from block counts."""
    half, hop, n_fft = config.n_fft // 2, config.hop_length, config.n_fft
    padded = np.pad(signals, ((0, 0), (half, half)), mode="edge")
    # zero_crossings zeroes |y| <= threshold, then compares sign bits: negative means y < -threshold
    negative = padded < -ZC_THRESHOLD
    n_frames, size = 1 + signals.shape[1] // hop, math.gcd(n_fft, hop)
    # frame f holds samples [f*hop, f*hop + n_fft): crossings f*hop .. f*hop + n_fft - 2; count them
    # per block of gcd(n_fft, hop) samples, add the blocks of each frame, drop the one past its end
    length = max((n_frames - 1) * hop + n_fft, padded.shape[1] - 1)
    crossing = np.zeros((len(signals), -(-length // size) * size), dtype=np.uint8)
    crossing[:, : padded.shape[1] - 1] = negative[:, 1:] != negative[:, :-1]  # [k]: between k and k+1
    blocks = crossing.reshape(len(signals), -1, size).sum(axis=2, dtype=np.int32)
    windows = np.lib.stride_tricks.sliding_window_view(blocks, n_fft // size, axis=1)[:, :: hop // size]
    last = crossing[:, np.arange(n_frames) * hop + n_fft - 1]
    return (windows[:, :n_frames].sum(axis=2) - last) / n_fft


def _segment_zcr(track_zcr: np.ndarray, segments: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """ZCR (n_segments, segment_frames + 1) of the cut segments. A frame whose window lies inside its
    segment counts the same samples as the track's frame there; only the `edge_frames` at each end see
    the segment's own edge padding, so they are recomputed on the segment's ends."""
    frames, edge, hop = config.segment_frames, config.edge_frames, config.hop_length
    zcr = track_zcr[0, np.arange(len(segments))[:, None] * frames + np.arange(frames + 1)[None, :]]
    # whole hops (so frames stay aligned at the tail) that cover the edge frames' windows
    piece = min(2 * edge - 1, frames) * hop
    zcr[:, :edge] = _zcr(segments[:, :piece], config=config)[:, :edge]
    zcr[:, frames + 1 - edge :] = _zcr(segments[:, -piece:], config=config)[:, -edge:]
    return zcr


def _moments(rows: np.ndarray) -> np.ndarray:
    """mean, std and (biased) skew along axis 1; a constant row (e.g. silence) has skew 0, not NaN."""
    mean, std = rows.mean(axis=1), rows.std(axis=1)
    third = ((rows - mean[:, None]) ** 3).mean(axis=1)
    skew = np.divide(third, std**3, out=np.zeros_like(std), where=std > 0)
    return np.stack([mean, std, skew], axis=1)


@functools.lru_cache(maxsize=8)
def _banks(config: FeatureConfig) -> _Banks:
    sr, n_fft, hop = config.sample_rate, config.n_fft, config.hop_length
    freqs = librosa.fft_frequencies(sr=sr, n_fft=n_fft)
    width = int(librosa.time_to_frames(TEMPO_AC_SIZE_S, sr=sr, hop_length=hop))
    bpms = librosa.tempo_frequencies(width, sr=sr, hop_length=hop)
    with np.errstate(divide="ignore"):
        logprior = -0.5 * (np.log2(bpms) - np.log2(TEMPO_START_BPM)) ** 2
    logprior[: int(np.argmax(bpms < TEMPO_MAX_BPM))] = -np.inf
    return _Banks(
        window=librosa.filters.get_window("hann", n_fft, fftbins=True),
        mel=scipy.sparse.csr_array(librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=config.n_mels)),
        freqs=freqs,
        contrast_bands=_contrast_bands(freqs, config),
        tempo_window=librosa.filters.get_window("hann", width, fftbins=True),
        tempo_bpms=bpms,
        tempo_logprior=logprior,
    )


def _contrast_bands(freqs: np.ndarray, config: FeatureConfig) -> tuple[tuple[np.ndarray, int], ...]:
    """The octave bands of librosa.feature.spectral_contrast, with the same bin selection rules."""
    n_bands = config.n_contrast_bands
    edges = np.zeros(n_bands + 2)
    edges[1:] = CONTRAST_FMIN * 2.0 ** np.arange(n_bands + 1)
    bands = []
    for k, (low, high) in enumerate(zip(edges[:-1], edges[1:])):
        current = (freqs >= low) & (freqs <= high)
        idx = np.flatnonzero(current)
        if k > 0:
            current[idx[0] - 1] = True
        if k == n_bands:
            current[idx[-1] + 1 :] = True
        bins = np.flatnonzero(current)
        count = max(int(np.rint(CONTRAST_QUANTILE * current.sum())), 1)
        bands.append((bins[:-1] if k < n_bands else bins, count))
    return tuple(bands)


@functools.lru_cache(maxsize=8)
def _chroma_bank(config: FeatureConfig, tuning: float) -> np.ndarray:
    return np.ascontiguousarray(librosa.filters.chroma(sr=config.sample_rate, n_fft=config.n_fft, tuning=tuning).T)


def _check_signal(y: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """The signal as float32/float64 (the precisions librosa computes in), or a DataError (a ValueError) saying
    why not."""
    y = np.asarray(y)
    if y.dtype not in (np.float32, np.float64):
        y = y.astype(np.float32)
    if y.ndim != 1:
        raise DataError(f"expected a mono signal (1-D), got shape {y.shape}")
    if len(y) < config.n_fft:
        raise DataError(f"signal of {len(y)} samples is shorter than one frame ({config.n_fft})")
    if not np.isfinite(y).all():
        raise DataError("signal contains NaN or infinite samples")
    return y
