"""Bare BentoML service that returns only the raw model score of one feature row.

The baseline of the load benchmark (``cardfraud bench --only service``): the same
model, workers and BentoML version as ``service.py``, without the online features,
calibration, reasons, audit log or metrics of the full path.
``POST /score`` takes ``{"features": [...]}``, the values of the model's features in
its column order, and returns ``{"score": ...}``, the booster's uncalibrated score.

Start it as the benchmark does: ``bentoml serve bare_service:BareScorer
--working-dir bento --host 127.0.0.1 --port PORT`` with ``CARDFRAUD_WORKSPACE``,
``CARDFRAUD_PARAMS`` and ``CARDFRAUD_MODEL_VERSION`` set as for ``cardfraud serve``.
"""

from __future__ import annotations

import gc
import logging
import os

import bentoml
import numpy as np
from bentoml.exceptions import InvalidArgument

logger = logging.getLogger("cardfraud.bare_service")


@bentoml.service(
    name="card-fraud-bare-scorer",
    workers=int(os.environ.get("CARDFRAUD_WORKERS", "2")),
    traffic={"timeout": float(os.environ.get("CARDFRAUD_REQUEST_TIMEOUT_S", "10"))},
)
class BareScorer:
    """Load the served model of one worker and nothing else."""

    def __init__(self) -> None:
        from cardfraud.serving import ServiceSettings, load_served_model

        settings = ServiceSettings.from_environment()
        served = load_served_model(settings)
        self.model = served.model
        self.width = len(self.model.feature_columns)
        logger.info(
            "bare worker %d ready: model %s version %s",
            os.getpid(),
            served.name,
            served.version,
        )
        gc.freeze()

    @bentoml.api
    def score(self, features: list[float]) -> dict[str, float]:
        """Return the booster's uncalibrated score of one feature row."""
        if len(features) != self.width:
            raise InvalidArgument(
                f"features has {len(features)} values; send the model's "
                f"{self.width} features in its column order"
            )
        row = np.asarray([features], dtype=np.float64)
        return {"score": float(self.model.predict_raw(row)[0])}
