"""The log-mel segments written to disk as they are extracted, never held whole in memory.

1000 tracks of log-mels are ~330 MB (float16) and 100k tracks ~33 GB, so featurize appends each
track's segments to a raw file while extraction goes on and then lays them out as one .npy, copied
over in bounded blocks. Readers open it with
`np.load(path, mmap_mode="r")` and page in only the segments they touch.
"""

from __future__ import annotations

import os
import shutil
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
        """Write the .npy (np.save's header, then the raw bytes copied in blocks); return its shape. Plain
        reads and writes, not a memmap: a mapped file's touched pages would count as the process's RSS."""
        if self._handle is None:
            raise RuntimeError(f"{self.target}: log-mel writer already finished")
        self._handle.close()
        self._handle = None
        shape = (len(self.rows), *self.segment_shape)
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": shape}
        with open(self.raw_path, "rb") as raw, open(self.target, "wb") as out:
            np.lib.format.write_array_header_1_0(out, header)  # what np.save writes for this array
            shutil.copyfileobj(raw, out, COPY_BLOCK_BYTES)
        os.unlink(self.raw_path)
        return shape
