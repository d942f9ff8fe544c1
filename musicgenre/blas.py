"""One BLAS thread around the project's small matrix products.

A track's matrices are too small for BLAS threads to pay off, and idle OpenBLAS threads spin after a
product, slowing whatever runs next on the same cores (the feature extractor and the tagger's ONNX
network both measured it). The count also fixes the summation order, so results do not depend on it.
threadpoolctl is imported on first use only: the serving path stays light.
"""

from __future__ import annotations

import functools
from contextlib import AbstractContextManager
from typing import Any


@functools.cache
def _controller() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()  # inspects the loaded libraries once; limit() is then ~3 us


def single_blas_thread() -> AbstractContextManager[Any]:
    """A context in which BLAS runs on one thread (threadpoolctl: one thread at a time may set it)."""
    return _controller().limit(limits=1, user_api="blas")
