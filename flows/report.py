"""The Prefect artifacts of a training run: what each stage did, the models' metrics
(reports/eval/metrics.json) and the champion (reports/register/champion.json), when they exist."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from musicgenre.config import resolve

# The files stages.evaluate and stages.register write into their report_dir (read when they exist).
METRICS_FILE, CHAMPION_FILE = "metrics.json", "champion.json"


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """{"valid": {"macro_f1": 0.7}} -> {"valid_macro_f1": 0.7}; numbers rounded for the table."""
    if not isinstance(node, dict):
        return {prefix: round(node, 4) if isinstance(node, float) else node}
    flat: dict[str, Any] = {}
    for key, value in node.items():
        flat.update(_flatten(value, f"{prefix}_{key}" if prefix else str(key)))
    return flat


def metric_rows(metrics: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One row per model and protocol from evaluate's {model: {protocol: {split: {metric: value}}}}."""
    rows = []
    for model, by_protocol in (metrics or {}).items():
        for protocol, scores in by_protocol.items():
            rows.append({"model": model, "protocol": protocol, **_flatten(scores)})
    return rows


def _markdown_table(rows: list[dict[str, Any]]) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row.get(column, "")) for column in columns) + " |" for row in rows]
    return "\n".join(lines)


def publish_report(*, done: list[dict[str, Any]], params: dict[str, Any], failure: str | None) -> str:
    """A markdown artifact (stages, metrics, champion or failure) and a table artifact of the metrics."""
    metrics = _read_json(resolve(params["evaluate"]["report_dir"]) / METRICS_FILE) if "evaluate" in params else None
    champion = _read_json(resolve(params["register"]["report_dir"]) / CHAMPION_FILE) if "register" in params else None
    stages = [{key: step[key] for key in ("stage", "action", "seconds")} for step in done]
    parts = [
        "# Training run",
        f"**Failed**: {failure}" if failure else "**Completed**",
        "## Stages",
        _markdown_table(stages) if stages else "no stage ran",
    ]
    rows = metric_rows(metrics)
    if rows:
        parts += ["## Metrics (reports/eval/metrics.json)", _markdown_table(rows)]
        create_table_artifact(key="training-metrics", table=rows, description="evaluate: metrics per model/protocol")
    if champion:
        version = champion.get("champion", {}).get("version", champion.get("version"))
        parts += [f"## Champion: version {version}", "```json\n" + json.dumps(champion, indent=2) + "\n```"]
    markdown = "\n\n".join(parts)
    create_markdown_artifact(key="training-run", markdown=markdown, description="stages, metrics and champion")
    return markdown
