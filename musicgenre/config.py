"""Access to params.yaml, the single source of settings."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PARAMS_ENV = "MUSICGENRE_PARAMS"


def params_path() -> Path:
    return Path(os.environ.get(PARAMS_ENV, PROJECT_ROOT / "params.yaml"))


def load_params(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Read params.yaml (or `path`, or $MUSICGENRE_PARAMS) as a plain dict."""
    with open(path or params_path(), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def resolve(path: str | os.PathLike, root: Path = PROJECT_ROOT) -> Path:
    """A params path is relative to the project root unless absolute."""
    candidate = Path(path)
    return candidate if candidate.is_absolute() else root / candidate
