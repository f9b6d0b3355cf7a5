"""Prometheus metrics of the scoring service.

Inside a BentoML service, create ``ServiceMetrics`` in the service's ``__init__``:
BentoML sets ``PROMETHEUS_MULTIPROC_DIR`` when a worker starts, and prometheus_client
must be imported after that for the metrics of every worker to appear on the
service's ``/metrics`` (BentoML 1.4).
"""

from __future__ import annotations

from typing import Any

LATENCY_BUCKETS_S = (
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
SCORE_BUCKETS = (
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.3,
    0.4,
    0.5,
    0.6,
    0.7,
    0.8,
    0.9,
    0.95,
    1.0,
)


class ServiceMetrics:
    """The service's counters and histograms.

    Args:
        **options: Passed to every metric, e.g. ``registry=`` for a
            ``prometheus_client.CollectorRegistry`` in tests.
    """

    def __init__(self, **options: Any) -> None:
        import prometheus_client as metrics

        self.requests = metrics.Counter(
            name="cardfraud_requests_total",
            documentation="HTTP requests by route and status code.",
            labelnames=["route", "status"],
            **options,
        )
        self.latency = metrics.Histogram(
            name="cardfraud_request_duration_seconds",
            documentation="Time from request to response by route, in seconds.",
            labelnames=["route"],
            buckets=LATENCY_BUCKETS_S,
            **options,
        )
        self.scores = metrics.Histogram(
            name="cardfraud_score",
            documentation="Fraud probabilities returned.",
            buckets=SCORE_BUCKETS,
            **options,
        )
        self.decisions = metrics.Counter(
            name="cardfraud_decisions_total",
            documentation="Decisions returned, by decision.",
            labelnames=["decision"],
            **options,
        )
        self.degraded = metrics.Counter(
            name="cardfraud_degraded_total",
            documentation="Scores made with no-history defaults because the online "
            "store was unavailable.",
            **options,
        )
        self.cold_start = metrics.Counter(
            name="cardfraud_cold_start_total",
            documentation="Scores whose card or merchant had no online state, by "
            "state view.",
            labelnames=["view"],
            **options,
        )
        self.rejected = metrics.Counter(
            name="cardfraud_rejected_requests_total",
            documentation="Requests rejected with a 4xx status, by route and field.",
            labelnames=["route", "field"],
            **options,
        )
        self.audit_errors = metrics.Counter(
            name="cardfraud_audit_backlog_total",
            documentation="Decisions not returned because the audit queue was full.",
            **options,
        )

    def record_decision(self, response: dict[str, Any]) -> None:
        """Count one returned decision."""
        self.scores.observe(response["score"])
        self.decisions.labels(decision=response["decision"]).inc()
        if response["degraded"]:
            self.degraded.inc()
        elif response["missing_features"]:
            for view in response["missing_features"]:
                self.cold_start.labels(view=view).inc()
