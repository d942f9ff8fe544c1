"""The log-mel segments written to disk as they are extracted, never held whole in memory.

1000 tracks of log-mels are ~330 MB (float16) and 100k tracks ~33 GB, so featurize appends each
track's segments to a raw file while extraction goes on and then lays them out as one .npy, copied
over in bounded blocks through np.lib.format.open_memmap. Readers open it with
`np.load(path, mmap_mode="r")` and page in only the segments they touch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

import numpy as np

COPY_BLOCK_BYTES = 64 << 20  # raw -> .npy copy block: bounds the finishing step's memory


class LogMelWriter:
    """Appends (segments, n_mels, frames) blocks to a raw temp file beside the target; `finish` writes
    the .npy (the target path must be inside a folder published atomically, e.g. io.atomic_dir)."""

    def __init__(self, *, target: Path, n_mels: int, frames: int, dtype: str):
        self.target, self.dtype = Path(target), np.dtype(dtype)
        self.segment_shape = (n_mels, frames)
        self.raw_path = self.target.with_name(f".{self.target.name}.raw")
        self.rows: list[tuple[str, int]] = []
        self._handle: BinaryIO | None = open(self.raw_path, "wb")

    def add(self, *, key: str, log_mels: np.ndarray) -> None:
        """One track's segments, in the order the index will list them."""
        if tuple(log_mels.shape[1:]) != self.segment_shape:
            raise ValueError(f"{key}: log-mel segments of shape {log_mels.shape[1:]}, expected {self.segment_shape}")
        if self._handle is None:
            raise RuntimeError(f"{self.target}: log-mel writer already finished")
        self._handle.write(np.ascontiguousarray(log_mels, dtype=self.dtype).tobytes())
        self.rows += [(key, segment) for segment in range(len(log_mels))]

    def finish(self) -> tuple[int, ...]:
        """Write the .npy from the raw file in blocks; return its shape."""
        if self._handle is None:
            raise RuntimeError(f"{self.target}: log-mel writer already finished")
        self._handle.close()
        self._handle = None
        shape = (len(self.rows), *self.segment_shape)
        per_segment = int(np.prod(self.segment_shape)) * self.dtype.itemsize
        block = max(1, COPY_BLOCK_BYTES // per_segment)
        raw = np.memmap(self.raw_path, dtype=self.dtype, mode="r", shape=shape) if shape[0] else None
        out = np.lib.format.open_memmap(self.target, mode="w+", dtype=self.dtype, shape=shape)
        for start in range(0, shape[0], block):
            out[start : start + block] = raw[start : start + block]  # type: ignore[index]
        out.flush()
        del out, raw
        os.unlink(self.raw_path)
        return shape
