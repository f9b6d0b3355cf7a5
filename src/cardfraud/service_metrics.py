"""Prometheus metrics of the scoring service, and the folder their workers share.

Inside a BentoML service, create ``ServiceMetrics`` in the service's ``__init__``:
BentoML sets ``PROMETHEUS_MULTIPROC_DIR`` when a worker starts, and prometheus_client
must be imported after that for the metrics of every worker to appear on the
service's ``/metrics`` (BentoML 1.4).

Each worker writes its series to its own files in that folder, and ``/metrics`` sums
the files of all workers. BentoML 1.4.40 puts the folder at
``$BENTOML_HOME/prometheus_multiproc_dir`` and deletes its files whenever a service
starts (``bentoml.serving.ensure_prometheus_dir``). A second service sharing the
home therefore deletes the files of the first one's workers. Those workers keep
writing to the deleted files, so their series are gone from ``/metrics`` until they
restart. ``isolated_bentoml_home`` gives every ``cardfraud serve`` process a home of
its own.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SERVICE_HOMES_FOLDER = "cardfraud-serve"
"""Folder under the BentoML home that contains one home per serving process."""

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


def default_bentoml_home() -> Path:
    """Return ``$BENTOML_HOME``, or ``~/bentoml`` as BentoML 1.4 defaults to."""
    configured = os.environ.get("BENTOML_HOME")
    return Path(configured) if configured else Path.home() / "bentoml"


def isolated_bentoml_home(base: Path, pid: int) -> Path:
    """Create the BentoML home of one serving process and remove stopped ones.

    The home is ``base/cardfraud-serve/<pid>``. The process id keeps it apart from
    every other running service: ``cardfraud serve`` replaces itself with
    ``bentoml serve``, which keeps the id. Homes named after processes that no
    longer run are deleted with the metric files in them, and so is a home named
    after ``pid`` itself, which a stopped process with the same id left.

    Args:
        base: BentoML home the service would otherwise use.
        pid: Id of the process that will run ``bentoml serve``.

    Returns:
        The home. BentoML empties its ``prometheus_multiproc_dir`` again when the
        service starts.
    """
    parent = base / SERVICE_HOMES_FOLDER
    parent.mkdir(parents=True, exist_ok=True)
    for folder in parent.iterdir():
        if not folder.name.isdigit():
            continue
        owner = int(folder.name)
        if owner == pid or not _process_running(owner):
            logger.info("removing the BentoML home of stopped service %s", folder)
            shutil.rmtree(folder, ignore_errors=True)
    home = parent / str(pid)
    home.mkdir(exist_ok=True)
    return home


def _process_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
