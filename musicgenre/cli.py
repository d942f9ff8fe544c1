"""`genre` command line: `genre data sync` (data/gtzan in line with data.dvc), `genre data scale-corpus`
(an N-track corpus for cost measurements) and `genre predict PATH...`
(the `predict` console script: top genres from the registry's champion).

An error the user can fix (a missing source, an unreadable params file, a failed DVC call) is one line
`error: <reason>` on stderr and exit code 1; `genre predict` keeps its own exit codes (musicgenre.predict).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import datasource, predict
from .config import load_params
from .errors import reported

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, help="GTZAN genre platform")
data_app = typer.Typer(add_completion=False, help="The DVC-tracked GTZAN data")
app.add_typer(data_app, name="data")
app.command("predict")(predict.main)  # `genre predict PATH...` = the `predict` console script


@data_app.command("sync")
def data_sync(params: Optional[Path] = typer.Option(None, help="params.yaml to read")) -> None:
    """Bring data/gtzan in line with data.dvc (remote, else the configured source)."""
    typer.echo(f"data.dvc: {datasource.sync(load_params(params))}")


@data_app.command("scale-corpus")
def data_scale_corpus(
    tracks: int = typer.Option(..., "--tracks", help="tracks in the corpus (the real ones first, then variants)"),
    out: Path = typer.Option(..., "--out", help="folder to write (replaced whole); use it as data.source"),
    source: Optional[Path] = typer.Option(None, help="real GTZAN folder (default: data.source)"),
    params: Optional[Path] = typer.Option(None, help="params.yaml to read"),
) -> None:
    """Build an N-track corpus for cost measurements from the real tracks (label-preserving transforms)."""
    from .scale_corpus import build_corpus, check_output

    settings = load_params(params)
    real = source or datasource.configured_source(settings)
    check_output(out=out, source=real)
    plan = build_corpus(params=settings, source=real, out=out, tracks=tracks)
    typer.echo(f"scale corpus: {len(plan)} tracks ({int((plan['round'] > 0).sum())} variants) -> {out}")


def main() -> None:
    """The `genre` console script: the app, with user errors told in one line."""
    with reported("error"):
        app(prog_name="genre")


if __name__ == "__main__":
    main()
