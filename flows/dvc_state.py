"""What DVC knows about the pipeline: its stages in DAG layers, whether one is up to date, and
recording a stage's outputs in dvc.lock after the flow ran it in-process (as `dvc repro` would)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import networkx as nx
from dvc.lock import LockError
from dvc.repo import Repo
from dvc.stage import PipelineStage

# DVC takes a repo-wide lock; stage tasks run in threads, so they take turns on DVC calls.
_DVC_LOCK = threading.Lock()


def stage_layers(root: Path) -> list[list[str]]:
    """dvc.yaml stages in topological layers (stages of one layer are independent), `.dvc` imports left out."""
    with _DVC_LOCK, Repo(str(root)) as repo:
        graph = repo.index.graph.reverse()  # DVC's edges point from a stage to what it depends on
        layers = [
            sorted(stage.name for stage in layer if isinstance(stage, PipelineStage))
            for layer in nx.topological_generations(graph)
        ]
    return [layer for layer in layers if layer]


def _dvc(root: Path, *args: str) -> str:
    """The DVC CLI in `root` (its own process: DVC resolves targets against the working directory)."""
    with _DVC_LOCK:
        result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, capture_output=True, text=True)
    if result.returncode != 0:
        message = f"`dvc {' '.join(args)}` failed in {root}: {(result.stderr or result.stdout).strip()[-1500:]}"
        raise LockError(message) if "lock" in result.stderr.lower() else RuntimeError(message)
    return result.stdout


def changes(root: Path, stage: str) -> dict:
    """`dvc status --json <stage>`: empty when its deps, params and outs match dvc.lock."""
    return json.loads(_dvc(root, "status", "--json", stage) or "{}")


def commit(root: Path, stage: str) -> None:
    """`dvc commit --force <stage>`: hash the outputs into the cache and write the stage's dvc.lock entry."""
    _dvc(root, "commit", "--force", "--quiet", stage)


def describe(changes: dict) -> str:
    """`dvc status` output in one line: 'changed deps: a, b; changed outs: c'."""
    parts: dict[str, list[str]] = {}
    for entries in changes.values():
        for entry in entries:
            for kind, paths in entry.items() if isinstance(entry, dict) else [("changed", {entry: ""})]:
                parts.setdefault(kind, []).extend(paths)
    return "; ".join(f"{kind}: {', '.join(paths)}" for kind, paths in parts.items())
