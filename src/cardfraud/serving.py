"""Scoring core shared by the BentoML service and in-process callers.

It loads the champion from the MLflow registry by alias, reads the card's and the
merchant's online features through Feast, builds the model's feature vector for one
transaction and returns a calibrated score with a decision.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cardfraud.params import FeaturesParams, load_params
from cardfraud.paths import Workspace, project_root

logger = logging.getLogger(__name__)

DECISIONS = ("approve", "review", "decline")


@dataclass(frozen=True)
class ServiceSettings:
    """Settings of the scoring service, each from an environment variable.

    Attributes:
        workspace: Folder whose feature_repo/ and state/ the service reads
            (``CARDFRAUD_WORKSPACE``, default the project root).
        model_name: Registered model name (``CARDFRAUD_MODEL_NAME``, default from
            params.yaml).
        model_alias: Alias to serve (``CARDFRAUD_MODEL_ALIAS``, default ``champion``).
        tracking_uri: MLflow tracking URI (``MLFLOW_TRACKING_URI``, default the
            workspace's SQLite store).
        features: Feature parameters from the parameters file
            (``CARDFRAUD_PARAMS``, default params.yaml at the project root).
    """

    workspace: Workspace
    model_name: str
    model_alias: str
    tracking_uri: str
    features: FeaturesParams

    @classmethod
    def from_environment(cls) -> ServiceSettings:
        """Read the settings from the environment and params.yaml."""
        root = project_root()
        params = load_params(
            Path(os.environ.get("CARDFRAUD_PARAMS", root / "params.yaml"))
        )
        workspace = Workspace(
            Path(os.environ.get("CARDFRAUD_WORKSPACE", root)).resolve()
        )
        return cls(
            workspace=workspace,
            model_name=os.environ.get(
                "CARDFRAUD_MODEL_NAME", params.registry.model_name
            ),
            model_alias=os.environ.get("CARDFRAUD_MODEL_ALIAS", "champion"),
            tracking_uri=workspace.tracking_uri(),
            features=params.features,
        )


def decide(score: float, thresholds: dict[str, float]) -> str:
    """Map a fraud probability to approve, review or decline.

    Args:
        score: Fraud probability in [0, 1].
        thresholds: ``review`` and ``decline`` lower bounds, review <= decline.
    """
    if score >= thresholds["decline"]:
        return "decline"
    if score >= thresholds["review"]:
        return "review"
    return "approve"


class ScoringCore:
    """Score one transaction at a time against the loaded champion."""

    def __init__(self, *, model: Any, online: Any, features: FeaturesParams) -> None:
        self.model = model
        self.online = online
        self.features = features

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> ScoringCore:
        """Load the champion and open the online store named by the settings."""
        from cardfraud.feature_store import OnlineFeatureReader
        from cardfraud.registry import load_champion

        model = load_champion(
            tracking_uri=settings.tracking_uri,
            model_name=settings.model_name,
            alias=settings.model_alias,
        )
        logger.info(
            "serving %s version %s (alias %s, flavour %s)",
            settings.model_name,
            model.version,
            settings.model_alias,
            model.flavour,
        )
        online = OnlineFeatureReader(settings.workspace.feature_repo)
        return cls(model=model, online=online, features=settings.features)

    def score(self, transaction: dict[str, Any]) -> dict[str, Any]:
        """Score one transaction given as canonical-schema fields.

        Returns:
            transaction_id, score (fraud probability), decision, model_version,
            missing_features (online values that fell back to defaults) and
            timings in milliseconds.
        """
        from cardfraud.features import request_features

        started = time.perf_counter()
        online = self.online.get(transaction["card_id"], transaction["merchant_id"])
        read_done = time.perf_counter()

        values, missing = request_features(transaction, online, self.features)
        row = np.array(
            [[values[name] for name in self.model.feature_columns]], dtype=np.float64
        )
        score = float(self.model.predict_proba(row)[0])
        finished = time.perf_counter()

        return {
            "transaction_id": transaction["transaction_id"],
            "score": score,
            "decision": decide(score, self.model.thresholds),
            "model_version": str(self.model.version),
            "missing_features": missing,
            "timings_ms": {
                "feature_read": round((read_done - started) * 1000, 3),
                "score": round((finished - read_done) * 1000, 3),
                "total": round((finished - started) * 1000, 3),
            },
        }
