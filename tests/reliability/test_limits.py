"""Limits and boundaries: size and duration refused from the header (before decoding), the scoring
flow confined to its batch folder, models only from the registry, servers on loopback."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from monitoring.batch import check_batch_id, discover
from musicgenre.audio import AudioError, load_audio, probe, read_native
from musicgenre.config import PROJECT_ROOT

TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".cfg", ".sh", ".txt"}
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def test_duration_limit_is_enforced_from_the_header_before_decoding(params, tmp_path):
    """A FLAC cut right after its header still declares its length: refused for the duration, not for
    the missing audio, so the decoder never ran."""
    rate, seconds = 1000, int(params["limits"]["max_duration_s"] * 1.2)
    path = tmp_path / "long.flac"
    sf.write(path, np.zeros(rate * seconds, np.float32), rate, format="FLAC")
    path.write_bytes(path.read_bytes()[:4096])
    assert probe(path).duration_s == pytest.approx(seconds)
    with pytest.raises(AudioError, match="above the limit") as raised:
        load_audio(path, sample_rate=22050, **params["limits"])
    assert raised.value.path == str(path)
    with pytest.raises(AudioError, match="above the limit"):
        read_native(path, max_duration_s=params["limits"]["max_duration_s"])


def test_size_limit_is_enforced_before_the_header_is_read(params, tmp_path):
    """A sparse file past limits.max_file_mb is refused at once by its size (no byte read); a file
    under the limit is not."""
    limit = params["limits"]["max_file_mb"]
    big, small = tmp_path / "big.wav", tmp_path / "small.wav"
    for path in (big, small):
        sf.write(path, np.zeros(22050 * 4, np.float32), 22050)
    with open(big, "r+b") as handle:
        handle.truncate(int((limit + 1) * 2**20))
    started = time.perf_counter()
    with pytest.raises(AudioError, match=rf"above the limit of {limit} MB"):
        load_audio(big, sample_rate=22050, **params["limits"])
    assert time.perf_counter() - started < 1.0  # 200 MB were not decoded
    assert load_audio(small, sample_rate=22050, **params["limits"]).shape == (22050 * 4,)


def test_special_files_are_refused_not_opened(tmp_path):
    """A FIFO named .wav would block a decoder forever; a folder named .wav is not audio either."""
    import os

    fifo, folder = tmp_path / "pipe.wav", tmp_path / "folder.wav"
    os.mkfifo(fifo)
    folder.mkdir()
    for path in (fifo, folder):
        with pytest.raises(AudioError, match="not a regular file"):
            load_audio(path, sample_rate=22050)


def test_scoring_never_leaves_its_batch_folder(tmp_path):
    batch, outside = tmp_path / "batch", tmp_path / "private"
    (batch / "sub").mkdir(parents=True)
    outside.mkdir()
    secret = outside / "secret.wav"
    sf.write(secret, np.zeros(22050, np.float32), 22050)
    sf.write(batch / "sub" / "inside.wav", np.zeros(22050, np.float32), 22050)
    (batch / "abs_link.wav").symlink_to(secret)
    (batch / "dotdot_link.wav").symlink_to("../private/secret.wav")
    (batch / "sub" / "deep_dotdot.wav").symlink_to("../../private/secret.wav")
    (batch / "up").symlink_to("..")  # a folder link back up: must not be walked
    (batch / "private_dir").symlink_to(outside)
    (batch / "broken.wav").symlink_to(batch / "gone.wav")
    (batch / "ok_link.wav").symlink_to("sub/inside.wav")  # inside the folder: allowed
    accepted, refused = discover(folder=batch / "sub" / "..", extensions=["wav"])  # a `..` in the folder itself
    assert sorted(f.key for f in accepted) == ["ok_link.wav", "sub/inside.wav"]
    reasons = {r.key: r.reason for r in refused}
    for key in ("abs_link.wav", "dotdot_link.wav", "sub/deep_dotdot.wav", "up", "private_dir"):
        assert "outside the batch folder" in reasons[key] and key.split("/")[-1] in reasons[key], key
    assert "broken symlink" in reasons["broken.wav"]
    assert all(outside not in f.path.resolve().parents for f in accepted)


@pytest.mark.parametrize("batch_id", ["../x", "a/b", "..", "x/../../etc", "", ".hidden"])
def test_batch_ids_cannot_name_a_path(batch_id):
    with pytest.raises(ValueError, match="batch id"):
        check_batch_id(batch_id)


def test_predict_cannot_load_a_model_from_a_user_path(tmp_path):
    """Models come from the registry only (models:/NAME@alias): no option takes a model file, and the
    code never unpickles one."""
    import typer.main

    from musicgenre.predict import app

    command = typer.main.get_command(app)
    options = {name for param in command.params if param.param_type_name == "option" for name in param.opts}
    assert options == {"--json", "--tracking-uri", "--model-name", "--params"}
    pickle = tmp_path / "model.pkl"
    pickle.write_bytes(b"not loaded")
    for flag in ("--model", "--model-path", "--model-file", "--model-uri"):
        result = CliRunner().invoke(app, [flag, str(pickle), str(tmp_path)])
        assert result.exit_code == 2 and "No such option" in result.output
    for module in ("musicgenre/predict.py", "musicgenre/registry.py", "monitoring/scoring.py"):
        source = (PROJECT_ROOT / module).read_text(encoding="utf-8")
        assert not re.search(r"\b(pickle|cloudpickle|joblib)\.load", source), module
    assert 'f"models:/{name}@' in (PROJECT_ROOT / "musicgenre/registry.py").read_text(encoding="utf-8")


def project_text_files() -> list[Path]:
    skip = {".venv", ".git", ".dvc", "node_modules", "mlartifacts", "reliability"}
    return [
        p
        for p in PROJECT_ROOT.rglob("*")
        if p.suffix in TEXT_SUFFIXES | {""}
        and p.is_file()
        and not skip & set(p.relative_to(PROJECT_ROOT).parts)
        and p.stat().st_size < 1_000_000
        and (p.suffix or p.name == "Makefile")
    ]


def params_hosts(node, prefix: str = ""):
    """Every `host` setting in params, with its dotted key."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "host":
                yield f"{prefix}{key}", value
            else:
                yield from params_hosts(value, f"{prefix}{key}.")


def test_every_server_binds_to_loopback(params):
    """Server start commands in code, Makefile and docs name 127.0.0.1 (or a params host that is
    loopback); nothing binds to all interfaces."""
    hosts = list(params_hosts(params))
    assert ("orchestration.server.host", "127.0.0.1") in hosts
    assert all(host in LOOPBACK for _, host in hosts), hosts
    assert params["orchestration"]["dask"]["cluster_kwargs"].get("host", "127.0.0.1") in LOOPBACK
    starts = re.compile(r"(prefect server start|evidently ui|mlflow (?:server|ui)|uvicorn|gunicorn|http\.server)")
    found = 0
    for path in project_text_files():
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            assert "0.0.0.0" not in line, f"{path}:{number}: binds to all interfaces"
            if starts.search(line) and "--host" in line:
                found += 1
                host = re.search(r"--host[ =\"',]+([\w.:${}\[\]\"']+)", line).group(1).strip("\"',")
                assert host in LOOPBACK or host == "host", f"{path}:{number}: --host {host}"
    assert found >= 3  # the Prefect server (code + README) and the Evidently UI (Makefile/README) at least
