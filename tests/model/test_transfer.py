"""Transfer learning from the pretrained musicnn tagger: real embeddings of real GTZAN tracks, the
transfer models against the classic ones under artist-grouped CV, and a transfer champion served
from raw audio through the MLflow registry."""

from __future__ import annotations

import copy
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from musicgenre.audio import AudioError, resample
from musicgenre.config import PROJECT_ROOT, resolve
from musicgenre.crossval import cross_validate
from musicgenre.evaluation import evaluate_predictions
from musicgenre.extraction import Limits, extract_file
from musicgenre.features import FeatureConfig, feature_names
from musicgenre.models.data import load_tables
from musicgenre.registry import load_champion, register
from musicgenre.tagger import TaggerRef
from musicgenre.tagger_export import frozen_graph_def
from stages.embed import tagger_ref
from stages.evaluate import scalar_metrics
from stages.train import train

# the tagger embeddings of a track and of its resampled copies: measured cosine >= 0.999 on GTZAN
MIN_COSINE = 0.99


@pytest.fixture(scope="module")
def embedding(params, pipeline_artifacts) -> TaggerRef:
    return tagger_ref(params)


def embed_file(path, *, config: TaggerRef, limits: Limits) -> np.ndarray:
    """The serving path's embedding of one file (no classic features)."""
    return extract_file(path, key="k", config=None, limits=limits, embedding=config, features=False).embedding


pytestmark = pytest.mark.slow  # every test here loads TensorFlow or trains


@pytest.fixture(scope="module")
def tables(params, pipeline_artifacts):
    if not resolve(params["paths"]["embeddings"]).is_file():
        pytest.fail("embeddings artifact missing: run `python -m stages.embed` (dvc repro embed)")
    return load_tables(params=params, embeddings=True)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_embedding_is_deterministic_finite_and_matches_the_stage(params, embedding, tables, gtzan_slice):
    limits = Limits.from_params(params)
    for row in gtzan_slice.groupby("genre").head(1).head(3).itertuples():
        first = embed_file(row.abs_path, config=embedding, limits=limits)
        again = embed_file(row.abs_path, config=embedding, limits=limits)
        assert first.shape == (400,) and np.isfinite(first).all() and first.std() > 0
        np.testing.assert_array_equal(first, again)
        assert (first[200:] >= first[:200] - 1e-9).all()  # the max half bounds the mean half
        stored = tables.embeddings.loc[row.track, [c for c in tables.embeddings.columns if c.startswith("emb_")]]
        np.testing.assert_allclose(stored.to_numpy(float), first, atol=1e-5)  # the artifact is this computation


def test_embedding_survives_resampling_to_44k_and_back(params, embedding, gtzan_slice, tmp_path):
    limits = Limits.from_params(params)
    row = gtzan_slice[gtzan_slice["genre"] == "jazz"].iloc[0]
    y, rate = sf.read(row.abs_path, dtype="float32")
    up = resample(y, orig_sr=rate, target_sr=44100)
    sf.write(tmp_path / "up.wav", up, 44100, subtype="PCM_16")
    sf.write(tmp_path / "back.wav", resample(up, orig_sr=44100, target_sr=rate), rate, subtype="PCM_16")
    original = embed_file(row.abs_path, config=embedding, limits=limits)
    for name in ("up.wav", "back.wav"):
        assert cosine(original, embed_file(tmp_path / name, config=embedding, limits=limits)) > MIN_COSINE


def test_too_short_or_bad_audio_is_named(params, embedding, tmp_path):
    short = tmp_path / "short.wav"
    sf.write(short, np.zeros(16000, np.float32), 16000)  # 1 s: shorter than one 3-s patch
    with pytest.raises(AudioError, match="short.wav"):
        embed_file(short, config=embedding, limits=Limits())
    broken = tmp_path / "broken.flac"
    broken.write_bytes(b"not audio")
    with pytest.raises(AudioError, match="broken.flac"):
        embed_file(broken, config=embedding, limits=Limits())


def test_frozen_tagger_graph_feeds_only_the_spectrogram(embedding):
    """The training flag is a constant False (TensorFlow's optimiser then prunes the batch-norm and
    dropout training branches: 27 % of the tagger's time) and no variable is left to restore."""
    graph = frozen_graph_def(embedding.config)
    ops = {node.name: node.op for node in graph.node}
    flag = next(node for node in graph.node if node.name == embedding.config.training_flag)
    assert flag.op == "Const" and flag.attr["value"].tensor.bool_val == [False]
    assert [name for name, op in ops.items() if op == "Placeholder"] == [embedding.config.input_tensor]
    assert not {"VariableV2", "Variable", "VarHandleOp"} & set(ops.values())


def test_embedding_only_model_decodes_once_and_skips_classic_features(params, embedding, gtzan_slice):
    limits, config = Limits.from_params(params), FeatureConfig.from_params(params)
    path = gtzan_slice[gtzan_slice["genre"] == "reggae"].iloc[0].abs_path
    item = extract_file(path, key="clip", config=config, limits=limits, embedding=embedding, features=False)
    assert item.track_vector is None and item.segment_vectors is None and item.log_mels is None
    np.testing.assert_array_equal(item.embedding, embed_file(path, config=embedding, limits=limits))
    both = extract_file(path, key="clip", config=config, limits=limits, embedding=embedding)
    np.testing.assert_array_equal(both.embedding, item.embedding)
    assert both.track_vector.shape == (len(feature_names(config)),)


def test_transfer_beats_classic_features_under_grouped_cv(params, embedding, tables):
    """Same folds (5 artist-grouped folds, one repeat) for every model; the two fastest classic models
    as configured keep the test short (evaluate's report has every classic model's CV)."""
    models = params["models"]
    candidates = {name: models[name] for name in ("transfer_logreg", "transfer_concat", "lr_bagging", "knn_bagging")}
    scores = {
        name: cross_validate(
            name=name,
            settings=settings,
            tables=tables,
            classes=params["genres"],
            seed=params["seed"],
            folds=5,
            repeats=1,
            threads=1,
            embedding=embedding,
        )
        for name, settings in candidates.items()
    }
    best_classic = max(scores[m]["cv_accuracy_mean"] for m in ("lr_bagging", "knn_bagging"))
    assert scores["transfer_logreg"]["cv_accuracy_mean"] > best_classic, scores
    assert scores["transfer_concat"]["cv_accuracy_mean"] > best_classic, scores
    outside_test = int((tables.splits["split_grouped"] != "test").sum())  # the grouped test split is never a fold
    assert all(s["cv_fits"] == 5 and s["cv_tracks"] == outside_test for s in scores.values())


def test_transfer_champion_predicts_from_raw_audio(params, tables, gtzan_manifest, tmp_path, monkeypatch):
    local = copy.deepcopy(params)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    local["paths"]["models"] = str(tmp_path / "models")
    local["train"]["protocols"] = ["grouped"]
    local["register"].update(
        tracking_uri=uri, artifact_dir=str(tmp_path / "mlartifacts"), report_dir=str(tmp_path / "reports")
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # never the project's own registry
    summary = train(local, model="transfer_logreg")
    model_dir = tmp_path / "models" / "transfer_logreg" / "grouped"
    predictions = pd.read_parquet(model_dir / "predictions.parquet")
    scores = scalar_metrics(
        evaluate_predictions(frame=predictions, classes=local["genres"], splits=["train", "valid", "test"])
    )
    assert (
        scores["test"]["accuracy"] == summary["grouped"]["test_accuracy"]
        or abs(scores["test"]["accuracy"] - summary["grouped"]["test_accuracy"]) < 1e-4
    )
    assert register(model_dir=model_dir, scores=scores, params=local)["decision"] == "promoted"

    test = predictions[predictions["split"] == "test"].head(2)
    paths = gtzan_manifest.set_index("track").loc[test["track"], "abs_path"].astype(str).tolist()
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....WAVE")
    out = load_champion(tracking_uri=uri, params=local).predict(pd.DataFrame({"path": [*paths, str(bad)]}))
    columns = [f"proba_{g}" for g in local["genres"]]
    np.testing.assert_allclose(out.loc[:1, columns].to_numpy(float), test[columns].to_numpy(float), atol=1e-4)
    assert out.loc[:1, "error"].eq("").all() and "bad.wav" in out.loc[2, "error"]


def test_tensorflow_start_up_notices_stay_off_the_terminal():
    """A user's `predict` loads TensorFlow through tf_runtime: its C++ import notices (oneDNN, CPU
    feature guard, absl) must not reach stderr, while Python-level output still does."""
    code = (
        "import sys; from musicgenre.tf_runtime import tensorflow; tf = tensorflow(); "
        "print('after', tf.__version__, file=sys.stderr)"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("after ") and "oneDNN" not in result.stderr and "absl" not in result.stderr


def test_classic_path_does_not_import_tensorflow(gtzan_slice):
    code = (
        "import sys; from musicgenre.config import load_params; from musicgenre.extraction import Limits, "
        "extract_file; from musicgenre.features import FeatureConfig; import musicgenre.registry, "
        "musicgenre.models.classic, stages.train; p = load_params(); "
        f"item = extract_file({str(gtzan_slice.abs_path[0])!r}, key='k', config=FeatureConfig.from_params(p), "
        "limits=Limits.from_params(p)); assert item.embedding is None; "
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
