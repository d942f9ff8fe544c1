"""Bring the GTZAN source under DVC: `data.dvc` imports it (dvc import-url) into data/gtzan.

On a fresh clone the data comes from the DVC remote when it holds it, else from the source
recorded in data.dvc (`dvc update`); a configured source other than the recorded one re-imports.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from .config import project_root, resolve
from .errors import MissingInputError, ToolError

SOURCE_ENV = "GTZAN_SOURCE"
DATA_DVC = "data.dvc"


def configured_source(params: dict[str, Any]) -> Path:
    return resolve(os.environ.get(SOURCE_ENV) or params["data"]["source"]).resolve()


def read_data_dvc(root: Path | None = None) -> dict[str, Any] | None:
    """The data.dvc import stage (deps: the source; outs: data/gtzan with its DVC hash), if any."""
    data_dvc = (root or project_root()) / DATA_DVC
    return yaml.safe_load(data_dvc.read_text(encoding="utf-8")) if data_dvc.is_file() else None


def recorded_source(root: Path | None = None) -> Path | None:
    root = root or project_root()
    stage = read_data_dvc(root)
    return (root / stage["deps"][0]["path"]).resolve() if stage else None


def sync(params: dict[str, Any], root: Path | None = None) -> str:
    """Make data/gtzan match data.dvc, importing a new source if one is configured. Returns what it did."""
    root = root or project_root()
    source = configured_source(params)
    if not source.exists():
        raise MissingInputError(f"GTZAN source {source} does not exist (set data.source or ${SOURCE_ENV})")
    if recorded_source(root) != source:
        _import(source, params["paths"]["raw"], root)
        return f"imported {source}"
    if _dvc(root, "status", "--quiet", DATA_DVC, check=False).returncode == 0:
        return "up to date"
    if _dvc(root, "pull", "--quiet", DATA_DVC, check=False).returncode == 0:
        return "pulled from the DVC remote"
    _dvc(root, "update", "--quiet", DATA_DVC)
    return f"copied from {source}"


def _import(source: Path, raw: str, root: Path) -> None:
    """dvc import-url names its file after the output; keep the project's name data.dvc, source relative."""
    (root / raw).parent.mkdir(parents=True, exist_ok=True)
    data_dvc = root / DATA_DVC
    previous = data_dvc.read_text(encoding="utf-8") if data_dvc.is_file() else None
    data_dvc.unlink(missing_ok=True)  # import-url refuses an output another .dvc file (the old import) tracks
    try:
        _dvc(root, "import-url", "--force", str(source), raw)
    except ToolError:
        if previous is not None:  # the old import stays recorded when the new one fails
            data_dvc.write_text(previous, encoding="utf-8")
        raise
    generated = root / f"{raw}.dvc"
    stage = yaml.safe_load(generated.read_text(encoding="utf-8"))
    stage["deps"][0]["path"] = os.path.relpath(source, root)
    stage["outs"][0]["path"] = raw
    stage.pop("md5", None)
    (root / DATA_DVC).write_text(yaml.safe_dump(stage, sort_keys=False), encoding="utf-8")
    generated.unlink()
    _dvc(root, "commit", "--force", "--quiet", DATA_DVC)


def _dvc(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "dvc", *args]
    result = subprocess.run(command, cwd=root, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise ToolError(f"`dvc {' '.join(args)}` failed in {root}: {result.stderr.strip()[-2000:]}")
    return result
