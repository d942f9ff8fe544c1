"""Splits never leak an artist group (or a track's segments) across train/valid/test."""
from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from musicgenre.splits import group_keys, grouped_folds, grouped_split, random_split, standard_split

GENRES = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"]


@st.composite
def catalogues(draw):
    """Random catalogues: 2-10 genres, groups of 1-6 tracks, some tracks without a known artist."""
    rows = []
    for genre in draw(st.lists(st.sampled_from(GENRES), min_size=2, max_size=10, unique=True)):
        for group in range(draw(st.integers(5, 8))):
            known = draw(st.booleans())
            for _ in range(draw(st.integers(1, 6))):
                rows.append({"track": f"{genre}.{len(rows):05d}", "genre": genre,
                             "artist_group": f"{genre}-{group}" if known else ""})
    return pd.DataFrame(rows)


@settings(max_examples=40, deadline=None)
@given(tracks=catalogues(), seed=st.integers(0, 10_000))
def test_grouped_split_never_splits_a_group(tracks, seed):
    split = grouped_split(tracks, test_size=0.2, valid_size=0.2, seed=seed, candidates=3)
    sides_per_group = split.groupby(group_keys(tracks)).nunique()
    assert (sides_per_group == 1).all()
    assert set(split) <= {"train", "valid", "test"} and (split == "train").any()


def test_too_small_catalogue_is_a_clear_error():
    tracks = pd.DataFrame({"track": ["a.00001", "b.00001", "b.00002"], "genre": ["a", "b", "b"],
                           "artist_group": ["1", "2", "2"]})
    with pytest.raises(ValueError, match="too few tracks to split"):
        grouped_split(tracks, test_size=0.2, valid_size=0.2, seed=0)


def test_unknown_artists_are_their_own_group():
    tracks = pd.DataFrame({"track": ["a.00001", "a.00002", "b.00001"], "genre": ["a", "a", "b"],
                           "artist_group": ["", None, "7.0"]})
    assert list(group_keys(tracks)) == ["track:a.00001", "track:a.00002", "artist:7"]


def test_grouped_split_is_deterministic_for_a_seed(gtzan_manifest):
    first = grouped_split(gtzan_manifest, test_size=0.2, valid_size=0.2, seed=3, candidates=5)
    again = grouped_split(gtzan_manifest, test_size=0.2, valid_size=0.2, seed=3, candidates=5)
    assert first.equals(again)


def test_real_subset_split_is_leak_free_and_covers_every_genre(gtzan_manifest, params):
    split = grouped_split(gtzan_manifest, test_size=0.2, valid_size=0.2, seed=params["seed"],
                          candidates=params["split"]["search_candidates"])
    assert (split.groupby(group_keys(gtzan_manifest)).nunique() == 1).all()
    per_genre = pd.crosstab(gtzan_manifest["genre"], split)
    assert (per_genre["train"] > 0).all() and (per_genre["test"] > 0).all()
    assert 0.1 < (split == "test").mean() < 0.3


def test_random_split_is_stratified_track_level(gtzan_manifest):
    split = random_split(gtzan_manifest, test_size=0.2, valid_size=0.2, seed=0)
    shares = pd.crosstab(gtzan_manifest["genre"], split, normalize="index")
    assert shares["test"].between(0.1, 0.35).all()


def test_standard_split_only_with_the_full_collection(gtzan_manifest):
    assert standard_split(gtzan_manifest, min_coverage=0.95) is None  # 173 of 1000 tracks here
    full = pd.DataFrame({"track": [f"{g}.{i:05d}" for g in GENRES for i in range(100)]})
    full["genre"] = full["track"].str.split(".").str[0]
    split = standard_split(full, min_coverage=0.95)
    assert split.value_counts().to_dict() == {"train": 443, "test": 290, "valid": 197, "excluded": 70}


def test_grouped_folds_keep_groups_together(gtzan_manifest):
    groups = group_keys(gtzan_manifest)
    for train, test in grouped_folds(gtzan_manifest, n_splits=5, seed=1):
        assert not set(groups.iloc[train]) & set(groups.iloc[test])
