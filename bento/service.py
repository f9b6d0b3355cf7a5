"""BentoML service that scores card transactions, explains them and audits them.

Start it with ``make serve`` or ``cardfraud serve`` (127.0.0.1), or
``cardfraud serve --sagemaker`` (0.0.0.0:8080, the SageMaker container contract).
Settings come from environment variables; the README lists them. The HTTP routes are
in ``cardfraud.service_app``; BentoML runs the workers, the traffic limits and
``/metrics``. With ``CARDFRAUD_EMF=1``, the default of ``--sagemaker``, every scoring
request also writes a CloudWatch EMF line to stdout (``cardfraud.service_emf``).
"""

from __future__ import annotations

import gc
import logging
import os

import bentoml

from cardfraud.service_app import RouteToApp, ServiceState, create_app
from cardfraud.service_emf import EmfMiddleware, emf_enabled

logger = logging.getLogger("cardfraud.service")

_state: ServiceState | None = None


def current_state() -> ServiceState:
    """Return this worker's state, created when the service instance started."""
    if _state is None:
        raise RuntimeError("the scoring service has not finished starting")
    return _state


app = create_app(
    current_state, max_batch=int(os.environ.get("CARDFRAUD_MAX_BATCH", "100"))
)
if emf_enabled():
    app.add_middleware(EmfMiddleware)


@bentoml.service(
    name="card-fraud-scorer",
    workers=int(os.environ.get("CARDFRAUD_WORKERS", "2")),
    traffic={
        "timeout": float(os.environ.get("CARDFRAUD_REQUEST_TIMEOUT_S", "10")),
        "max_concurrency": int(os.environ.get("CARDFRAUD_MAX_CONCURRENCY", "64")),
    },
)
@bentoml.asgi_app(app, path="/")
class FraudScorer:
    """Load the model, online store, locks and audit writer of one worker."""

    def __init__(self) -> None:
        global _state
        from cardfraud.service_logging import configure_logging
        from cardfraud.service_metrics import ServiceMetrics
        from cardfraud.serving import ScoringCore, ServiceSettings

        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        configure_logging(
            json_lines=os.environ.get("CARDFRAUD_LOG_FORMAT", "json") == "json"
        )
        settings = ServiceSettings.from_environment()
        core = ScoringCore.from_settings(settings)
        _state = ServiceState(
            core=core,
            settings=settings,
            metrics=ServiceMetrics(),
            invocation_auth=os.environ.get("CARDFRAUD_INVOCATIONS_AUTH", "token"),
        )
        logger.info(
            "worker %d ready: model %s version %s",
            os.getpid(),
            core.served.name,
            core.served.version,
        )
        # Objects loaded at start-up never die; freezing them keeps them out of the
        # full garbage collections that otherwise set the latency tail.
        gc.freeze()

    @bentoml.on_shutdown
    def flush_audit_log(self) -> None:
        """Write every queued audit record before the worker exits."""
        if _state is not None:
            logger.info("worker %d stopping: flushing the audit log", os.getpid())
            _state.core.close()


FraudScorer.add_asgi_middleware(RouteToApp, target=app, paths=("/readyz",))
