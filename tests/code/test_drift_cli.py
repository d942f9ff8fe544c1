"""`python -m flows.drift`: the daily drift flow once from the command line (driver side, so monitoring
never imports flows), on a real temporary Prefect server."""

from __future__ import annotations

import json

import pytest
import yaml
from prefect.testing.utilities import prefect_test_harness
from typer.testing import CliRunner

from flows.drift import app
from monitoring.cli import EXIT_ERROR, EXIT_OK

pytestmark = pytest.mark.slow  # a Prefect server starts


@pytest.fixture(scope="module")
def prefect_api():
    with prefect_test_harness(server_startup_timeout=180):
        yield


def test_an_empty_inbox_is_no_batch_and_exit_0(params, tmp_path, prefect_api):
    local = {
        **params,
        "monitoring": {**params["monitoring"], "inbox": str(tmp_path / "inbox"), "archive": str(tmp_path / "archive")},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(local))
    result = CliRunner().invoke(app, ["--params", str(tmp_path / "params.yaml")])
    assert result.exit_code == EXIT_OK, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "batch_id": None,
        "verdict": "no-batch",
        "report_dir": None,
    }


def test_a_missing_params_file_is_one_line_and_exit_1(tmp_path, prefect_api):
    result = CliRunner().invoke(app, ["--params", str(tmp_path / "nope.yaml")])
    assert result.exit_code == EXIT_ERROR and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith("error: FileNotFoundError: [Errno 2] No such file")
