"""Great Expectations plumbing shared by the validation stages: named checks, one checkpoint run
with data docs, and results that name the offending rows."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

# No network on these machines: GX must not try to post usage statistics.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import great_expectations as gx  # noqa: E402
import great_expectations.expectations as gxe  # noqa: E402
from great_expectations.data_context.types.base import ProgressBarsConfig  # noqa: E402
from great_expectations.expectations.expectation import Expectation  # noqa: E402
from great_expectations.expectations.metadata_types import FailureSeverity  # noqa: E402

from .errors import ConfigError  # noqa: E402

# params.yaml speaks error/warn; GX records the same idea as the expectation's severity.
GX_SEVERITY = {"error": FailureSeverity.CRITICAL, "warn": FailureSeverity.WARNING}


@dataclass(frozen=True)
class Check:
    """One named rule with its severity; several GX expectations may share a name (one per column)."""

    name: str
    severity: str
    expectations: tuple[Expectation, ...]


@dataclass
class CheckResult:
    name: str
    severity: str
    success: bool = True
    unexpected_count: int = 0
    rows: list[str] = field(default_factory=list)  # offending row ids ("track" or "track/segment")
    errors: list[str] = field(default_factory=list)  # expectations that could not be evaluated
    details: list[str] = field(default_factory=list)  # per-expectation observations of failures

    def as_dict(self, *, id_key: str = "rows") -> dict[str, Any]:
        return {
            "severity": self.severity,
            "success": self.success,
            "unexpected_count": self.unexpected_count,
            id_key: self.rows,
            "errors": self.errors,
            "details": self.details,
        }


def make_check(*, name: str, severity: str, expectations: Sequence[Expectation]) -> Check:
    """Tag every expectation with the check name (meta) and GX severity, so results map back."""
    if severity not in GX_SEVERITY:
        raise ConfigError(f"check {name!r}: severity must be one of {sorted(GX_SEVERITY)}, not {severity!r}")
    for expectation in expectations:
        expectation.meta = {**(expectation.meta or {}), "check": name}
        expectation.severity = GX_SEVERITY[severity]
    return Check(name=name, severity=severity, expectations=tuple(expectations))


def open_context(*, project_dir: Path):
    """A file context in `project_dir`/gx, created on first use; analytics and progress bars off."""
    project_dir.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="file", project_root_dir=str(project_dir))
    if context.config.analytics_enabled is not False or context.variables.progress_bars is None:
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        context.enable_analytics(False)  # also saves the variables to great_expectations.yml
    return context


def run_checks(
    *, project_dir: Path, name: str, frame: pd.DataFrame, checks: Sequence[Check], id_columns: Sequence[str]
) -> list[CheckResult]:
    """Run all checks as one suite through a checkpoint that also rebuilds the data docs."""
    context = open_context(project_dir=project_dir)
    # Rebuilt from scratch each run: GX's add_or_update matches expectations pairwise (minutes for 200).
    for factory, kind in (
        (context.checkpoints, "checkpoint"),
        (context.validation_definitions, "validation"),
        (context.suites, "suite"),
    ):
        if f"{name}_{kind}" in {existing.name for existing in factory.all()}:
            factory.delete(name=f"{name}_{kind}")
    suite = context.suites.add(
        gx.ExpectationSuite(
            name=f"{name}_suite", expectations=[expectation for check in checks for expectation in check.expectations]
        )
    )
    batch = (
        context.data_sources.add_or_update_pandas(name=f"{name}_source")
        .add_dataframe_asset(name=f"{name}_frame")
        .add_batch_definition_whole_dataframe(f"{name}_batch")
    )
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{name}_validation", data=batch, suite=suite)
    )
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name=f"{name}_checkpoint",
            validation_definitions=[definition],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="update_data_docs")],
            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": list(id_columns)},
        )
    )
    outcome = checkpoint.run(batch_parameters={"dataframe": frame})
    (validation,) = outcome.run_results.values()
    return _collect(checks=checks, results=validation.results, id_columns=id_columns)


def _collect(*, checks: Sequence[Check], results: Sequence[Any], id_columns: Sequence[str]) -> list[CheckResult]:
    """Fold per-expectation results into one result per check, keeping the offending row ids."""
    by_name = {check.name: CheckResult(name=check.name, severity=check.severity) for check in checks}
    for result in results:
        config = result.expectation_config
        folded = by_name[config.meta["check"]]
        if result.success:
            continue
        folded.success = False
        label = f"{config.type}({config.kwargs.get('column', '')})"
        if result.exception_info.get("raised_exception"):
            folded.errors.append(f"{label}: {result.exception_info.get('exception_message')}")
            continue
        detail = result.result or {}
        rows = [_row_id(row, id_columns) for row in detail.get("unexpected_index_list") or []]
        folded.unexpected_count += int(detail.get("unexpected_count") or 0)
        folded.rows = sorted(set(folded.rows) | set(rows))
        folded.details.append(f"{label}: {_observed(detail)}")
    return list(by_name.values())


def _row_id(row: Any, id_columns: Sequence[str]) -> str:
    if not isinstance(row, dict):
        return str(row)
    return "/".join(str(row[column]) for column in id_columns)


def _observed(detail: dict[str, Any]) -> str:
    if "observed_value" in detail:
        return f"observed {detail['observed_value']}"
    values = detail.get("partial_unexpected_list") or []
    return f"{detail.get('unexpected_count', 0)} unexpected, e.g. {values[:3]}"


def failed(results: Sequence[CheckResult], *, severity: str) -> list[CheckResult]:
    return [result for result in results if not result.success and result.severity == severity]


def failure_message(results: Sequence[CheckResult], *, max_rows: int) -> str:
    """One line per failed check: its name, the offending ids (at most `max_rows`) and any errors."""
    lines = []
    for result in results:
        rows = result.rows[:max_rows] + (
            [f"... {len(result.rows) - max_rows} more"] if len(result.rows) > max_rows else []
        )
        reason = "; ".join(result.errors or result.details)
        lines.append(f"expectation '{result.name}' failed for {rows or 'the table'} ({reason})")
    return "\n".join(lines)


def data_docs_index(*, project_dir: Path) -> Path:
    return project_dir / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"


def audio_suite(*, params: dict[str, Any]) -> list[Check]:
    """The audio suite: one named check per rule, each with its severity from params.validate.severity."""
    section = params["validate"]
    duration, tolerance = section["expected_duration_s"], section["duration_tolerance_s"]
    rules = {
        "genre_in_labels": gxe.ExpectColumnValuesToBeInSet(column="genre", value_set=list(params["genres"])),
        "decodes": gxe.ExpectColumnValuesToBeInSet(column="decodes", value_set=[True]),
        "duration": gxe.ExpectColumnValuesToBeBetween(
            column="decoded_duration_s", min_value=duration - tolerance, max_value=duration + tolerance
        ),
        "sample_rate": gxe.ExpectColumnValuesToBeInSet(
            column="decoded_sample_rate", value_set=[section["expected_sample_rate"]]
        ),
        "channels": gxe.ExpectColumnValuesToBeInSet(
            column="decoded_channels", value_set=[section["expected_channels"]]
        ),
        "duplicate_audio": gxe.ExpectColumnValuesToBeUnique(column="audio_sha256"),
        "silence": gxe.ExpectColumnValuesToBeBetween(
            column="rms_dbfs", min_value=section["silence_max_rms_dbfs"], strict_min=True
        ),
        "clipping": gxe.ExpectColumnValuesToBeBetween(column="clip_fraction", max_value=section["clip_max_fraction"]),
        "band_limited": gxe.ExpectColumnValuesToBeBetween(
            column="band_edge_ratio", min_value=section["band_limit_min_ratio"]
        ),
    }
    return [
        make_check(name=name, severity=section["severity"][name], expectations=[rule]) for name, rule in rules.items()
    ]


def feature_suite(*, params: dict[str, Any], key_columns: Sequence[str], feature_columns: Sequence[str]) -> list[Check]:
    """The feature-table suite: exact schema, no NaN, finite and plausible values; every check is an error."""
    section, nyquist = params["validate"]["features"], params["features"]["sample_rate"] / 2
    limit = section["max_abs_value"]
    # Aggregates with a physical range (skewness has none): chroma and zcr are shares, frequencies <= Nyquist.
    bounded = {
        "chroma_range": ([c for c in feature_columns if c.startswith("chroma_")], 0.0, 1.0),
        "zcr_range": ([c for c in feature_columns if c in ("zcr_mean", "zcr_std")], 0.0, 1.0),
        "spectral_frequency_range": (
            [c for c in feature_columns if c in ("centroid_mean", "centroid_std", "rolloff_mean", "rolloff_std")],
            0.0,
            nyquist,
        ),
        "tempo_range": (["tempo"], section["tempo_min"], section["tempo_max"]),
    }
    checks = [
        make_check(
            name="schema",
            severity="error",
            expectations=[gxe.ExpectTableColumnsToMatchOrderedList(column_list=[*key_columns, *feature_columns])],
        ),
        make_check(
            name="not_null",
            severity="error",
            expectations=[
                gxe.ExpectColumnValuesToNotBeNull(column=column) for column in [*key_columns, *feature_columns]
            ],
        ),
        # Bounding |value| also rejects +-inf, which not-null lets through.
        make_check(
            name="finite_plausible",
            severity="error",
            expectations=[
                gxe.ExpectColumnValuesToBeBetween(column=column, min_value=-limit, max_value=limit)
                for column in feature_columns
            ],
        ),
    ]
    for name, (columns, low, high) in bounded.items():
        checks.append(
            make_check(
                name=name,
                severity="error",
                expectations=[
                    gxe.ExpectColumnValuesToBeBetween(column=column, min_value=low, max_value=high)
                    for column in columns
                ],
            )
        )
    return checks
