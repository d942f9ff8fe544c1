"""The deep models' inputs stream from disk: memory-mapped log-mel views gathered batch by batch give
exactly the in-memory float32 segments, and the chunked per-band statistics equal numpy's over the whole
stack. No TensorFlow and no pipeline artifact: a small logmel.npy written here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from musicgenre.extraction import TrackFeatures
from musicgenre.models.data import segment_rows
from musicgenre.models.segments import SegmentRows, band_statistics, gather, mixup, spec_augment

AUGMENT = {"freq_masks": 2, "freq_width": 3, "time_masks": 2, "time_width": 4, "mixup_alpha": 0.2}


@pytest.fixture
def stored(tmp_path):
    """A float16 (segments, mel, frames) stack on disk, memory-mapped, and its index of 3 tracks."""
    rng = np.random.default_rng(0)
    stack = (rng.normal(-20, 8, size=(7, 6, 5)) + np.arange(6)[None, :, None]).astype(np.float16)
    np.save(tmp_path / "logmel.npy", stack)
    index = pd.DataFrame({"track": ["a"] * 3 + ["b"] * 1 + ["c"] * 3, "segment": [0, 1, 2, 0, 0, 1, 2]})
    return stack, np.load(tmp_path / "logmel.npy", mmap_mode="r"), index


def items_of(logmel: np.ndarray, index: pd.DataFrame) -> list[TrackFeatures]:
    rows = index.groupby("track").indices
    return [
        TrackFeatures(
            key=t,
            track_vector=np.zeros(1),
            segment_vectors=np.zeros((len(r), 1)),
            log_mels=segment_rows(logmel=logmel, rows=r),
        )
        for t, r in rows.items()
    ]


def test_memmap_views_read_lazily_and_gather_the_in_memory_segments(stored):
    stack, mapped, index = stored
    items = items_of(mapped, index)
    assert all(isinstance(item.log_mels, np.memmap) for item in items)  # views, nothing read yet
    rows = SegmentRows.of(items)
    assert rows.counts == [3, 1, 3] and len(rows) == len(stack)
    order = np.array([6, 0, 3, 2])
    batch = gather(items=items, rows=rows, positions=order)
    assert batch.dtype == np.float32
    np.testing.assert_array_equal(batch, stack[order].astype(np.float32))


def test_streamed_band_statistics_equal_the_whole_stack(stored):
    stack, mapped, index = stored
    items = items_of(mapped, index)
    whole = stack.astype(np.float32)
    for chunk in (1, 3, 100):
        mean, std = band_statistics(items=items, rows=SegmentRows.of(items), chunk=chunk, floor=0.0)
        np.testing.assert_allclose(mean, whole.mean(axis=(0, 2)), rtol=1e-6)
        np.testing.assert_allclose(std, whole.std(axis=(0, 2)), rtol=1e-5)


def test_augmentations_keep_shapes_and_mix_targets(stored):
    stack, _, _ = stored
    rng = np.random.default_rng(1)
    x = stack.astype(np.float32)
    masked = spec_augment(x, rng=rng, augment=AUGMENT)
    assert masked.shape == x.shape and (masked == 0).any() and not (x == 0).any()
    y, w = np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1, 2, 0]], np.ones(7, np.float32)
    mixed_x, mixed_y, mixed_w = mixup(x, y, w, rng=rng, alpha=AUGMENT["mixup_alpha"])
    assert mixed_x.shape == x.shape
    np.testing.assert_allclose(mixed_y.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(mixed_w, 1.0, rtol=1e-6)
    assert mixup(x, y, w, rng=rng, alpha=0.0)[0] is x
