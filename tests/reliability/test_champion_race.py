"""A protected champion, with real MLflow on sqlite: a worse model or a failed registration never
moves the alias; two processes registering at once leave one consistent champion and log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from musicgenre.registry import register
from tests.helpers import write_model
from tests.workspace import local_registry

pytestmark = pytest.mark.slow
READY_TIMEOUT_S = 180  # both racers import mlflow first (slow on a busy host)

RACER = """
import json, sys, time
from pathlib import Path
import yaml
from musicgenre.registry import register
model_dir, scores, params, ready, go = sys.argv[1:6]
Path(ready).touch()
while not Path(go).exists():  # start line: both processes register at the same moment
    time.sleep(0.01)
record = register(model_dir=Path(model_dir), scores=json.loads(Path(scores).read_text()),
                  params=yaml.safe_load(Path(params).read_text()))
print(json.dumps(record))
"""


def champion(*, uri: str, params: dict):
    settings = params["register"]
    return MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version_by_alias(
        settings["model_name"], settings["alias"]
    )


def test_worse_model_and_failed_registration_never_move_the_champion(registry, monkeypatch):
    from musicgenre.models.data import load_tables

    uri, params = registry["uri"], registry["params"]
    before = champion(uri=uri, params=params)
    root = registry["root"]
    worse_dir, worse = write_model(
        params=params, tables=load_tables(params=params), root=root / "worse", name="chance", shuffle_labels=True
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    record = register(model_dir=worse_dir, scores=worse, params=params)
    assert record["decision"] == "kept previous champion" and record["challenger_score"] < record["previous_score"]
    assert str(champion(uri=uri, params=params).version) == str(before.version)
    log_path = Path(params["register"]["report_dir"]) / "promotions.jsonl"
    decisions = log_path.read_text().splitlines()
    broken = {"valid": {k: v for k, v in worse["valid"].items() if k != params["register"]["metric"]}}
    with pytest.raises(KeyError):  # a run whose evaluation failed to produce the metric
        register(model_dir=worse_dir, scores=broken, params=params)
    (worse_dir / "meta.json").unlink()  # a training run that died before writing its model card
    with pytest.raises(FileNotFoundError):
        register(model_dir=worse_dir, scores=worse, params=params)
    assert str(champion(uri=uri, params=params).version) == str(before.version)
    assert log_path.read_text().splitlines() == decisions  # failures append no decision
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    newest = max(
        client.search_model_versions(f"name='{params['register']['model_name']}'"), key=lambda v: int(v.version)
    )
    assert "promotion" not in newest.tags  # the version the failed run created is never promoted


def test_two_registrations_racing_leave_one_consistent_champion(registry, tmp_path):
    from musicgenre.models.data import load_tables

    uri, params = local_registry(registry["params"], tmp_path)
    tables = load_tables(params=params)
    racers = {}
    for name, shuffle in (("lr", False), ("chance", True)):
        model_dir, scores = write_model(
            params=params, tables=tables, root=tmp_path / "models", name=name, shuffle_labels=shuffle
        )
        (tmp_path / f"{name}.json").write_text(json.dumps(scores))
        racers[name] = (model_dir, scores)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    go = tmp_path / "go"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    processes = {
        name: subprocess.Popen(
            [
                sys.executable,
                "-c",
                RACER,
                str(model_dir),
                str(tmp_path / f"{name}.json"),
                str(tmp_path / "params.yaml"),
                str(tmp_path / f"{name}.ready"),
                str(go),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, (model_dir, _) in racers.items()
    }
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not all((tmp_path / f"{name}.ready").exists() for name in racers) and time.monotonic() < deadline:
        time.sleep(0.05)
    go.touch()
    outputs = {name: process.communicate(timeout=READY_TIMEOUT_S) for name, process in processes.items()}
    for name, process in processes.items():
        assert process.returncode == 0, f"{name}: {outputs[name][1][-2000:]}"
    records = {name: json.loads(out.strip().splitlines()[-1]) for name, (out, _) in outputs.items()}
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    model_name, metric = params["register"]["model_name"], params["register"]["metric"]
    versions = client.search_model_versions(f"name='{model_name}'")
    assert sorted(str(v.version) for v in versions) == ["1", "2"]  # both registered, no lost or duplicate version
    best = max(racers, key=lambda name: racers[name][1]["valid"][metric])
    current = champion(uri=uri, params=params)
    assert str(current.version) == records[best]["challenger_version"] and current.tags["model"] == best
    aliases = client.get_registered_model(model_name).aliases
    assert {k: str(v) for k, v in aliases.items()} == {params["register"]["alias"]: str(current.version)}
    log = [json.loads(line) for line in (tmp_path / "reports" / "promotions.jsonl").open()]
    assert len(log) == 2 and log[0]["previous_version"] is None and log[0]["decision"] == "promoted"
    assert log[1]["previous_version"] == log[0]["challenger_version"]  # the second saw the first: serialised
    assert [r for r in log if r["decision"] == "promoted"][-1]["challenger_version"] == str(current.version)
    for version in versions:
        decision = next(r["decision"] for r in log if r["challenger_version"] == str(version.version))
        assert version.tags["promotion"] == decision
