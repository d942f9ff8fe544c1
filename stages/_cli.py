"""The thin CLI shared by every stage: read params.yaml, run the stage function, print one line.

The line says what the stage did (counts or its key metric), how long it took and where it wrote; the
full summary is in the stage's own report files. A stage stopped by a domain error (GenreError, or an
OSError / ValueError from a path or a setting) prints `stage <name> failed: <reason>` and exits 1.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer

from musicgenre.config import load_params
from musicgenre.errors import GenreError, reported
from stages.table import Stage, StageFunction, stage_of

PARAMS_HELP = "params.yaml to read (default: the project's)"


class StageError(GenreError, RuntimeError):
    """A stage stopped on purpose; the message says which stage and why."""


def headline(*, stage: Stage, item: str | None, summary: Any, seconds: float, output: str) -> str:
    """`split: grouped: test 35, train 100, valid 35; random: ... in 1.2 s -> <root>/artifacts/split/splits.csv`."""
    told = stage.headline(summary) if isinstance(summary, dict) else ""
    label = f"{stage.name}@{item}" if item else stage.name
    return f"{label}: {told + ' ' if told else ''}in {seconds:.1f} s -> {output}"


def execute(*, stage: Stage, function: StageFunction, params_file: Path | None, item: str | None) -> str:
    """Run the stage once; its headline, or SystemExit(1) with one line on a domain error."""
    label = f"{stage.name}@{item}" if item else stage.name
    with reported(f"stage {label} failed"):
        params = load_params(params_file)
        started = time.perf_counter()
        summary = function(params, **({stage.foreach: item} if stage.foreach else {}))
        return headline(
            stage=stage,
            item=item,
            summary=summary,
            seconds=time.perf_counter() - started,
            output=stage.output(params, item),
        )


def _module_of(function: StageFunction) -> str:
    """The function's module name, also when its module runs as __main__ (`python -m stages.split`)."""
    if function.__module__ != "__main__":
        return function.__module__
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    return spec.name if spec else "__main__"


def run_stage(function: StageFunction) -> None:
    """The command line of `function`'s stage (its row in stages.table), with `--<foreach>` for a foreach stage."""
    stage = stage_of(module=_module_of(function), function=function.__name__)
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    if stage.foreach:

        @app.command(help=function.__doc__)
        def each(
            item: str = typer.Option(..., f"--{stage.foreach}", help="the dvc.yaml foreach item"),
            params: Optional[Path] = typer.Option(None, help=PARAMS_HELP),
        ) -> None:
            typer.echo(execute(stage=stage, function=function, params_file=params, item=item))
    else:

        @app.command(help=function.__doc__)
        def single(params: Optional[Path] = typer.Option(None, help=PARAMS_HELP)) -> None:
            typer.echo(execute(stage=stage, function=function, params_file=params, item=None))

    app(args=sys.argv[1:], prog_name=f"python -m {stage.module}")
