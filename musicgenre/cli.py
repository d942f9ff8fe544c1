"""`genre` command line: data sync (and, with later stages, predict and monitoring)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from musicgenre import datasource, predict
from musicgenre.config import load_params

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, help="GTZAN genre platform")
data_app = typer.Typer(add_completion=False, help="The DVC-tracked GTZAN data")
app.add_typer(data_app, name="data")
app.command("predict")(predict.main)  # `genre predict PATH...` = the `predict` console script


@data_app.command("sync")
def data_sync(params: Optional[Path] = typer.Option(None, help="params.yaml to read")) -> None:
    """Bring data/gtzan in line with data.dvc (remote, else the configured source)."""
    typer.echo(f"data.dvc: {datasource.sync(load_params(params))}")


if __name__ == "__main__":
    app()
