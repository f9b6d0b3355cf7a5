"""BentoML service that scores card transactions with the MLflow champion.

Start it with ``make serve`` (or ``cardfraud serve``), which listens on 127.0.0.1.
Settings come from the environment; see ``cardfraud.serving.ServiceSettings``.
"""

from __future__ import annotations

import gc
import logging
import os
from typing import Any

import bentoml

from cardfraud.schema import build_request_model
from cardfraud.serving import ScoringCore, ServiceSettings

TransactionRequest = build_request_model()


@bentoml.service(
    name="card-fraud-scorer",
    workers=int(os.environ.get("CARDFRAUD_WORKERS", "2")),
    traffic={"timeout": 10, "max_concurrency": 64},
)
class FraudScorer:
    """Score one transaction per request and return its fraud probability."""

    def __init__(self) -> None:
        # BentoML configures the handlers; the library's loggers only need a level.
        logging.getLogger("cardfraud").setLevel(logging.INFO)
        self.core = ScoringCore.from_settings(ServiceSettings.from_environment())
        # Objects loaded at start-up never die; freezing them keeps them out of the
        # full garbage collections that otherwise set the latency tail.
        gc.freeze()

    @bentoml.api(route="/score", input_spec=TransactionRequest)
    def score(self, **transaction: Any) -> dict[str, Any]:
        """Score one transaction in the canonical schema."""
        return self.core.score(transaction)
