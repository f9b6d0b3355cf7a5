"""Scoring core shared by the BentoML service and in-process callers.

It loads the champion from the MLflow registry by alias. For each transaction it
reads the card's and the merchant's online state from Feast, computes the model's
features from it, appends the transaction to the state and returns a score with a
decision.
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
        feature_store_yaml: Feast store file to use instead of the repository's
            feature_store.yaml (``CARDFRAUD_FEATURE_STORE_YAML``), for example
            feature_repo/feature_store.redis.yaml.
    """

    workspace: Workspace
    model_name: str
    model_alias: str
    tracking_uri: str
    features: FeaturesParams
    feature_store_yaml: Path | None = None

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
        store_yaml = os.environ.get("CARDFRAUD_FEATURE_STORE_YAML")
        return cls(
            workspace=workspace,
            model_name=os.environ.get(
                "CARDFRAUD_MODEL_NAME", params.registry.model_name
            ),
            model_alias=os.environ.get("CARDFRAUD_MODEL_ALIAS", "champion"),
            tracking_uri=workspace.tracking_uri(),
            features=params.features,
            feature_store_yaml=Path(store_yaml).resolve() if store_yaml else None,
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
        from cardfraud.online import OnlineFeatures
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
        from cardfraud.features import feature_columns

        unknown = sorted(
            set(model.feature_columns) - set(feature_columns(settings.features))
        )
        if unknown:
            raise ValueError(
                f"model {settings.model_name} version {model.version} needs "
                f"feature(s) {unknown} that the features section of the parameters "
                "file does not produce; serve with the parameters the model was "
                "trained with (CARDFRAUD_PARAMS)"
            )
        online = OnlineFeatures.from_repo(
            settings.workspace.feature_repo,
            settings.features,
            store_yaml=settings.feature_store_yaml,
        )
        return cls(model=model, online=online, features=settings.features)

    def score(self, transaction: dict[str, Any]) -> dict[str, Any]:
        """Score one transaction given as canonical-schema fields.

        The card's and the merchant's states are read, the features computed and
        the transaction appended to both states before the model runs: the update
        does not depend on the score.

        Returns:
            transaction_id, score (fraud probability), decision, model_version,
            missing_features (state views without a row for the card or merchant,
            whose features took the no-history defaults) and timings in
            milliseconds.

        Raises:
            ValueError: The timestamp is naive or the amount is not a positive int;
                nothing is written.
        """
        started = time.perf_counter()
        values, missing, _, _ = self.online.process(transaction)
        features_done = time.perf_counter()

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
                "features": round((features_done - started) * 1000, 3),
                "score": round((finished - features_done) * 1000, 3),
                "total": round((finished - started) * 1000, 3),
            },
        }
