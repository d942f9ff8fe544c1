"""The project's errors: one root, so every entry point can tell "what the user must fix" from a bug.

A GenreError (or an OSError / ValueError from reading a path or a setting) is reported by the command
lines as one line naming what is wrong and exits 1; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


class GenreError(Exception):
    """Root of the project's own errors; the message says what is wrong and, where possible, the fix."""


class ConfigError(GenreError, ValueError):
    """A setting (params.yaml, a config dataclass) is out of its valid range."""


class DataError(GenreError, ValueError):
    """Input data cannot be used as it is (no audio found, too few tracks to split, ...)."""


class MissingInputError(GenreError, FileNotFoundError):
    """A file or folder the step needs does not exist."""


class RegistryError(GenreError, LookupError):
    """The model registry has no model (or alias) to serve; the message says which and where."""


class ToolError(GenreError, RuntimeError):
    """An external tool the project drives (DVC) failed; the message carries its own output."""


def require(condition: bool, message: str) -> None:
    """Raise ConfigError(message) unless `condition`: the settings check of a config dataclass."""
    if not condition:
        raise ConfigError(message)


# What a user's input, settings or environment can cause: reported in one line, never as a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (GenreError, OSError, ValueError)
MESSAGE_CHARS = 500  # a one-line report stays readable; the full text is in the exception


def one_line(exc: BaseException) -> str:
    """The error as one line: its message flattened (type name when it has none), at most MESSAGE_CHARS."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if not isinstance(exc, GenreError) and type(exc).__name__ not in text:
        text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 3] + "..."


@contextmanager
def reported(prefix: str, *, code: int = 1) -> Iterator[None]:
    """Turn a USER_ERRORS exception raised in the block into `<prefix>: <reason>` on stderr and exit `code`."""
    try:
        yield
    except USER_ERRORS as exc:
        print(f"{prefix}: {one_line(exc)}", file=sys.stderr)
        raise SystemExit(code) from None
