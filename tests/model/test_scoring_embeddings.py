"""Batch scoring runs the tagger once per file: a champion whose bundle computes novelty's embedding (the
same tagger file and settings as the embeddings artifact) hands its embeddings over and the project's
extraction skips its own tagger run; any other champion leaves the tagger to the project, as before."""

from __future__ import annotations

import shutil

import numpy as np

from monitoring.batch import discover
from monitoring.scoring import Champion, extract, load_scoring_model, reuses_embeddings, score_chunk
from musicgenre.tagger import Tagger


def test_a_transfer_champion_hands_its_embeddings_to_novelty(transfer_champion, gtzan_slice, tmp_path, monkeypatch):
    params = transfer_champion["params"]
    for path in gtzan_slice["abs_path"][::10]:  # three real tracks, and one that is not audio
        shutil.copy2(path, tmp_path / path.name)
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really audio")
    files, _ = discover(folder=tmp_path, extensions=params["predict"]["extensions"])
    champion = load_scoring_model(params=params, tracking_uri=transfer_champion["uri"])
    assert reuses_embeddings(champion=champion, params=params)

    project_runs = []  # the project's Tagger class: the bundle runs its own private copy of the package
    embed_layers = Tagger.embed_layers
    monkeypatch.setattr(Tagger, "embed_layers", lambda self, y: project_runs.append(1) or embed_layers(self, y))
    scores = score_chunk(files, params=params, champion=champion, n_jobs=1)
    assert project_runs == []
    assert len(scores.kept) == 3 and [r.key for r in scores.rejected] == ["broken.wav"]
    assert scores.embeddings.shape[0] == 3 and np.isfinite(scores.embeddings).all()

    _, items, _, _ = extract(files=scores.kept, params=params, n_jobs=1)  # the project's own tagger run
    assert len(project_runs) == 3
    np.testing.assert_allclose(scores.embeddings, np.stack([item.tagger_embedding() for item in items]), atol=1e-5)


def test_a_champion_without_the_embedding_api_leaves_the_tagger_to_the_project(params):
    older_bundle = Champion(name="old", version="1", model=object(), classes=params["genres"])
    assert not reuses_embeddings(champion=older_bundle, params=params)
