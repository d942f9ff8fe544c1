"""Bring GTZAN in from any of its common layouts (directory or archive) and describe every track."""

from __future__ import annotations

import os
import re
import shutil
import tarfile
from importlib import resources
from pathlib import Path

import pandas as pd
from joblib import Parallel, delayed

from .audio import AudioError, probe
from .errors import DataError
from .io import file_sha256

# <genre>.000NN.<ext> is shared by the original .au archive, the WAV copy and the FLAC layout
TRACK_NAME = re.compile(r"^(?P<genre>[a-z]+)\.(?P<number>\d{5})\.(?P<ext>[a-z0-9]+)$", re.IGNORECASE)
GROUPS_FILE = "splits/sturm_artist_groups.csv"  # artist groups inside a source folder (optional)
MANIFEST_COLUMNS = [
    "track",
    "genre",
    "path",
    "sha256",
    "duration_s",
    "sample_rate",
    "channels",
    "bit_depth",
    "artist_group",
    "error",
]


def unpack_source(raw: Path, extract_dir: Path) -> Path:
    """A directory is used in place; a tar archive (.tar.gz, .tgz, .tar) is extracted safely."""
    if raw.is_dir():
        return raw
    if not tarfile.is_tarfile(raw):
        raise DataError(f"{raw}: GTZAN source must be a directory or a tar archive (.tar.gz)")
    staging = extract_dir.with_name(extract_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    with tarfile.open(raw) as archive:
        archive.extractall(staging, filter="data")  # refuses absolute paths, '..' and links out
    shutil.rmtree(extract_dir, ignore_errors=True)
    os.replace(staging, extract_dir)
    return extract_dir


def discover_tracks(root: Path, *, genres: list[str], extensions: list[str]) -> pd.DataFrame:
    """Every `<genre>.NNNNN.<ext>` audio file under root, one row per track id."""
    rows = []
    for path in sorted(root.rglob("*")):
        match = TRACK_NAME.match(path.name)
        if not (match and path.is_file() and not path.name.startswith("._")):
            continue
        genre, ext = match["genre"].lower(), match["ext"].lower()
        if ext in extensions and genre in genres:
            rows.append({"track": f"{genre}.{match['number']}", "genre": genre, "path": path})
    tracks = pd.DataFrame(rows, columns=["track", "genre", "path"])
    repeated = tracks.loc[tracks["track"].duplicated(keep=False), "path"].astype(str).tolist()
    if repeated:
        raise DataError(f"{root}: the same track id appears in several files: {repeated[:10]}")
    if tracks.empty:
        raise DataError(f"{root}: no GTZAN audio found (expected <genre>/<genre>.000NN.{{au,wav,flac}})")
    return tracks.reset_index(drop=True)


def source_artist_groups(root: Path) -> dict[str, str]:
    """The source's own artist groups (GROUPS_FILE, as the shared source and a scale corpus carry them),
    else the packaged Sturm grouping: a corpus's variants keep their source track's artist."""
    own = root / GROUPS_FILE
    if not own.is_file():
        return sturm_artist_groups()
    try:
        table = pd.read_csv(own, dtype=str, usecols=["track", "artist_group_id"])
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{own}: not an artist-group table (track, artist_group_id): {exc}") from None
    return dict(zip(table["track"], table["artist_group_id"].fillna("")))


def sturm_artist_groups() -> dict[str, str]:
    """Sturm's artist grouping of all 1000 GTZAN tracks, shipped with the package."""
    source = resources.files(f"{__package__}.resources") / "sturm_artist_groups.csv"
    with source.open("r", encoding="utf-8") as handle:
        table = pd.read_csv(handle, dtype=str)
    return dict(zip(table["track"], table["artist_group_id"].fillna("")))


def describe_file(path: Path, *, max_file_mb: float | None) -> dict:
    """Header facts and the content hash of one file; a bad file yields an `error`, not an exception."""
    row: dict = {
        "sha256": "",
        "duration_s": float("nan"),
        "sample_rate": pd.NA,
        "channels": pd.NA,
        "bit_depth": pd.NA,
        "error": "",
    }
    try:
        info = probe(path, max_file_mb=max_file_mb)
        row.update(
            duration_s=round(info.duration_s, 4),
            sample_rate=info.sample_rate,
            channels=info.channels,
            bit_depth=info.bit_depth if info.bit_depth else pd.NA,
        )
        row["sha256"] = file_sha256(path)
    except AudioError as exc:
        row["error"] = exc.reason
    return row


def build_manifest(
    root: Path,
    *,
    genres: list[str],
    extensions: list[str],
    max_file_mb: float | None,
    relative_to: Path,
    n_jobs: int = 1,
) -> pd.DataFrame:
    tracks = discover_tracks(root, genres=genres, extensions=extensions)
    facts = Parallel(n_jobs=n_jobs)(delayed(describe_file)(p, max_file_mb=max_file_mb) for p in tracks["path"])
    manifest = pd.concat([tracks, pd.DataFrame(facts)], axis=1)
    groups = source_artist_groups(root)
    manifest["artist_group"] = manifest["track"].map(groups).fillna("")
    manifest["path"] = [os.path.relpath(p, relative_to) for p in manifest["path"]]
    for column in ("sample_rate", "channels", "bit_depth"):
        manifest[column] = manifest[column].astype("Int64")
    return manifest[MANIFEST_COLUMNS]
