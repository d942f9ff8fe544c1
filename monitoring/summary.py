"""The drift summary of one batch: written as reports/drift/<batch_id>/summary.json, returned by the drift
flow, printed by `score-batch --json`, read by the alert, the flow's artifact and the terminal report.

Its shape is defined here once; producers build a DriftSummary and readers go through its fields, so a
renamed key fails in one place (and in mypy), not as a KeyError in a reader.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class FeatureSignal:
    """Share and count of drifted features; fired when the share reaches the threshold of the batch's size
    (monitoring.drift_rule), whose measured false-alarm rate on GTZAN-only batches is false_alarm."""

    share: float
    count: int
    threshold: float
    fired: bool
    false_alarm: float = float("nan")


@dataclass(frozen=True)
class AccuracyEstimate:
    """The champion's accuracy estimated from its probabilities alone (CBPE: mean max-probability), with
    an interval of coverage `level` (musicgenre.calibration.estimated_accuracy) widened by the champion's
    between-batch shift (0: a bundle registered before it was measured, or a summary written before)."""

    estimate: float
    low: float
    high: float
    level: float
    shift: float = 0.0

    def text(self) -> str:
        """`55.0% [40.0%, 70.0%]`."""
        return f"{self.estimate:.1%} [{self.low:.1%}, {self.high:.1%}]"


@dataclass(frozen=True)
class RealizedAccuracy:
    """Accuracy and per-genre recall once ground-truth labels were attached (monitoring.labels)."""

    accuracy: float
    n_labelled: int
    recall: dict[str, float | None]  # None: no labelled file of that genre
    attached_at: str


@dataclass(frozen=True)
class GenreSignal:
    """Predicted-genre distribution test (chi-square) against the reference."""

    p_value: float
    threshold: float
    fired: bool


@dataclass(frozen=True)
class ConfidenceSignal:
    """Mean max-probability of the champion, reference vs batch."""

    reference_mean: float
    current_mean: float
    drop: float
    change_pct: float
    threshold: float
    fired: bool


@dataclass(frozen=True)
class Signals:
    features: FeatureSignal
    genre_distribution: GenreSignal
    confidence: ConfidenceSignal

    def fired(self, name: str) -> bool:
        """Whether the signal called `name` (monitoring.verdict_on spells these names) fired."""
        signal = getattr(self, name, None)
        if signal is None:
            raise KeyError(f"no drift signal {name!r} (features, genre_distribution, confidence)")
        return bool(signal.fired)


@dataclass(frozen=True)
class GenreShare:
    genre: str
    reference_share: float
    current_share: float


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str


@dataclass
class DriftSummary:
    batch_id: str
    created_at: str
    verdict: str  # "drift" | "no-drift"
    drift: bool
    decided_by: list[str]  # the signals that decide the verdict (monitoring.verdict_on)
    n_current: int
    n_reference: int
    model: ModelRef
    test: dict[str, Any]  # {method, threshold} of the per-feature test
    signals: Signals
    top_features: list[dict[str, Any]]  # feature, p_value, distance, means, change_pct, shift_sd, ...
    top_features_text: list[str]
    genre_distribution: list[GenreShare]
    # None in summaries written before the estimate and novelty existed (read by from_dict)
    estimated_accuracy: AccuracyEstimate | None
    novel_files: list[dict[str, Any]] | None  # the most novel files: file, novelty, novelty_percentile (highest first)
    n_novel: int | None  # files above monitoring.novelty.novel_percentile
    # filled in after the analysis, by monitoring.check.check_batch
    rejected: list[dict[str, str]] = field(default_factory=list)
    run_id: str | None = None
    alert: dict[str, Any] | None = None
    report_dir: str | None = None
    realized: RealizedAccuracy | None = None  # by `monitoring.cli attach-labels`

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def estimate_text(self) -> str:
        """The label-free accuracy estimate with its interval, or why there is none."""
        return self.estimated_accuracy.text() if self.estimated_accuracy else "not recorded"

    def novel_names(self) -> list[str]:
        """The most novel files' names (none for a summary older than the novelty score)."""
        return [row["file"] for row in self.novel_files or []]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriftSummary:
        """The summary from its dict form (summary.json, a flow result); a missing key raises KeyError, except
        the fields added later (estimate, novelty, realized accuracy), which an older summary.json lacks: None."""
        signals = data["signals"]
        estimate = data.get("estimated_accuracy")
        return cls(
            **{
                **data,
                "model": ModelRef(name=data["model"]["name"], version=str(data["model"]["version"])),
                "signals": Signals(
                    features=FeatureSignal(**signals["features"]),
                    genre_distribution=GenreSignal(**signals["genre_distribution"]),
                    confidence=ConfidenceSignal(**signals["confidence"]),
                ),
                "genre_distribution": [GenreShare(**row) for row in data["genre_distribution"]],
                "estimated_accuracy": AccuracyEstimate(**estimate) if estimate else None,
                "novel_files": data.get("novel_files"),
                "n_novel": data.get("n_novel"),
                "realized": RealizedAccuracy(**data["realized"]) if data.get("realized") else None,
            }
        )
