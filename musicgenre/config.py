"""Access to params.yaml, the single source of settings."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

PARAMS_ENV = "MUSICGENRE_PARAMS"
ROOT_ENV = "MUSICGENRE_ROOT"


def project_root() -> Path:
    """$MUSICGENRE_ROOT, else the nearest folder above the working directory holding dvc.yaml and
    params.yaml (DVC runs stages there), else the checkout this package lives in."""
    if os.environ.get(ROOT_ENV):
        return Path(os.environ[ROOT_ENV]).resolve()
    for folder in (Path.cwd(), *Path.cwd().parents):
        if (folder / "dvc.yaml").is_file() and (folder / "params.yaml").is_file():
            return folder
    return Path(__file__).resolve().parent.parent


PROJECT_ROOT = project_root()  # at import time; code that may run in another workspace calls project_root()


def params_path() -> Path:
    return Path(os.environ.get(PARAMS_ENV, project_root() / "params.yaml"))


def load_params(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Read params.yaml (or `path`, or $MUSICGENRE_PARAMS) as a plain dict."""
    with open(path or params_path(), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def resolve(path: str | os.PathLike, root: Path | None = None) -> Path:
    """A params path is relative to the project root unless absolute."""
    candidate = Path(path)
    return candidate if candidate.is_absolute() else (root or project_root()) / candidate
