"""Stage ingest: find every GTZAN track in the DVC-tracked source and write the audio manifest."""

from __future__ import annotations

from typing import Any

from musicgenre.config import project_root, resolve
from musicgenre.ingest import build_manifest, unpack_source
from musicgenre.io import write_csv
from stages._cli import run_stage


def ingest(params: dict[str, Any]) -> dict[str, Any]:
    """Write the manifest: track, genre, path, sha256, duration, rate, channels, bit depth, artist group."""
    paths = params["paths"]
    root = unpack_source(resolve(paths["raw"]), resolve(paths["ingest_dir"]) / "audio")
    manifest = build_manifest(
        root,
        genres=params["genres"],
        extensions=params["data"]["audio_extensions"],
        max_file_mb=params["limits"]["max_file_mb"],
        relative_to=project_root(),
        n_jobs=params["data"]["n_jobs"],
    )
    write_csv(resolve(paths["manifest"]), manifest)
    return {
        "tracks": len(manifest),
        "unreadable": int((manifest["error"] != "").sum()),
        "per_genre": manifest["genre"].value_counts().sort_index().to_dict(),
    }


if __name__ == "__main__":
    run_stage(ingest)
