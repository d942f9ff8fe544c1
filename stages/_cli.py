"""The thin CLI shared by every stage: read params.yaml, run the stage function, print its summary."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from musicgenre.config import load_params


class StageError(RuntimeError):
    """A stage stopped on purpose; the message says which stage and why."""


def run_stage(stage: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    app = typer.Typer(add_completion=False, help=stage.__doc__)

    @app.command()
    def main(params: Optional[Path] = typer.Option(None, help="params.yaml to read (default: the project's)")):
        try:
            summary = stage(load_params(params))
        except StageError as exc:
            typer.echo(f"stage {stage.__name__} failed: {exc}", err=True)
            raise typer.Exit(code=1)
        typer.echo(json.dumps(summary, indent=2, default=str))

    app(args=sys.argv[1:], prog_name=f"python -m stages.{stage.__module__.split('.')[-1]}")
