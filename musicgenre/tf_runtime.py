"""TensorFlow, imported without its start-up chatter on the user's terminal.

At import, TensorFlow's C++ runtime writes notices to stderr (oneDNN is on, the CPU features it was
not built for) before any log level applies, so `predict song.mp3` printed seven lines of them above
its table. They are informational only; stderr is pointed at /dev/null for the import alone, and a
failed import still raises its Python exception with the reason."""

from __future__ import annotations

import contextlib
import functools
import os
from types import ModuleType
from typing import Iterator

LOG_LEVEL = "2"  # TF_CPP_MIN_LOG_LEVEL: warnings and errors of the C++ runtime still show after import


@functools.cache
def tensorflow() -> ModuleType:
    """The tensorflow module, imported once with its import-time stderr notices dropped."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", LOG_LEVEL)
    with _stderr_discarded():
        import tensorflow
    return tensorflow


@contextlib.contextmanager
def _stderr_discarded() -> Iterator[None]:
    """File descriptor 2 to /dev/null (C++ writes bypass sys.stderr), restored afterwards."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
