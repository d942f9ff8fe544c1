"""Evaluate's cross-validation phases: locally each phase runs in worker processes of its own, so the
workers that loaded TensorFlow for the deep models are gone before the other models' fits start."""

from __future__ import annotations

import os

from joblib import delayed

from stages.evaluate import run_phases


def tagged_pid(tag: str) -> tuple[str, int]:
    return tag, os.getpid()


def test_each_phase_gets_fresh_workers_and_results_keep_their_order(params):
    local = {**params, "orchestration": {**params["orchestration"], "task_runner": "local"}}
    tags = [[f"deep{i}" for i in range(4)], [], [f"other{i}" for i in range(4)]]
    results = run_phases([[delayed(tagged_pid)(tag) for tag in phase] for phase in tags], params=local, n_jobs=2)
    assert [tag for tag, _ in results] == [tag for phase in tags for tag in phase]
    first, second = {pid for _, pid in results[:4]}, {pid for _, pid in results[4:]}
    assert os.getpid() not in first | second and not first & second
