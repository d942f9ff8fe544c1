"""`genre` command line: `genre data sync` (data/gtzan in line with data.dvc) and `genre predict PATH...`
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


def main() -> None:
    """The `genre` console script: the app, with user errors told in one line."""
    with reported("error"):
        app(prog_name="genre")


if __name__ == "__main__":
    main()
