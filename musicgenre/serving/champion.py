"""The champion, resolved through the registry without importing MLflow (about 4 s of imports).

Every call reads the alias from the registry itself: a sqlite registry (the default) is queried
read-only with the standard library, an MLflow server through its REST API. Only a version's bundle
may come from a cache, keyed by registry, model name and version: MLflow never changes a registered
version's artifacts, and the bundle is checked file by file against the `bundle_sha256` tag the
version got at registration. So a moved alias is seen by the next call, and no cache can serve
another model than the one the alias names now. The MLflow client is imported only to download a
version's bundle from a remote artifact store, once per version.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from ..config import load_params, project_root
from ..errors import GenreError
from ..io import atomic_dir
from .loader import open_bundle

TRACKING_ENV = "MLFLOW_TRACKING_URI"
CACHE_ENV = "MUSICGENRE_MODEL_CACHE"
SQLITE = "sqlite:///"
BUNDLE_ARTIFACT = "bundle"  # the pyfunc artifact holding the bundle (registry.log_version)
BUNDLE_TAG = "bundle_sha256"


class NoChampion(GenreError, LookupError):
    """The registry has no version under the alias (or no such model)."""


@dataclass(frozen=True)
class ChampionVersion:
    uri: str
    name: str
    alias: str
    version: str
    storage: str  # the version's artifact location (a file:// URI for a local store)
    bundle_sha256: str | None


def resolve_tracking_uri(*, params: dict[str, Any] | None = None) -> str:
    """$MLFLOW_TRACKING_URI, else params register.tracking_uri with a relative sqlite path made absolute."""
    if os.environ.get(TRACKING_ENV):
        return os.environ[TRACKING_ENV]
    uri = (params or load_params())["register"]["tracking_uri"]
    if uri.startswith(SQLITE) and not uri[len(SQLITE) :].startswith("/"):
        return SQLITE + str(project_root() / uri[len(SQLITE) :])
    return uri


def resolve(*, uri: str, name: str, alias: str) -> ChampionVersion:
    """The version the alias names right now."""
    if uri.startswith(SQLITE):
        return _resolve_sqlite(uri=uri, name=name, alias=alias)
    if uri.startswith(("http://", "https://")):
        return _resolve_rest(uri=uri, name=name, alias=alias)
    return _resolve_mlflow(uri=uri, name=name, alias=alias)


def _resolve_sqlite(*, uri: str, name: str, alias: str) -> ChampionVersion:
    path = Path(uri[len(SQLITE) :])
    if not path.is_file():
        raise NoChampion(f"no registry at {path}")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        row = db.execute(
            "SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?", (name, alias)
        ).fetchone()
        if row is None:
            raise NoChampion(f"model {name!r} has no version with alias {alias!r} in {path}")
        version = str(row[0])
        storage = db.execute(
            "SELECT storage_location FROM model_versions WHERE name = ? AND version = ?", (name, version)
        ).fetchone()[0]
        tag = db.execute(
            "SELECT value FROM model_version_tags WHERE name = ? AND version = ? AND key = ?",
            (name, version, BUNDLE_TAG),
        ).fetchone()
    return ChampionVersion(uri, name, alias, version, storage, tag[0] if tag else None)


def _resolve_rest(*, uri: str, name: str, alias: str) -> ChampionVersion:
    import httpx

    response = httpx.get(
        f"{uri.rstrip('/')}/api/2.0/mlflow/registered-models/alias", params={"name": name, "alias": alias}, timeout=10
    )
    if response.status_code == 404 or (response.status_code == 400 and "RESOURCE_DOES_NOT_EXIST" in response.text):
        raise NoChampion(f"model {name!r} has no version with alias {alias!r} at {uri}")
    response.raise_for_status()
    found = response.json()["model_version"]
    tags = {tag["key"]: tag["value"] for tag in found.get("tags", [])}
    return ChampionVersion(
        uri, name, alias, str(found["version"]), found.get("storage_location") or found["source"], tags.get(BUNDLE_TAG)
    )


def _resolve_mlflow(*, uri: str, name: str, alias: str) -> ChampionVersion:
    import mlflow
    from mlflow.tracking import MlflowClient

    try:
        found = MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version_by_alias(name, alias)
    except mlflow.exceptions.MlflowException as exc:
        raise NoChampion(str(exc).splitlines()[0]) from None
    storage = getattr(found, "storage_location", None) or found.source or ""
    return ChampionVersion(uri, name, alias, str(found.version), storage, found.tags.get(BUNDLE_TAG))


def bundle_folder(champion: ChampionVersion) -> Path:
    """The version's bundle: in place for a local artifact store, else downloaded once into the cache."""
    parsed = urlparse(champion.storage)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path)) / "artifacts" / BUNDLE_ARTIFACT
    key = hashlib.sha256(champion.uri.encode()).hexdigest()[:16]
    target = cache_root() / key / champion.name / champion.version
    if not target.is_dir():
        import mlflow

        with atomic_dir(target) as tmp:
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"{champion.storage.rstrip('/')}/artifacts/{BUNDLE_ARTIFACT}",
                dst_path=str(tmp),
                tracking_uri=champion.uri,
            )
    return target / BUNDLE_ARTIFACT


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "musicgenre" / "bundles")


def open_champion(*, uri: str, name: str, alias: str, workers: int = 1) -> tuple[ChampionVersion, Any]:
    """The champion version and its model, opened with the version's own code."""
    champion = resolve(uri=uri, name=name, alias=alias)
    model = open_bundle(bundle_folder(champion), expected_sha256=champion.bundle_sha256, workers=workers)
    return champion, model
