"""A throw-away copy of the project (code, dvc.yaml, params.yaml) on a small real GTZAN slice,
for integration tests that run real DVC, Prefect or stage code without touching the checkout."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from musicgenre.config import PROJECT_ROOT

COPIED = (
    "musicgenre",
    "stages",
    "flows",
    "monitoring",
    "dvc.yaml",
    "params.yaml",
    ".dvcignore",
    "prefect.yaml",
    "docs/model_search.json",  # an evaluate dep (make transfer-search's nested estimates)
)


def make_source(tracks: pd.DataFrame, folder: Path) -> Path:
    """A GTZAN-layout folder (genres/<genre>/<file>) holding copies of the given real tracks."""
    for path in tracks["abs_path"]:
        target = folder / "genres" / Path(path).parent.name / Path(path).name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return folder


def make_workspace(folder: Path, *, source: Path, overrides: dict[str, Any] | None = None) -> Path:
    """Copy the project into `folder`, point data.source at `source`, apply `overrides`
    ({"features.n_jobs": 1, ...}), and make it a git + DVC repo with a local remote."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        origin = PROJECT_ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, folder / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif origin.exists():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, folder / name)
    params = yaml.safe_load((folder / "params.yaml").read_text())
    params["data"]["source"] = os.path.relpath(source, folder)
    for dotted, value in (overrides or {}).items():
        *parents, leaf = dotted.split(".")
        node = params
        for key in parents:
            node = node[key]
        node[leaf] = value
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for command in (
        ["git", "init", "-q"],
        ["git", "config", "user.email", "ci@localhost"],
        ["git", "config", "user.name", "ci"],
    ):
        subprocess.run(command, cwd=folder, check=True)
    for args in (
        ["init", "-q"],
        ["config", "core.check_update", "false"],
        ["config", "core.analytics", "false"],
        ["remote", "add", "-d", "local", str(folder.parent / "dvc-remote")],
    ):
        run_dvc(folder, *args)
    return folder


def local_registry(params: dict[str, Any], root: Path) -> tuple[str, dict[str, Any]]:
    """A sqlite MLflow registry under `root` and params pointing at it (never the project's mlflow.db)."""
    local = copy.deepcopy(params)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    local["register"].update(tracking_uri=uri, artifact_dir=str(root / "mlartifacts"), report_dir=str(root / "reports"))
    return uri, local


def run_dvc(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the venv's DVC in `folder`; raise with its output if it fails."""
    env = {
        **os.environ,
        "MUSICGENRE_ROOT": str(folder),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=folder, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result
