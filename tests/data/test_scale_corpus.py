"""The scale corpus: real tracks first, then variants named so no id collides, each keeping its source's
genre and artist group through ingest (so grouped splits stay honest); deterministic for params.scale.seed."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from musicgenre.errors import ConfigError
from musicgenre.ingest import GROUPS_FILE, build_manifest
from musicgenre.io import file_sha256
from musicgenre.scale_corpus import PROVENANCE_FILE, build_corpus, check_output

SR = 22050


@pytest.fixture
def source(tmp_path):
    """Three 4-s noise 'tracks' of two genres; blues.00001 and blues.00003 share an artist, rock.00002 has none."""
    root = tmp_path / "source"
    rng = np.random.default_rng(0)
    for track in ("blues.00001", "blues.00003", "rock.00002"):
        (root / "genres" / track.split(".")[0]).mkdir(parents=True, exist_ok=True)
        sf.write(root / "genres" / track.split(".")[0] / f"{track}.flac", 0.1 * rng.standard_normal(4 * SR), SR)
    (root / GROUPS_FILE).parent.mkdir()
    pd.DataFrame(
        {"track": ["blues.00001", "blues.00003", "rock.00002"], "genre": ["blues", "blues", "rock"],
         "artist_group_id": ["7", "7", ""], "in_foleiss_filtered": [1, 1, 1]}
    ).to_csv(root / GROUPS_FILE, index=False)  # fmt: skip
    return root


def test_variants_keep_genre_and_artist_group_through_ingest(source, tmp_path, params):
    local = copy.deepcopy(params)
    local["scale"]["n_jobs"] = 1
    plan = build_corpus(params=local, source=source, out=tmp_path / "corpus", tracks=8)
    assert plan["track"].is_unique and len(plan) == 8 and (plan["round"] > 0).sum() == 5
    assert set(plan.loc[plan["round"] == 0, "track"]) == {"blues.00001", "blues.00003", "rock.00002"}
    manifest = build_manifest(
        tmp_path / "corpus", genres=local["genres"], extensions=["flac"], max_file_mb=None, relative_to=tmp_path
    ).set_index("track")
    provenance = pd.read_csv(tmp_path / "corpus" / PROVENANCE_FILE).set_index("track")
    for track, row in provenance.iterrows():
        assert manifest.loc[track, "genre"] == track.split(".")[0] == row["source"].split(".")[0]
        assert manifest.loc[track, "artist_group"] == manifest.loc[row["source"], "artist_group"]
        assert manifest.loc[track, "duration_s"] == pytest.approx(4.0, abs=1e-3)  # stretch keeps the length
    assert manifest.loc["rock.00002", "artist_group"] == "track:rock.00002"  # an unknown artist: its own group
    original = source / "genres" / "blues" / "blues.00001.flac"
    assert file_sha256(tmp_path / "corpus" / "genres" / "blues" / "blues.00001.flac") == file_sha256(original)
    again = build_corpus(params=local, source=source, out=tmp_path / "again", tracks=8)
    for track in again["track"]:  # deterministic: the same bytes for the same seed
        genre = track.split(".")[0]
        assert file_sha256(tmp_path / "again/genres" / genre / f"{track}.flac") == file_sha256(
            tmp_path / "corpus/genres" / genre / f"{track}.flac"
        )


def test_the_output_may_not_be_the_source_or_a_foreign_folder(source, tmp_path):
    with pytest.raises(ConfigError, match="outside the source"):
        check_output(out=source, source=source)
    foreign = tmp_path / "documents"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("x")
    with pytest.raises(ConfigError, match="not a scale corpus"):
        check_output(out=foreign, source=source)
