"""dvc.yaml tells the truth: every project module a stage's command imports (transitively, read with
`ast`) is one of its deps, so a code change re-runs exactly the stages it can affect."""

from __future__ import annotations

import re

import pytest
import yaml

from musicgenre.config import PROJECT_ROOT
from tests.imports import closure, module_file

DVC = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
CODE = ("musicgenre", "stages")  # the code a stage runs (flows and monitoring drive, they are never run by DVC)


def stage_body(name: str) -> dict:
    return DVC[name].get("do", DVC[name])


def covered(path: str, deps: list[str]) -> bool:
    """A dep names the file or a folder holding it."""
    return any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in deps)


def imported_files(cmd: str) -> set[str]:
    module = re.fullmatch(r"python -m ([\w.]+)( .*)?", cmd)
    assert module, f"not a `python -m` command: {cmd}"
    return {
        module_file(name).relative_to(PROJECT_ROOT).as_posix()
        for name in closure(module.group(1))
        if name.split(".")[0] in CODE
    }


@pytest.mark.parametrize("name", sorted(DVC))
def test_every_imported_project_module_is_a_dep(name):
    body = stage_body(name)
    deps = [dep for dep in body["deps"] if isinstance(dep, str)]
    files = imported_files(body["cmd"])
    assert f"{body['cmd'].split()[2].replace('.', '/')}.py" in files  # the stage's own module
    assert sorted(path for path in files if not covered(path, deps)) == []


def test_folder_deps_cover_their_files_and_the_closure_is_transitive():
    assert covered("musicgenre/models/deep.py", ["musicgenre/models"])
    assert not covered("musicgenre/modelsx.py", ["musicgenre/models"])
    files = imported_files("python -m stages.evaluate")  # evaluate -> crossval -> models -> predictor
    assert {"musicgenre/crossval.py", "musicgenre/models/predictor.py", "musicgenre/splits.py"} <= files


def test_no_stage_reads_an_output_that_is_not_reproducible():
    """GX data docs (the `gx` outs) carry run ids and times: a report for people, never another stage's input."""
    gx_outs = {
        out
        for body in map(stage_body, DVC)
        for out in body.get("outs", [])
        if isinstance(out, str) and out.endswith("/gx")
    }
    assert gx_outs
    for name in DVC:
        deps = [dep for dep in stage_body(name)["deps"] if isinstance(dep, str)]
        assert not [dep for dep in deps for out in gx_outs if dep.startswith(out) or out.startswith(dep)], name
