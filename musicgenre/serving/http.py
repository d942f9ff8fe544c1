"""The champion as an HTTP scoring service for other programs (FastAPI on 127.0.0.1).

    POST /predict?filename=song.mp3   body: the audio file's bytes   -> top-k genres of the champion
    GET  /health                                                      -> the champion's name and version

The body is the raw file (`curl --data-binary @song.mp3`), so no multipart parser is needed. An upload
larger than `serve.max_upload_mb` is refused from its Content-Length before the body is read, or as
soon as the streamed body passes the limit; an empty, corrupt or non-audio upload gets a 4xx naming
the reason, and the service goes on. The alias is re-read from the registry on every request (a
read-only query), so a promotion is served from the next request on, without a restart.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Optional

import numpy as np
import typer
from fastapi import FastAPI, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from ..config import load_params
from .champion import ChampionVersion, NoChampion, open_champion, resolve, resolve_tracking_uri

MB = 1024 * 1024


class ChampionHolder:
    """The opened champion, replaced when the registry's alias names another version."""

    def __init__(self, *, uri: str, name: str, alias: str, warmup_seconds: float):
        self.uri, self.name, self.alias, self.warmup_seconds = uri, name, alias, warmup_seconds
        self.lock = threading.Lock()
        self.version: ChampionVersion | None = None
        self.model: Any = None

    def current(self) -> tuple[ChampionVersion, Any]:
        latest = resolve(uri=self.uri, name=self.name, alias=self.alias)
        with self.lock:
            if self.version != latest:
                self.version, self.model = open_champion(uri=self.uri, name=self.name, alias=self.alias)
                warm_up(self.model, seconds=self.warmup_seconds)
            return self.version, self.model


def warm_up(model: Any, *, seconds: float) -> None:
    """One predict of generated noise when a version is opened: its first predict loads the feature code
    and builds filter banks (~1.5 s), which no client's request should wait for."""
    import soundfile as sf

    rate = 22050
    noise = np.random.default_rng(0).normal(scale=0.1, size=int(rate * seconds)).astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="genre-warmup-") as folder:
        path = Path(folder) / "warmup.wav"
        sf.write(path, noise, rate)
        model.predict_paths([str(path)])


async def read_limited(request: Request, *, limit: int) -> bytes:
    """The body, refused (413) from its declared length or once it streams past `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"upload of {int(declared) / MB:.1f} MB is above the limit of {limit / MB:.0f} MB")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, f"upload is above the limit of {limit / MB:.0f} MB")
    if not body:
        raise HTTPException(400, "empty upload (0 bytes)")
    return bytes(body)


def score_upload(*, model: Any, data: bytes, filename: str, top_k: int, extensions: list[str]) -> dict[str, Any]:
    """Top-k genres and the genre set of one uploaded file; an unusable file is a 422 naming the reason.
    The client's file name is only echoed and lends a known audio suffix: it never becomes a path."""
    suffix = Path(filename).suffix.lower()
    suffix = suffix if suffix[1:] in extensions else ""
    with tempfile.TemporaryDirectory(prefix="genre-upload-") as folder:
        path = Path(folder) / f"upload{suffix}"
        path.write_bytes(data)
        proba, errors = model.predict_paths([str(path)])
    if errors[0]:
        raise HTTPException(422, f"{filename}: {errors[0].replace(str(path) + ': ', '')}")
    order = np.argsort(-proba[0], kind="stable")[:top_k]
    top = [{"genre": model.classes[i], "probability": round(float(proba[0][i]), 4)} for i in order]
    # a version registered before bundles carried a calibration has no sets
    return {"top": top, "set": model.genre_sets(proba)[0] if hasattr(model, "genre_sets") else []}


def create_app(*, params: dict[str, Any], tracking_uri: str | None = None) -> FastAPI:
    settings, register = params["serve"], params["register"]
    holder = ChampionHolder(
        uri=tracking_uri or resolve_tracking_uri(params=params),
        name=register["model_name"],
        alias=register["alias"],
        warmup_seconds=settings["warmup_seconds"],
    )
    app = FastAPI(title="GTZAN genre scoring", docs_url=None, redoc_url=None)
    # uploads scored at once are bounded: each predict holds a decoded file and uses every core
    scoring = threading.BoundedSemaphore(settings["concurrent_scoring"])

    def score(**kwargs: Any) -> dict[str, Any]:
        with scoring:
            return score_upload(**kwargs)

    def champion() -> tuple[ChampionVersion, Any]:
        try:
            return holder.current()
        except NoChampion as exc:
            raise HTTPException(503, f"no champion model: {exc}") from None

    @app.get("/health")
    async def health() -> dict[str, Any]:
        found, _ = await run_in_threadpool(champion)
        return {"status": "ok", "model": found.name, "version": found.version}

    @app.post("/predict")
    async def predict(request: Request, filename: str = "upload") -> dict[str, Any]:
        data = await read_limited(request, limit=int(settings["max_upload_mb"] * MB))
        found, model = await run_in_threadpool(champion)
        scored = await run_in_threadpool(
            score,
            model=model,
            data=data,
            filename=filename,
            top_k=params["predict"]["top_k"],
            extensions=params["predict"]["extensions"],
        )
        return {"filename": filename, **scored, "model": {"name": found.name, "version": found.version}}

    return app


cli = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@cli.command()
def main(
    host: Optional[str] = typer.Option(None, help="bind address (default: params serve.host, 127.0.0.1)"),
    port: Optional[int] = typer.Option(None, help="port (default: params serve.port)"),
    tracking_uri: Optional[str] = typer.Option(None, help="MLflow registry (default: env or params)"),
    params_file: Optional[Path] = typer.Option(None, "--params", help="params.yaml to read"),
) -> None:
    """Serve the registry's champion over HTTP: POST /predict with the audio file as the body."""
    import uvicorn

    params = load_params(params_file)
    settings = params["serve"]
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    uvicorn.run(
        create_app(params=params, tracking_uri=tracking_uri),
        host=host or settings["host"],
        port=port or settings["port"],
        log_level="warning",
    )


if __name__ == "__main__":
    cli()
