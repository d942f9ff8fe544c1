"""Drift alert: a log line always, and a JSON POST to monitoring.webhook_url when one is set."""

from __future__ import annotations

import json
import logging
import urllib.request
from typing import Any

from monitoring.summary import DriftSummary

log = logging.getLogger("monitoring.alerts")


TOP_IN_ALERT = 3  # most moved features named in the alert line


def alert_text(summary: DriftSummary) -> str:
    features = summary.signals.features
    return (
        f"DRIFT in batch {summary.batch_id}: {features.count} of the features drifted "
        f"(share {features.share:.2f} >= {features.threshold:.3f}, false-alarm rate {features.false_alarm:.1%} "
        f"at {summary.n_current} files); estimated accuracy {summary.estimate_text()}; most moved: "
        + "; ".join(summary.top_features_text[:TOP_IN_ALERT])
    )


def payload(summary: DriftSummary, *, text: str) -> dict[str, Any]:
    """The webhook's JSON: the line, the verdict, the accuracy estimate and the most novel files."""
    return {
        "text": text,
        "batch_id": summary.batch_id,
        "verdict": summary.verdict,
        "estimated_accuracy": vars(summary.estimated_accuracy) if summary.estimated_accuracy else None,
        "novel_files": summary.novel_names(),
    }


def send_alert(*, summary: DriftSummary, params: dict[str, Any]) -> dict[str, Any]:
    """Log the alert; POST it when a webhook is configured. A failing webhook is logged, not raised:
    the drift verdict is already saved and must not be lost to a network fault."""
    settings, text = params["monitoring"], alert_text(summary)
    log.warning(text)
    result: dict[str, Any] = {"text": text, "webhook": None}
    if settings.get("webhook_url"):
        body = json.dumps(payload(summary, text=text)).encode()
        request = urllib.request.Request(
            settings["webhook_url"], data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=settings["webhook_timeout_s"]) as response:
                result["webhook"] = response.status
        except OSError as exc:
            log.error("drift webhook %s failed: %s", settings["webhook_url"], exc)
            result["webhook"] = f"failed: {exc}"
    return result
