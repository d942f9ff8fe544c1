"""The one stage table (stages/table.py) against dvc.yaml, the flow's use of it, and the stage CLI's
one-line output and one-line failures."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys

import pytest
import yaml

from flows.training import StageFailed, stage_function
from musicgenre.config import PROJECT_ROOT
from musicgenre.errors import ConfigError
from stages._cli import StageError, execute, headline
from stages.table import STAGES, lookup

DVC_STAGES = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


def test_every_dvc_stage_has_one_row_and_dvc_runs_its_module():
    assert set(STAGES) == set(DVC_STAGES)
    for name, entry in DVC_STAGES.items():
        stage, body = STAGES[name], entry.get("do", entry)
        assert ("foreach" in entry) == (stage.foreach is not None), name
        expected = f"python -m {stage.module}" + (f" --{stage.foreach} ${{item}}" if stage.foreach else "")
        assert body["cmd"] == expected, name


@pytest.mark.parametrize("name", sorted(STAGES))
def test_each_row_names_a_function_of_its_module_taking_params(name):
    stage = STAGES[name]
    source = (PROJECT_ROOT / f"{stage.module.replace('.', '/')}.py").read_text(encoding="utf-8")
    function_name = stage.target.partition(":")[2]
    assert re.search(rf"^def {function_name}\(params: dict\[str, Any\]", source, re.MULTILINE), stage.target
    if stage.foreach:  # the foreach item arrives as this keyword-only argument
        assert re.search(
            rf"^def {function_name}\(params: dict\[str, Any\], \*, {stage.foreach}: str", source, re.MULTILINE
        ), stage.target


def test_the_flow_binds_the_foreach_item_and_refuses_unknown_stages(params):
    bound = stage_function("train@svm", params)
    assert bound.func is STAGES["train"].function() and bound.keywords == {"model": "svm"}
    assert stage_function("split", params) is STAGES["split"].function()
    assert inspect.signature(stage_function("featurize", params)).parameters["extractor"].default is not None
    with pytest.raises(StageFailed, match="stage nope failed: stage 'nope' is not in stages.table"):
        stage_function("nope", params)
    with pytest.raises(ConfigError, match="a foreach stage"):
        lookup("train")


def test_headlines_tell_counts_metric_time_and_place():
    split = {"split_grouped": {"train": 100, "valid": 35, "test": 35}, "split_random": {"train": 102}}
    assert (
        headline(stage=STAGES["split"], item=None, summary=split, seconds=1.24, output="artifacts/split/s.csv")
        == "split: grouped: test 35, train 100, valid 35; random: train 102 in 1.2 s -> artifacts/split/s.csv"
    )
    validate = {"tracks": 173, "kept": 170, "dropped": 3, "checks": {"a": {}}, "per_genre": {"blues": 17}}
    assert (
        headline(stage=STAGES["validate"], item=None, summary=validate, seconds=3, output="r")
        == "validate: 173 tracks, 170 kept, 3 dropped in 3.0 s -> r"
    )
    metrics = {  # the champion's criterion is grouped CV: a better valid or random score does not count
        "svm": {
            "grouped": {"cv_macro_f1_mean": 0.61, "cv_macro_f1_std": 0.1, "valid": {"macro_f1": 0.9}},
            "random": {"valid": {"macro_f1": 0.95}},
        },
        "knn": {"grouped": {"cv_macro_f1_mean": 0.55, "cv_macro_f1_std": 0.2}},
    }
    assert STAGES["evaluate"].headline(metrics) == "3 runs scored; best grouped-CV macro-F1 0.610 ± 0.100 (svm)"
    train = {"grouped": {"valid_accuracy": 0.6, "test_accuracy": 0.5}}
    assert (
        headline(stage=STAGES["train"], item="svm", summary=train, seconds=0, output="m/svm")
        == "train@svm: grouped valid/test accuracy 0.6/0.5 in 0.0 s -> m/svm"
    )


def test_a_domain_error_is_one_line_and_exit_1(params, tmp_path, capsys):
    def broken(params, *, model):
        raise StageError(f"no data for {model}\nsecond line")

    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params))
    with pytest.raises(SystemExit) as stopped:
        execute(stage=STAGES["train"], function=broken, params_file=params_file, item="svm")
    assert stopped.value.code == 1
    assert capsys.readouterr().err == "stage train@svm failed: no data for svm second line\n"


def test_stage_cli_on_missing_inputs_prints_one_line(tmp_path):
    """`python -m stages.split` in an empty project: the missing table is named, no traceback."""
    (tmp_path / "params.yaml").write_text((PROJECT_ROOT / "params.yaml").read_text(encoding="utf-8"))
    env = {**os.environ, "MUSICGENRE_ROOT": str(tmp_path), "PYTHONPATH": str(PROJECT_ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "stages.split"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("stage split failed: FileNotFoundError") and "tracks.csv" in result.stderr
