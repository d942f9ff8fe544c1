"""Heap tuning for the per-track numpy temporaries of feature extraction.

Each track allocates and frees spectrogram-sized arrays (1-11 MB). glibc serves blocks that large
with mmap and unmaps them on free, so the next track's arrays start as untouched pages and pay a
page fault per 4 KB: measured 4-7 ms of a ~42 ms extraction. Raising the mmap threshold keeps those
blocks in the heap, where the next track reuses them already mapped. The cost is that a worker's
resident memory stays at its peak (tens of MB) instead of shrinking between tracks."""

from __future__ import annotations

import ctypes
import functools

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, glibc's malloc.h
HEAP_BLOCK_LIMIT_MB = 32  # glibc's largest mmap threshold on 64-bit; above it blocks are still mmapped
HEAP_TRIM_THRESHOLD_MB = 256  # free heap kept before glibc gives memory back to the system


@functools.cache
def keep_freed_buffers() -> bool:
    """Tell glibc to keep freed large blocks for reuse (once per process); False off glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (macOS, musl): the allocator's defaults stay
        return False
    return bool(
        libc.mallopt(M_MMAP_THRESHOLD, HEAP_BLOCK_LIMIT_MB << 20)
        and libc.mallopt(M_TRIM_THRESHOLD, HEAP_TRIM_THRESHOLD_MB << 20)
    )
