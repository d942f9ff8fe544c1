"""A registry version's bundle: everything it needs to serve, fixed when it is registered.

    manifest.json   sha256 of every other file (the bundle's identity: its own hash is the
                    `bundle_sha256` tag of the registry version)
    runtime.json    the feature settings and input limits it was trained with, the runtime API
    model/          the model folder (meta.json, ONNX graphs or skops head, the tagger for transfer)
    code/musicgenre the project's package as it was at registration (imported under a private name)

A bundle is built once, into a temporary folder renamed into place, and never changed after.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from ..io import atomic_dir, file_sha256
from ..models.predictor import PREDICTIONS_FILE
from .loader import CODE_FOLDER, MANIFEST_FILE, PACKAGE

RUNTIME_FILE = "runtime.json"
MODEL_FOLDER = "model"
RUNTIME_API = 1  # BundleModel.open / classes / predict_paths; bump when that contract changes
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
CODE_SUFFIXES = (".py", ".csv")  # the package's modules and its resource tables


class BundleError(RuntimeError):
    """A bundle that is incomplete or was changed after it was built; the message names the file."""


def build_bundle(*, model_dir: Path, target: Path, settings: dict[str, Any]) -> str:
    """Write the bundle of `model_dir` at `target`; returns its sha256 (of manifest.json)."""
    with atomic_dir(target) as tmp:
        shutil.copytree(model_dir, tmp / MODEL_FOLDER, ignore=shutil.ignore_patterns(PREDICTIONS_FILE))
        for source in sorted(PACKAGE_ROOT.rglob("*")):
            if source.suffix in CODE_SUFFIXES and "__pycache__" not in source.parts:
                copy = tmp / CODE_FOLDER / PACKAGE / source.relative_to(PACKAGE_ROOT)
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, copy)
        (tmp / RUNTIME_FILE).write_text(json.dumps({**settings, "api": RUNTIME_API}, indent=2, sort_keys=True))
        files = {str(p.relative_to(tmp)): file_sha256(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        (tmp / MANIFEST_FILE).write_text(json.dumps({"files": files}, indent=2, sort_keys=True))
    return file_sha256(target / MANIFEST_FILE)


def verify_bundle(bundle: Path, *, expected_sha256: str | None = None) -> dict[str, Any]:
    """Check every file against the manifest (and the manifest against the registry's hash); returns
    runtime.json. A missing, extra or changed file raises BundleError naming it."""
    bundle = Path(bundle)
    manifest_path = bundle / MANIFEST_FILE
    if not manifest_path.is_file():
        raise BundleError(f"{manifest_path}: missing; not a model bundle")
    raw = manifest_path.read_bytes()
    if expected_sha256 and hashlib.sha256(raw).hexdigest() != expected_sha256:
        raise BundleError(f"{manifest_path}: does not match the registry version's bundle_sha256")
    listed = json.loads(raw)["files"]
    for name, digest in listed.items():
        path = bundle / name
        if not path.is_file():
            raise BundleError(f"{path}: missing from the bundle")
        if file_sha256(path) != digest:
            raise BundleError(f"{path}: changed since the bundle was built (sha256 differs)")
    return json.loads((bundle / RUNTIME_FILE).read_text(encoding="utf-8"))
