"""`python -m monitoring.cli`: drift checks from the command line.

  score-batch PATH                 score a folder of audio with the champion and check drift against GTZAN train
  attach-labels BATCH_ID CSV       attach ground-truth genres (file,genre) to a stored batch

(The daily drift flow once on monitoring.inbox is `python -m flows.drift`: flows drive monitoring,
never the other way round.)

Exit codes: 0 no drift, 3 drift, 1 error (no champion, unreadable folder, no file could be scored),
2 usage error.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from monitoring.summary import DriftSummary
from musicgenre.config import load_params
from musicgenre.errors import RegistryError, reported
from musicgenre.serving.champion import NoChampion

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, help="Drift monitoring of new music")
EXIT_OK, EXIT_ERROR, EXIT_DRIFT = 0, 1, 3


@app.callback()
def commands() -> None:
    """Drift monitoring of new music (a group, so `score-batch` stays a subcommand)."""


def exit_code(summary: DriftSummary) -> int:
    return EXIT_DRIFT if summary.drift else EXIT_OK


def render(*, summary: DriftSummary, console: Console) -> None:
    """Verdict, signals, most moved features, genre distribution and refused files."""
    features, confidence = summary.signals.features, summary.signals.confidence
    colour = "red" if summary.drift else "green"
    console.print(
        f"[bold {colour}]{summary.verdict}[/] batch {summary.batch_id}: "
        f"{features.count} drifted features, share {features.share:.3f} "
        f"(threshold {features.threshold}); mean confidence {confidence.reference_mean:.3f} → "
        f"{confidence.current_mean:.3f}; "
        f"genre distribution p={summary.signals.genre_distribution.p_value:.2g}"
    )
    console.print(
        f"estimated accuracy {summary.estimate_text()} (no labels); "
        f"threshold {features.threshold:.3f} at {summary.n_current} files, false-alarm rate {features.false_alarm:.1%}"
    )
    if summary.realized:
        console.print(f"realized accuracy {summary.realized.accuracy:.1%} on {summary.realized.n_labelled} labelled")
    for line in summary.top_features_text:
        console.print(f"  {line}")
    for novel in summary.novel_files or []:
        console.print(f"  novel: {novel['file']} (percentile {novel['novelty_percentile']:.0f})")
    table = Table("genre", "reference share", "batch share", title="Predicted genres")
    for row in summary.genre_distribution:
        table.add_row(row.genre, f"{row.reference_share:.1%}", f"{row.current_share:.1%}")
    console.print(table)
    for item in summary.rejected:
        console.print(f"[yellow]refused[/] {item['reason']}", soft_wrap=True)
    console.print(f"report: {summary.report_dir}/drift.html")


@app.command("score-batch")
def score_batch_command(
    folder: Path = typer.Argument(..., help="folder of audio files (searched recursively)"),
    batch_id: Optional[str] = typer.Option(None, help="batch id (default: UTC time stamp)"),
    tracking_uri: Optional[str] = typer.Option(None, help="MLflow registry (default: env or params)"),
    params_file: Optional[Path] = typer.Option(None, "--params", help="params.yaml to read"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Score a batch with the champion, write the drift report and the dashboard run."""
    from monitoring.scoring import load_scoring_model

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    with reported("error", code=EXIT_ERROR):
        params = load_params(params_file)
        try:
            champion = load_scoring_model(params=params, tracking_uri=tracking_uri)
        except NoChampion as exc:
            raise RegistryError(f"no champion to score with: {exc}") from exc
        from monitoring.check import check_batch  # Evidently (seconds to import) only once a champion is there

        summary = check_batch(
            folder=folder, params=params, champion=champion, batch_id=batch_id, show_progress=not as_json
        )
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), indent=2, default=str))
    else:
        render(summary=summary, console=Console())
    raise typer.Exit(exit_code(summary))


@app.command("attach-labels")
def attach_labels_command(
    batch_id: str = typer.Argument(..., help="a scored batch's id"),
    labels: Path = typer.Argument(..., help="CSV with columns file (as stored for the batch), genre"),
    params_file: Optional[Path] = typer.Option(None, "--params", help="params.yaml to read"),
) -> None:
    """Attach ground-truth genres to a stored batch: realized accuracy and per-genre recall next to the estimate."""
    with reported("error", code=EXIT_ERROR):
        from monitoring.batch import check_batch_id
        from monitoring.labels import attach_labels

        summary = attach_labels(batch_id=check_batch_id(batch_id), path=labels, params=load_params(params_file))
    realized = summary.realized
    assert realized is not None  # attach_labels always sets it
    typer.echo(
        f"batch {batch_id}: realized accuracy {realized.accuracy:.1%} on {realized.n_labelled} labelled files; "
        f"estimated {summary.estimate_text()}"
    )
    recall = ", ".join(f"{g} {r:.0%}" for g, r in realized.recall.items() if r is not None)
    typer.echo(f"recall per genre: {recall}")


if __name__ == "__main__":
    app()
