"""A batch folder of incoming audio: which files to score, and which are refused (with the reason).

Uploads are untrusted: a symlink may point anywhere, so every entry must resolve inside the batch
folder; a refused file is reported and the rest of the batch goes on.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from musicgenre.errors import DataError

_BATCH_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class BatchFile:
    key: str  # path relative to the batch folder: the file's name in the store
    path: Path


@dataclass(frozen=True)
class Rejection:
    key: str
    path: str
    reason: str


def new_batch_id() -> str:
    """UTC time stamp, sortable and safe as a folder and partition name."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")


def check_batch_id(batch_id: str) -> str:
    """A batch id becomes a folder name: no separators, no `..`."""
    if not _BATCH_ID.match(batch_id) or ".." in batch_id:
        raise DataError(f"batch id {batch_id!r} must match {_BATCH_ID.pattern} and hold no '..'")
    return batch_id


def discover(*, folder: Path, extensions: list[str]) -> tuple[list[BatchFile], list[Rejection]]:
    """Every file under `folder` (recursively, links not followed into other folders): audio files
    to score, and refusals for links leaving the folder, broken links and non-audio suffixes."""
    root = Path(folder).resolve(strict=True)
    if not root.is_dir():
        raise NotADirectoryError(f"{folder}: not a folder")
    suffixes = {f".{ext.lower()}" for ext in extensions}
    accepted, refused = [], []
    for directory, dirs, names in os.walk(root, followlinks=False):
        dirs.sort()
        entries = [Path(directory) / name for name in sorted(names)]
        entries += [Path(directory) / name for name in dirs if (Path(directory) / name).is_symlink()]
        for entry in entries:
            key = entry.relative_to(root).as_posix()
            reason = _refusal(entry=entry, root=root, suffixes=suffixes)
            if reason:
                refused.append(Rejection(key=key, path=str(entry), reason=f"{entry}: {reason}"))
            else:
                accepted.append(BatchFile(key=key, path=entry))
    return accepted, refused


def _refusal(*, entry: Path, root: Path, suffixes: set[str]) -> str | None:
    """Why `entry` must not be scored, or None."""
    if entry.is_symlink():
        target = entry.resolve()
        if not target.is_relative_to(root):
            return f"symlink pointing outside the batch folder ({os.readlink(entry)}), refused"
        if not target.exists():
            return "broken symlink"
        if target.is_dir():
            return "symlink to a folder, refused (scan the folder itself)"
    if entry.suffix.lower() not in suffixes:
        return f"not an audio file suffix (accepted: {', '.join(sorted(suffixes))})"
    return None
