"""The deep models' grouped CV recomputed on this machine against the committed report (made on the
development host): the issue's "two fresh runs on different machines differ by <= 3 points". The embed
stages and every fit run here from the audio, so on a host of another kind (the header and the summary
line name the CPU) this is the two-machine check; on the same kind it is a rerun, and bit-identical.

On an AVX-512 host a second run stands in for an AVX2-only one: the base's patches and every fit are
recomputed in processes whose libraries are held to AVX2 code paths (oneDNN for TensorFlow, OpenBLAS, NumPy's
dispatch). ONNX Runtime has no such switch, so its own kernels stay this host's."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from musicgenre.config import resolve
from musicgenre.selection import fold_scores, fold_vector
from stages.evaluate import cross_validation
from tests.helpers import CROSS_HOST_LINES, host_description

DEEP = ["cnn", "crnn"]
FOLD_ACCURACIES = (  # the same computation, in a process started on AVX2 code paths
    "import json; from musicgenre.config import load_params; "
    "from tests.model.test_deep_cross_host import deep_fold_accuracies; "
    "print(json.dumps(deep_fold_accuracies(load_params())))"
)

pytestmark = pytest.mark.slow


def assert_within_gap(*, params: dict, accuracies: dict[str, list[float]], host: str) -> None:
    """Each deep model's mean fold accuracy within reproducibility.max_deep_cv_gap of the committed report's
    (the same folds); the numbers go to the pytest summary."""
    settings = params["evaluate"]
    committed = json.loads((resolve(settings["report_dir"]) / settings["selection_file"]).read_text())
    gaps = {}
    for model in DEEP:
        here, reference = accuracies[model], committed["scores"][model]["accuracy"]
        assert len(here) == len(reference)  # the same folds: evaluate.deep.repeats x cv_folds
        gaps[model] = float(np.mean(here) - np.mean(reference))
        CROSS_HOST_LINES.append(
            f"{model}: grouped CV {np.mean(here):.3f} on {host} vs {np.mean(reference):.3f} committed"
            f" ({gaps[model]:+.3f})"
        )
    limit = params["reproducibility"]["max_deep_cv_gap"]
    assert all(abs(gap) <= limit for gap in gaps.values()), (gaps, host)


def deep_fold_accuracies(params: dict) -> dict[str, list[float]]:
    """cnn's and crnn's per-fold accuracies, recomputed by evaluate's own cross-validation in this process."""
    oof, skipped = cross_validation(params, models=DEEP)
    assert sorted(oof) == DEEP and not skipped
    frame = pd.concat([rows.assign(model=model) for model, rows in oof.items()], ignore_index=True)
    scores = fold_scores(oof=frame, classes=params["genres"])
    return {model: fold_vector(scores=scores, model=model, metric="accuracy") for model in DEEP}


def test_deep_grouped_cv_on_this_host_is_within_the_gap_of_the_committed_report(params, pipeline_artifacts):
    assert_within_gap(params=params, accuracies=deep_fold_accuracies(params), host=host_description())


@pytest.mark.skipif("avx512f" not in host_description(), reason="this host runs AVX2 code paths already")
def test_deep_grouped_cv_on_avx2_code_paths_is_within_the_gap(params, pipeline_artifacts, tmp_path):
    local = copy.deepcopy(params)  # the base's patches recomputed into tmp_path, the rest of the artifacts shared
    local["paths"]["patches_dir"] = str(tmp_path / "patches")
    local["paths"]["patches"] = str(tmp_path / "patches" / "patches.parquet")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(local))
    avx2_only = params["reproducibility"]["avx2_code_paths"]
    env = {**os.environ, **avx2_only, "MUSICGENRE_PARAMS": str(tmp_path / "params.yaml")}
    subprocess.run([sys.executable, "-m", "stages.embed_patches"], env=env, check=True, capture_output=True)
    run = subprocess.run([sys.executable, "-c", FOLD_ACCURACIES], env=env, check=True, capture_output=True, text=True)
    accuracies = json.loads(run.stdout.strip().splitlines()[-1])
    ours, theirs = (
        pd.read_parquet(resolve(p["paths"]["patches"])).sort_values(["track", "patch"]) for p in (params, local)
    )
    columns = [c for c in ours.columns if c.startswith("base_")]
    drift = float(np.abs(ours[columns].to_numpy() - theirs[columns].to_numpy()).max())
    CROSS_HOST_LINES.append(f"base patches on AVX2 code paths: largest difference from the artifact's {drift:.2e}")
    host = f"{host_description()} held to AVX2 code paths ({', '.join(avx2_only)})"
    assert_within_gap(params=params, accuracies=accuracies, host=host)
