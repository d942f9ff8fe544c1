"""Ingestion of each common GTZAN layout, as a directory or a .tar.gz, and the manifest it writes."""
from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from musicgenre.ingest import MANIFEST_COLUMNS, build_manifest, discover_tracks, unpack_source

GENRES = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"]
LAYOUTS = {  # (folder pattern, extension, soundfile format/subtype)
    "original_au": ("genres/{genre}", "au", "AU", "PCM_16"),
    "kaggle_wav": ("Data/genres_original/{genre}", "wav", "WAV", "PCM_16"),
    "flac": ("genres/{genre}", "flac", "FLAC", "PCM_16"),
}


def _write_layout(root: Path, layout: str, rate: int = 22050) -> None:
    folder, ext, fmt, subtype = LAYOUTS[layout]
    noise = np.random.default_rng(0).normal(0, 0.1, rate).astype(np.float32)  # 1 s is enough for headers
    for genre in ("blues", "jazz"):
        for number in (0, 1):
            target = root / folder.format(genre=genre) / f"{genre}.{number:05d}.{ext}"
            target.parent.mkdir(parents=True, exist_ok=True)
            sf.write(target, noise, rate, format=fmt, subtype=subtype)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("archived", [False, True], ids=["dir", "tar.gz"])
def test_every_layout_is_ingested(tmp_path, layout, archived):
    source = tmp_path / "src"
    _write_layout(source, layout)
    if archived:
        archive = tmp_path / "gtzan.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(source, arcname="gtzan")
        source = archive
    root = unpack_source(source, tmp_path / "extracted")
    manifest = build_manifest(root, genres=GENRES, extensions=["au", "wav", "flac"], max_file_mb=10,
                              relative_to=tmp_path)
    assert list(manifest.columns) == MANIFEST_COLUMNS
    assert sorted(manifest["track"]) == ["blues.00000", "blues.00001", "jazz.00000", "jazz.00001"]
    assert (manifest["sample_rate"] == 22050).all() and (manifest["channels"] == 1).all()
    assert (manifest["bit_depth"] == 16).all() and (manifest["error"] == "").all()
    assert manifest["duration_s"].between(0.99, 1.01).all()
    assert manifest["sha256"].str.len().eq(64).all()
    assert manifest.set_index("track").loc["blues.00000", "artist_group"] == "0"  # Sturm's group of blues.00000


def test_unreadable_file_is_named_not_fatal(tmp_path):
    _write_layout(tmp_path / "src", "flac")
    (tmp_path / "src/genres/jazz/jazz.00001.flac").write_bytes(b"not audio at all")
    manifest = build_manifest(tmp_path / "src", genres=GENRES, extensions=["flac"], max_file_mb=10,
                              relative_to=tmp_path).set_index("track")
    assert "cannot read audio header" in manifest.loc["jazz.00001", "error"]
    assert manifest.drop("jazz.00001")["error"].eq("").all()


def test_same_track_twice_is_refused(tmp_path):
    _write_layout(tmp_path / "src", "flac")
    _write_layout(tmp_path / "src", "kaggle_wav")
    with pytest.raises(ValueError, match="same track id"):
        discover_tracks(tmp_path / "src", genres=GENRES, extensions=["flac", "wav"])


def test_archive_with_escaping_member_is_refused(tmp_path):
    evil = tmp_path / "evil.tar.gz"
    payload = tmp_path / "payload.txt"
    payload.write_text("x")
    with tarfile.open(evil, "w:gz") as tar:
        tar.add(payload, arcname="../escaped.txt")
    with pytest.raises(tarfile.TarError):
        unpack_source(evil, tmp_path / "out" / "extracted")
    assert not (tmp_path / "out" / "escaped.txt").exists()


def test_real_shared_gtzan_manifest(gtzan_manifest, params, tmp_path):
    root = gtzan_manifest["abs_path"].iloc[0].parents[2]
    manifest = build_manifest(root, genres=params["genres"], extensions=params["data"]["audio_extensions"],
                              max_file_mb=params["limits"]["max_file_mb"], relative_to=root, n_jobs=2)
    assert len(manifest) == len(gtzan_manifest) == 173
    merged = manifest.merge(gtzan_manifest, on="track", suffixes=("", "_shared"))
    assert (merged["sha256"] == merged["sha256_shared"]).all()
    assert (merged["artist_group"] == merged["artist_group_shared"].fillna("")).all()
