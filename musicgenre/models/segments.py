"""The deep models' inputs, streamed: log-mel segments gathered batch by batch from the tracks' arrays
(memory-mapped views of logmel.npy when they come from the feature table), per-band statistics
accumulated chunk by chunk, and the numpy augmentations of the log-mel (SpecAugment masks, mixup).

Nothing here holds all segments in RAM as float32: a batch is the largest array built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..extraction import TrackFeatures
from .predictor import require_segments


@dataclass(frozen=True)
class SegmentRows:
    """Where every segment of a list of tracks lives: (track position, segment position) per row."""

    track: np.ndarray  # int: the item each row belongs to
    segment: np.ndarray  # int: the row's segment inside that item's log-mel array
    counts: list[int]  # segments per track, in item order (for the mean over a track's segments)

    @classmethod
    def of(cls, items: list[TrackFeatures]) -> "SegmentRows":
        counts = [len(item.classic()[2]) for item in items]
        require_segments(items=items, counts=counts)
        track = np.repeat(np.arange(len(items)), counts)
        segment = np.concatenate([np.arange(count) for count in counts])
        return cls(track=track, segment=segment, counts=counts)

    def __len__(self) -> int:
        return len(self.track)


def gather(*, items: list[TrackFeatures], rows: SegmentRows, positions: np.ndarray) -> np.ndarray:
    """(len(positions), mel, frames) float32: only these rows are read (a memmap view reads only them)."""
    return np.stack([np.asarray(items[rows.track[p]].classic()[2][rows.segment[p]], np.float32) for p in positions])


def band_statistics(
    *, items: list[TrackFeatures], rows: SegmentRows, chunk: int, floor: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-mel-band mean and std over every frame of every segment, one chunk of segments at a time.
    Chunks are merged with Chan's parallel update in float64, so the result does not depend on the
    chunk size beyond rounding and no float32 copy of all segments is made."""
    count, mean, m2 = 0, None, None
    for start in range(0, len(rows), chunk):
        block = gather(items=items, rows=rows, positions=np.arange(start, min(start + chunk, len(rows))))
        values = block.astype(np.float64).transpose(1, 0, 2).reshape(block.shape[1], -1)  # (mel, n)
        n, block_mean = values.shape[1], values.mean(axis=1)
        block_m2 = ((values - block_mean[:, None]) ** 2).sum(axis=1)
        if mean is None or m2 is None:
            count, mean, m2 = n, block_mean, block_m2
            continue
        delta, total = block_mean - mean, count + n
        mean = mean + delta * n / total
        m2 = m2 + block_m2 + delta**2 * count * n / total
        count = total
    assert mean is not None and m2 is not None  # require_segments guarantees one row
    return mean, np.sqrt(m2 / count) + floor


def spans(*, n: int, size: int, masks: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """(n, size) bool: per row, `masks` random spans of 0..width consecutive positions."""
    positions, hidden = np.arange(size), np.zeros((n, size), bool)
    for _ in range(masks):
        widths = rng.integers(0, width + 1, size=n)
        starts = rng.integers(0, np.maximum(size - widths, 1))
        hidden |= (positions >= starts[:, None]) & (positions < (starts + widths)[:, None])
    return hidden


def spec_augment(batch: np.ndarray, *, rng: np.random.Generator, augment: dict[str, Any]) -> np.ndarray:
    """SpecAugment (Park et al. 2019) on standardised (n, mel, frames) segments: `freq_masks` bands of up
    to `freq_width` mel bins and `time_masks` spans of up to `time_width` frames set to 0 (the band mean
    after standardisation), drawn per segment: the network must not lean on one band or moment."""
    n, mels, frames = batch.shape
    freq = spans(n=n, size=mels, masks=augment["freq_masks"], width=augment["freq_width"], rng=rng)
    time = spans(n=n, size=frames, masks=augment["time_masks"], width=augment["time_width"], rng=rng)
    return np.where(freq[:, :, None] | time[:, None, :], np.float32(0.0), batch)


def mixup(
    x: np.ndarray, y: np.ndarray, w: np.ndarray, *, rng: np.random.Generator, alpha: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mixup (Zhang et al. 2018): each segment blended with a random partner of the batch, targets and
    weights alike, lambda ~ Beta(alpha, alpha) per segment; alpha 0 leaves the batch unchanged."""
    if alpha <= 0:
        return x, y, w
    lam = rng.beta(alpha, alpha, size=len(x)).astype(np.float32)
    partner = rng.permutation(len(x))
    mix = lam.reshape(-1, *([1] * (x.ndim - 1)))
    return (
        mix * x + (1 - mix) * x[partner],
        lam[:, None] * y + (1 - lam[:, None]) * y[partner],
        lam * w + (1 - lam) * w[partner],
    )
