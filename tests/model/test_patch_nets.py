"""The pipeline's deep models: new layers on the frozen MSD_vgg base's per-patch outputs (embed_patches stage).
The CNN clears the classic models' level on unseen artists, the CRNN reads a track of any length as one
sequence, both serve from ONNX with Keras' probabilities, and the base's patches computed from audio at
serving time are the ones the embed stage stored."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from musicgenre.config import resolve
from musicgenre.extraction import Limits, TrackFeatures, extract_file
from musicgenre.models import fit_predictor
from musicgenre.models.patch_nets import training_batches
from musicgenre.models.predictor import ModelMeta
from stages.embed import base_ref
from tests.helpers import save_and_reload

# the best classic models (random_forest, xgboost) score ~0.55 in grouped CV; chance is 0.1
CLASSIC_LEVEL = 0.55


def fit(params, grouped, *, name: str, epochs: int | None = None, base=None):
    settings = copy.deepcopy(params["models"][name])
    if epochs is not None:
        settings["hyper"]["epochs"] = epochs
    items, labels = grouped["train"]
    return fit_predictor(
        name=name,
        settings=settings,
        seed=params["seed"],
        classes=params["genres"],
        threads=params["train"]["threads"],
        train_items=items,
        train_labels=labels,
        valid_items=[],
        valid_labels=np.empty(0, int),
        embedding=base,
    )


def served_equals_trained(predictor, *, params, items, directory) -> np.ndarray:
    meta = ModelMeta(
        model="test",
        family="deep",
        input="patches",
        protocol="grouped",
        classes=params["genres"],
        params={},
        n_train_tracks=0,
        seed=params["seed"],
        embeddings=predictor.base.config.as_dict(),  # as the train stage records the base's settings
    )
    served = save_and_reload(predictor, params=params, directory=directory, meta=meta)
    assert type(served).__name__ == "ServedPatchNetwork" and served.needs_features is False
    proba = predictor.predict_proba(items)
    np.testing.assert_allclose(served.predict_proba(items), proba, atol=params["train"]["onnx"]["atol"])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    return proba


def test_cnn_on_the_pretrained_base_clears_the_classic_level_on_unseen_artists(params, grouped, tmp_path):
    predictor = fit(params, grouped, name="cnn", base=base_ref(params))  # its full settings: ~3 CPU s
    items, labels = grouped["test"]
    proba = served_equals_trained(predictor, params=params, items=items, directory=tmp_path)
    assert (proba.argmax(axis=1) == labels).mean() > CLASSIC_LEVEL


def test_crnn_reads_a_track_of_any_length_as_one_sequence(params, grouped, tmp_path):
    predictor = fit(params, grouped, name="crnn", epochs=2, base=base_ref(params))
    whole = grouped["test"][0][:4]
    shortened = [
        TrackFeatures(
            key=f"{item.key}:{n}", track_vector=None, segment_vectors=None, log_mels=None, patches=item.patches[:n]
        )
        for item, n in zip(whole, (1, 3, 10, 3))
    ]
    proba = served_equals_trained(predictor, params=params, items=whole + shortened, directory=tmp_path)
    assert proba.shape == (8, len(params["genres"]))
    # batching tracks by length does not change a track's probabilities
    np.testing.assert_allclose(predictor.predict_proba([shortened[1]])[0], proba[5], atol=1e-6)


def test_a_deep_model_without_its_base_is_refused(params, grouped):
    with pytest.raises(ValueError, match="needs the base"):
        fit(params, grouped, name="cnn", epochs=1, base=None)


def test_training_batches_mix_no_lengths_and_cover_every_row():
    lengths = np.array([10, 10, 3, 10, 3, 1, 10])
    batches = training_batches(lengths=lengths, batch_size=2, rng=np.random.default_rng(0), sequences=True)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
    assert all(len(set(lengths[batch])) == 1 for batch in batches)


def test_base_patches_from_audio_equal_the_embed_stage_table(params, pipeline_artifacts):
    table = pd.read_parquet(resolve(params["paths"]["patches"]))
    tracks = pd.read_csv(resolve(params["paths"]["tracks"])).set_index("track")
    base = base_ref(params).single_threaded()  # as the stage's worker processes ran it
    for track in tracks.index[:: len(tracks) // 3][:3]:
        item = extract_file(
            resolve(tracks.loc[track, "path"]),
            key=track,
            config=None,
            limits=Limits.from_params(params),
            embedding=base,
        )
        stored = table[table["track"] == track].sort_values("patch")
        np.testing.assert_allclose(
            item.base_patches(), stored.filter(like="base_").to_numpy(np.float32), rtol=1e-5, atol=1e-6
        )
