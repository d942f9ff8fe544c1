"""The inbox: files dropped there are moved (never deleted) into archive/<batch_id>/, which then is
the batch folder that gets scored, so a file is scored once and its batch can be found later."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from monitoring.batch import check_batch_id


def pending(*, inbox: Path) -> list[Path]:
    """Files and symlinks waiting in the inbox (hidden files, e.g. partial uploads, are left alone)."""
    if not Path(inbox).is_dir():
        return []
    found = []
    for directory, dirs, names in os.walk(inbox, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(directory) / name for name in sorted(names) if not name.startswith(".")]
        found += [Path(directory) / d for d in dirs if (Path(directory) / d).is_symlink()]
    return found


def take(*, inbox: Path, archive: Path, batch_id: str) -> Path | None:
    """Move the pending files into archive/<batch_id>/ keeping their relative paths (a symlink moves
    as the link itself); None when the inbox is empty."""
    files = pending(inbox=inbox)
    if not files:
        return None
    target = Path(archive) / check_batch_id(batch_id)
    if target.exists():
        raise FileExistsError(f"{target}: batch folder already exists")
    for path in files:
        destination = target / path.relative_to(inbox)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), str(destination))  # a rename on one file system; copy + remove across
    return target
