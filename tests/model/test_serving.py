"""Serving without TensorFlow: the tagger on ONNX Runtime equals TensorFlow's, `predict` imports neither
TensorFlow, Keras nor MLflow, a registry version runs its own code, and bad model files are named."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import pytest

from musicgenre.audio import load_audio
from musicgenre.config import PROJECT_ROOT, resolve
from musicgenre.serving.bundle import BundleError
from musicgenre.serving.champion import bundle_folder, open_champion
from musicgenre.serving.champion import resolve as resolve_champion
from musicgenre.tagger import MODEL_FILE, EmbeddingConfig, ModelFileError, Tagger, power_spectrogram
from musicgenre.tagger_export import tensorflow_activations
from tests.helpers import train_and_register

# the tolerance: ONNX activations and embeddings within 1e-4 of the layer's range (measured ~1e-6)
RTOL = 1e-4


@pytest.fixture(scope="module")
def tagger(params, pipeline_artifacts) -> Tagger:
    return Tagger(resolve(params["paths"]["tagger_dir"]), config=EmbeddingConfig.from_params(params))


def relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def test_onnx_tagger_equals_tensorflow_on_real_tracks(params, tagger, gtzan_slice):
    """Every whole patch of three real tracks of different genres through both runtimes."""
    every_patch = dataclasses.replace(tagger.config, max_patches=None)
    for row in gtzan_slice.groupby("genre").head(1).head(3).itertuples():
        y = load_audio(row.abs_path, sample_rate=tagger.sample_rate)
        batch = Tagger(tagger.folder, config=every_patch).patches(y)
        assert len(batch) == 10
        embedding, pooled = tagger.layer_activations(batch)  # both exported outputs
        assert relative(embedding, tensorflow_activations(batch, config=tagger.config)) <= RTOL
        reference = tensorflow_activations(batch, config=tagger.config, layer=tagger.config.pooled_layer)
        assert pooled.shape == (10, 1506) and relative(pooled, reference.reshape(pooled.shape)) <= RTOL


def test_numpy_front_end_equals_librosa(tagger, gtzan_slice):
    """The tagger's log-mel without librosa at serving time: the same STFT and mel bank as librosa's."""
    f = tagger.front
    y = load_audio(gtzan_slice.abs_path[0], sample_rate=f.sample_rate)
    ours = power_spectrogram(y, n_fft=f.n_fft, hop_length=f.hop_length) @ tagger.mel_basis.T
    theirs = librosa.feature.melspectrogram(
        y=y, sr=f.sample_rate, n_fft=f.n_fft, hop_length=f.hop_length, n_mels=f.n_mels
    ).T
    assert ours.shape == theirs.shape and relative(ours, theirs) <= RTOL


def test_embed_stage_output_equals_the_tensorflow_path(params, tagger, gtzan_manifest):
    """The stored embeddings against librosa's log-mel and TensorFlow's activations of the same patches."""
    stored = pd.read_parquet(resolve(params["paths"]["embeddings"])).set_index("track")
    for row in gtzan_manifest.sort_values("track").groupby("genre").head(1).head(3).itertuples():
        y = load_audio(row.abs_path, sample_rate=tagger.sample_rate)
        f = tagger.front
        mel = librosa.feature.melspectrogram(
            y=y, sr=f.sample_rate, n_fft=f.n_fft, hop_length=f.hop_length, n_mels=f.n_mels
        ).T
        log_mel = np.log10(tagger.config.log_compression * mel + 1.0).astype(np.float32)
        count = len(log_mel) // f.patch_frames
        chosen = np.floor((np.arange(tagger.config.max_patches) + 0.5) * count / tagger.config.max_patches).astype(int)
        batch = log_mel[: count * f.patch_frames].reshape(count, f.patch_frames, -1)[chosen]
        for prefix, layer in (("emb_", tagger.config.layer), ("pool_", tagger.config.pooled_layer)):
            acts = tensorflow_activations(batch, config=tagger.config, layer=layer).reshape(len(batch), -1)
            reference = np.concatenate([acts.astype(np.float64).mean(axis=0), acts.max(axis=0)])
            columns = [c for c in stored.columns if c.startswith(prefix)]
            assert relative(stored.loc[row.track, columns].to_numpy(float), reference) <= RTOL, prefix


def test_predict_imports_neither_tensorflow_keras_nor_mlflow(transfer_champion, gtzan_slice):
    path = str(gtzan_slice.abs_path[0])
    code = (
        "import sys, json\nfrom musicgenre.predict import app\n"
        f"try:\n    app([{path!r}, '--json', '--tracking-uri', {transfer_champion['uri']!r}, "
        f"'--params', {str(transfer_champion['params_file'])!r}])\nexcept SystemExit as exit:\n    code = exit.code\n"
        "print(json.dumps([m for m in ('tensorflow', 'keras', 'mlflow', 'sklearn') if m in sys.modules]))\n"
        "sys.exit(code)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    records, loaded = result.stdout.rsplit("\n", 2)[0], json.loads(result.stdout.strip().splitlines()[-1])
    assert json.loads(records)[0]["top"][0]["genre"] in transfer_champion["params"]["genres"]
    assert loaded == [], f"serving a transfer champion imported {loaded}"


def modified_project(tmp_path: Path) -> Path:
    """A copy of the package whose feature code has changed: every audio file loads at half gain."""
    copy = tmp_path / "changed" / "musicgenre"
    shutil.copytree(PROJECT_ROOT / "musicgenre", copy, ignore=shutil.ignore_patterns("__pycache__"))
    audio = copy / "audio.py"
    text = audio.read_text()
    marker = "    mono = samples.mean(axis=1, dtype=np.float64)\n"
    assert marker in text
    audio.write_text(text.replace(marker, marker + "    mono = 0.5 * mono\n"))
    return copy.parent


def scored_by(project: Path, *, uri: str, name: str, files: list[str]) -> np.ndarray:
    """Probabilities of the registry's champion as opened by the project at `project` (a subprocess)."""
    code = (
        "import json, sys\nfrom musicgenre.serving.champion import open_champion\nimport musicgenre\n"
        f"assert musicgenre.__file__.startswith({str(project)!r}), musicgenre.__file__\n"
        f"_, model = open_champion(uri={uri!r}, name={name!r}, alias='champion')\n"
        f"proba, errors = model.predict_paths({files!r})\nassert not any(errors), errors\n"
        "print(json.dumps(proba.tolist()))"
    )
    result = subprocess.run(
        [sys.executable, "-P", "-c", code],
        env={"PYTHONPATH": str(project), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return np.asarray(json.loads(result.stdout.strip().splitlines()[-1]))


def test_registry_version_runs_the_code_it_was_registered_with(transfer_champion, gtzan_slice, tmp_path):
    """After the project's audio code changes, the registered version still gives its own outputs, and
    the changed code alone (a new registration) would give different ones."""
    files = [str(p) for p in gtzan_slice.abs_path[:2]]
    uri, name = transfer_champion["uri"], transfer_champion["params"]["register"]["model_name"]
    _, model = open_champion(uri=uri, name=name, alias="champion")
    registered, errors = model.predict_paths(files)
    assert not any(errors)
    changed = modified_project(tmp_path)
    np.testing.assert_array_equal(scored_by(changed, uri=uri, name=name, files=files), registered)
    code = (
        "import json\nfrom musicgenre.audio import load_audio\n"
        f"print(json.dumps(float(abs(load_audio({files[0]!r}, sample_rate=16000)).max())))"
    )
    out = subprocess.run(
        [sys.executable, "-P", "-c", code],
        env={"PYTHONPATH": str(changed), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert float(out.stdout) == pytest.approx(0.5 * float(np.abs(load_audio(files[0], sample_rate=16000)).max()))


def test_pyfunc_runs_the_bundle_in_a_process_without_the_project(transfer_champion, gtzan_slice, tmp_path):
    """MLflow's own loader, with the project not importable at all: the version carries its code."""
    files = [str(p) for p in gtzan_slice.abs_path[:2]]
    uri, name = transfer_champion["uri"], transfer_champion["params"]["register"]["model_name"]
    _, model = open_champion(uri=uri, name=name, alias="champion")
    expected, _ = model.predict_paths(files)
    code = (
        "import json, sys, importlib.util\nassert importlib.util.find_spec('musicgenre') is None\n"
        "import mlflow, pandas as pd\n"
        f"mlflow.set_tracking_uri({uri!r}); mlflow.set_registry_uri({uri!r})\n"
        f"out = mlflow.pyfunc.load_model('models:/{name}@champion').predict(pd.DataFrame({{'path': {files!r}}}))\n"
        "print(json.dumps(out[[c for c in out.columns if c.startswith('proba_')]].to_numpy().tolist()))"
    )
    # -S: no site processing, so the editable install's finder is never installed; site-packages by hand
    site = [p for p in sys.path if p.endswith("site-packages")]
    result = subprocess.run(
        [sys.executable, "-P", "-S", "-c", f"import sys; sys.path[:0] = {site!r}\n" + code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "", "MLFLOW_DISABLE_TELEMETRY": "true", "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    np.testing.assert_allclose(np.asarray(json.loads(result.stdout.strip().splitlines()[-1])), expected, atol=1e-12)


def test_alias_is_read_at_every_resolution(registry):
    """No cached champion: moving the alias changes what the next resolution opens."""
    from mlflow.tracking import MlflowClient

    name, alias = registry["params"]["register"]["model_name"], registry["params"]["register"]["alias"]
    client = MlflowClient(tracking_uri=registry["uri"], registry_uri=registry["uri"])
    before = resolve_champion(uri=registry["uri"], name=name, alias=alias)
    assert before.version == str(client.get_model_version_by_alias(name, alias).version)
    other = next(v.version for v in client.search_model_versions(f"name='{name}'") if str(v.version) != before.version)
    client.set_registered_model_alias(name, alias, other)
    try:
        assert resolve_champion(uri=registry["uri"], name=name, alias=alias).version == str(other)
    finally:
        client.set_registered_model_alias(name, alias, before.version)


def test_changed_or_corrupt_model_files_are_named(transfer_champion, tmp_path):
    uri, name = transfer_champion["uri"], transfer_champion["params"]["register"]["model_name"]
    bundle = bundle_folder(resolve_champion(uri=uri, name=name, alias="champion"))
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    onnx = next(copy.rglob(MODEL_FILE))
    onnx.write_bytes(onnx.read_bytes()[:1000])
    from musicgenre.serving.loader import open_bundle

    with pytest.raises(Exception, match=f"{onnx}: changed since the bundle was built") as raised:
        open_bundle(copy)  # the bundle's own code raises its own copy of BundleError
    assert type(raised.value).__name__ == BundleError.__name__
    with pytest.raises(ModelFileError, match=f"{onnx}: not a loadable ONNX model"):
        Tagger(onnx.parent, config=EmbeddingConfig.from_params(transfer_champion["params"]))
    onnx.unlink()
    with pytest.raises(ModelFileError, match=f"{onnx}: ONNX model file missing"):
        Tagger(onnx.parent, config=EmbeddingConfig.from_params(transfer_champion["params"]))


@pytest.mark.slow
def test_deep_champion_serves_from_onnx_without_tensorflow(params, pipeline_artifacts, tmp_path, gtzan_slice):
    """The CNN on the pretrained base, trained by the train stage (two short epochs), registered, then
    predicted from audio in a process that must not import TensorFlow or Keras."""
    champion = train_and_register(params=params, root=tmp_path, model="cnn", overrides={"epochs": 2})
    model_dir = champion["model_dir"]
    assert {"model.onnx", "model.keras", "norm.json", "meta.json", "base"} <= {p.name for p in model_dir.iterdir()}
    code = (
        "import sys, json\nfrom musicgenre.predict import app\n"
        f"try:\n    app([{str(gtzan_slice.abs_path[0])!r}, '--json', '--tracking-uri', {champion['uri']!r}, "
        f"'--params', {str(champion['params_file'])!r}])\nexcept SystemExit as exit:\n    code = exit.code\n"
        "print(json.dumps([m for m in ('tensorflow', 'keras') if m in sys.modules]))\nsys.exit(code)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
    from monitoring.scoring import load_scoring_model, reuses_embeddings

    opened = load_scoring_model(params=champion["params"], tracking_uri=champion["uri"])
    assert opened.model.embedding_identity() is None  # its base gives per-patch outputs, not a track embedding
    assert not reuses_embeddings(champion=opened, params=champion["params"])  # novelty runs the project's tagger
