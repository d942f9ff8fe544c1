"""What DVC knows about the pipeline: its stages in DAG layers, whether one is up to date, and
recording a stage's outputs in dvc.lock after the flow ran it in-process (as `dvc repro` would)."""
from __future__ import annotations

import threading
from pathlib import Path

import networkx as nx
from dvc.repo import Repo
from dvc.stage import PipelineStage

# DVC takes a repo-wide lock; stage tasks run in threads, so they take turns on DVC calls.
_DVC_LOCK = threading.Lock()


def stage_layers(root: Path) -> list[list[str]]:
    """dvc.yaml stages in topological layers (stages of one layer are independent), `.dvc` imports left out."""
    with _DVC_LOCK, Repo(str(root)) as repo:
        graph = repo.index.graph.reverse()  # DVC's edges point from a stage to what it depends on
        layers = [sorted(stage.name for stage in layer if isinstance(stage, PipelineStage))
                  for layer in nx.topological_generations(graph)]
    return [layer for layer in layers if layer]


def _target(root: Path, stage: str) -> str:
    """An absolute `dvc.yaml:stage` target: DVC resolves bare names against the working directory."""
    return f"{Path(root).resolve() / 'dvc.yaml'}:{stage}"


def changes(root: Path, stage: str) -> dict:
    """`dvc status <stage>`: empty when its deps, params and outs match dvc.lock."""
    with _DVC_LOCK, Repo(str(root)) as repo:
        return repo.status(targets=[_target(root, stage)])


def commit(root: Path, stage: str) -> None:
    """`dvc commit --force <stage>`: hash the outputs into the cache and write the stage's dvc.lock entry."""
    with _DVC_LOCK, Repo(str(root)) as repo:
        repo.commit(_target(root, stage), force=True)


def pipeline_status(root: Path) -> dict:
    """`dvc status` of the whole project (pipeline stages and data.dvc)."""
    with _DVC_LOCK, Repo(str(root)) as repo:
        return repo.status()


def describe(changes: dict) -> str:
    """`dvc status` output in one line: 'changed deps: a, b; changed outs: c'."""
    parts: dict[str, list[str]] = {}
    for entries in changes.values():
        for entry in entries:
            for kind, paths in (entry.items() if isinstance(entry, dict) else [("changed", {entry: ""})]):
                parts.setdefault(kind, []).extend(paths)
    return "; ".join(f"{kind}: {', '.join(paths)}" for kind, paths in parts.items())
