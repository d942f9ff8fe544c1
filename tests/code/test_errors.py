"""Errors say what is wrong, early, in one line: one root class, settings refused when a config is built
(naming the params key), and command lines that print one line and exit non-zero instead of a traceback."""

from __future__ import annotations

import copy
import dataclasses
import sys

import pytest
import yaml
from typer.testing import CliRunner

from musicgenre.audio import AudioError
from musicgenre.audio_checks import AudioCheckConfig
from musicgenre.cli import main as genre_main
from musicgenre.errors import ConfigError, GenreError, MissingInputError, one_line
from musicgenre.features import FeatureConfig
from stages._cli import StageError, run_stage
from stages.featurize import featurize


def test_domain_errors_share_one_root_and_keep_their_builtin_kind():
    assert issubclass(AudioError, GenreError) and issubclass(AudioError, ValueError)
    assert issubclass(StageError, GenreError) and issubclass(MissingInputError, FileNotFoundError)
    assert issubclass(ConfigError, ValueError)
    assert one_line(StageError("two\n  lines")) == "two lines"
    assert (
        one_line(FileNotFoundError(2, "No such file", "x.csv")) == "FileNotFoundError: [Errno 2] No such file: 'x.csv'"
    )


def test_the_project_settings_build_valid_configs(params):
    assert FeatureConfig.from_params(params).segment_frames == 129
    assert AudioCheckConfig.from_params(params).clip_level == params["validate"]["clip_level"]


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"hop_length": 4096}, r"features.hop_length \(4096\) must not exceed features.n_fft \(2048\)"),
        ({"n_contrast_bands": 7}, r"contrast band edge at 12800 Hz, at or above Nyquist \(11025 Hz\)"),
        ({"n_fft": 64, "hop_length": 32}, r"features.n_fft \(64\) is too short: .* \(n_fft >= 111\)"),
        ({"n_mfcc": 200}, r"features.n_mfcc \(200\) must not exceed features.n_mels \(128\)"),
        ({"n_mels": 0}, r"features.n_mels must be positive, got 0"),
        ({"segment_seconds": 0.05}, r"features.segment_seconds \(0.05\) is shorter than one frame"),
        ({"chroma_tuning": 0.5}, r"features.chroma_tuning must be null or in \[-0.5, 0.5\)"),
    ],
)
def test_feature_settings_out_of_range_are_refused_by_name(params, changes, message):
    with pytest.raises(ConfigError, match=message):
        dataclasses.replace(FeatureConfig.from_params(params), **changes)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("clip_level", 1.5, r"validate.clip_level must be in \(0, 1\]"),
        ("band_limit_width_hz", 0, r"validate.band_limit_width_hz must be positive"),
        ("band_limit_guard_hz", 7500, r"band_limit_guard_hz \+ band_limit_width_hz \(7500 \+ 900\) must fit below"),
    ],
)
def test_audio_check_settings_out_of_range_are_refused_by_name(params, key, value, message):
    local = copy.deepcopy(params)
    local["validate"][key] = value
    with pytest.raises(ConfigError, match=message):
        AudioCheckConfig.from_params(local)


def test_genre_data_sync_without_a_source_is_one_line(monkeypatch, capsys):
    monkeypatch.setenv("GTZAN_SOURCE", "/nonexistent")
    monkeypatch.setattr(sys, "argv", ["genre", "data", "sync"])
    with pytest.raises(SystemExit) as stopped:
        genre_main()
    out = capsys.readouterr()
    assert stopped.value.code == 1 and out.out == ""
    assert out.err == "error: GTZAN source /nonexistent does not exist (set data.source or $GTZAN_SOURCE)\n"


def test_a_stage_with_a_bad_setting_names_it_in_one_line(params, tmp_path, monkeypatch, capsys):
    """`python -m stages.featurize --params ...` (its run_stage, in-process) with hop_length > n_fft."""
    local = copy.deepcopy(params)
    local["features"]["hop_length"] = 4096
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(local))
    monkeypatch.setattr(sys, "argv", ["featurize", "--params", str(tmp_path / "params.yaml")])
    with pytest.raises(SystemExit) as stopped:
        run_stage(featurize)
    out = capsys.readouterr()
    assert stopped.value.code == 1 and out.out == ""
    assert out.err == (
        "stage featurize failed: features.hop_length (4096) must not exceed features.n_fft (2048): "
        "frames would skip samples\n"
    )


def test_score_batch_without_a_champion_is_one_line(params, tmp_path):
    from monitoring.cli import EXIT_ERROR, app

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = CliRunner().invoke(
        app,
        [
            "score-batch",
            str(tmp_path),
            "--params",
            str(tmp_path / "params.yaml"),
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'empty.db'}",
        ],
    )
    assert result.exit_code == EXIT_ERROR and result.stdout == ""
    assert (
        "Traceback" not in result.stderr
        and result.stderr.splitlines()[-1]
        == f"error: no champion to score with: no registry at {tmp_path / 'empty.db'}"
    )
