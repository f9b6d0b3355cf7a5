"""Scoring core shared by the BentoML service and in-process callers.

At start it loads one model version (see ``cardfraud.served_model``) and opens the
online store and the audit log. For each transaction it takes the card's and the
merchant's entity locks, reads both online states from Feast, computes the model's
features, appends the transaction to both states and releases the locks. It then
scores the features, explains the score with SHAP reasons, queues an audit record and
returns the decision.

Every call into the model is in ``model_outputs``.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from cardfraud.audit import AuditStore, AuditWriter
from cardfraud.entity_locks import EntityLock, LockTimeoutError
from cardfraud.params import FeaturesParams, load_params
from cardfraud.paths import Workspace, project_root
from cardfraud.reasons import MAX_REASONS, top_reasons
from cardfraud.served_model import ServedModel
from cardfraud.training import TrainedModel

logger = logging.getLogger(__name__)

DECISIONS = ("approve", "review", "decline")
AUDIT_BACKENDS = ("sqlite", "dynamodb")


@dataclass(frozen=True)
class ServiceSettings:
    """Settings of the scoring service, each from an environment variable.

    Attributes:
        workspace: Folder whose feature_repo/ and state/ the service uses
            (``CARDFRAUD_WORKSPACE``, default the project root).
        model_name: Registered model name (``CARDFRAUD_MODEL_NAME``, default from
            the parameters file).
        model_alias: Alias to serve (``CARDFRAUD_MODEL_ALIAS``, default
            ``champion``).
        tracking_uri: MLflow tracking URI (``MLFLOW_TRACKING_URI``, default the
            workspace's SQLite store).
        features: Feature parameters from the parameters file
            (``CARDFRAUD_PARAMS``, default params.yaml at the project root).
        feature_store_yaml: Feast store file to use instead of the repository's
            feature_store.yaml (``CARDFRAUD_FEATURE_STORE_YAML``), for example
            feature_repo/feature_store.redis.yaml.
        model_version: Registered version to serve, bypassing the alias
            (``CARDFRAUD_MODEL_VERSION``); ``cardfraud serve`` sets it so every
            worker loads the same version.
        model_dir: Packaged model folder to serve without a registry
            (``CARDFRAUD_MODEL_DIR``).
        audit_backend: ``sqlite`` or ``dynamodb`` (``CARDFRAUD_AUDIT_BACKEND``).
        audit_db: SQLite audit file (``CARDFRAUD_AUDIT_DB``, default
            ``state/audit.db`` in the workspace).
        audit_table: DynamoDB table (``CARDFRAUD_AUDIT_TABLE``).
        audit_region: Its AWS region (``CARDFRAUD_AUDIT_REGION``, else
            ``AWS_REGION``).
        audit_endpoint_url: DynamoDB endpoint other than AWS's
            (``CARDFRAUD_AUDIT_ENDPOINT_URL``), for example a local moto server.
        audit_flush_ms: Longest wait of a record before its batch is written
            (``CARDFRAUD_AUDIT_FLUSH_MS``, default 50).
        audit_fallback: JSON-lines file for records the audit store rejected
            (``CARDFRAUD_AUDIT_FALLBACK``, default ``state/audit-fallback.jsonl``).
        lock_file: Lock file of the SQLite online store's entity locks
            (``CARDFRAUD_LOCK_FILE``, default ``state/online-features.lock``).
        explanation_token: Bearer token of ``/explanations``
            (``CARDFRAUD_EXPLANATION_TOKEN``); unset disables the endpoint.
        max_batch: Largest number of transactions in one batch request
            (``CARDFRAUD_MAX_BATCH``, default 100).
        max_body_bytes: Largest request body (``CARDFRAUD_MAX_BODY_BYTES``,
            default 1,000,000).
        reasons: Reasons per decision (``CARDFRAUD_REASONS``, default 4).
    """

    workspace: Workspace
    model_name: str
    model_alias: str
    tracking_uri: str
    features: FeaturesParams
    feature_store_yaml: Path | None = None
    model_version: str | None = None
    model_dir: Path | None = None
    audit_backend: str = "sqlite"
    audit_db: Path | None = None
    audit_table: str = "cardfraud-decisions"
    audit_region: str = "eu-west-1"
    audit_endpoint_url: str | None = None
    audit_flush_ms: float = 50.0
    audit_fallback: Path | None = None
    lock_file: Path | None = None
    explanation_token: str | None = field(default=None, repr=False)
    max_batch: int = 100
    max_body_bytes: int = 1_000_000
    reasons: int = MAX_REASONS

    @classmethod
    def from_environment(cls) -> ServiceSettings:
        """Read the settings from the environment and the parameters file.

        Raises:
            ValueError: A setting has an invalid value; the message names it.
        """
        env = os.environ
        model_dir = _optional_path(env.get("CARDFRAUD_MODEL_DIR"))
        default_params = project_root() / "params.yaml"
        if model_dir is not None and (model_dir / "params.yaml").is_file():
            default_params = model_dir / "params.yaml"
        params = load_params(Path(env.get("CARDFRAUD_PARAMS", default_params)))
        workspace = Workspace(
            Path(env.get("CARDFRAUD_WORKSPACE", project_root())).resolve()
        )
        backend = env.get("CARDFRAUD_AUDIT_BACKEND", "sqlite")
        if backend not in AUDIT_BACKENDS:
            raise ValueError(
                f"CARDFRAUD_AUDIT_BACKEND={backend!r} is not one of {AUDIT_BACKENDS}; "
                "set sqlite (default) or dynamodb"
            )
        return cls(
            workspace=workspace,
            model_name=env.get("CARDFRAUD_MODEL_NAME", params.registry.model_name),
            model_alias=env.get("CARDFRAUD_MODEL_ALIAS", "champion"),
            tracking_uri=workspace.tracking_uri(),
            features=params.features,
            feature_store_yaml=_optional_path(env.get("CARDFRAUD_FEATURE_STORE_YAML")),
            model_version=env.get("CARDFRAUD_MODEL_VERSION") or None,
            model_dir=model_dir,
            audit_backend=backend,
            audit_db=_optional_path(env.get("CARDFRAUD_AUDIT_DB")),
            audit_table=env.get("CARDFRAUD_AUDIT_TABLE", "cardfraud-decisions"),
            audit_region=env.get(
                "CARDFRAUD_AUDIT_REGION", env.get("AWS_REGION", "eu-west-1")
            ),
            audit_endpoint_url=env.get("CARDFRAUD_AUDIT_ENDPOINT_URL") or None,
            audit_flush_ms=_positive_number(env, "CARDFRAUD_AUDIT_FLUSH_MS", 50.0),
            audit_fallback=_optional_path(env.get("CARDFRAUD_AUDIT_FALLBACK")),
            lock_file=_optional_path(env.get("CARDFRAUD_LOCK_FILE")),
            explanation_token=env.get("CARDFRAUD_EXPLANATION_TOKEN") or None,
            max_batch=int(_positive_number(env, "CARDFRAUD_MAX_BATCH", 100)),
            max_body_bytes=int(
                _positive_number(env, "CARDFRAUD_MAX_BODY_BYTES", 1_000_000)
            ),
            reasons=int(_positive_number(env, "CARDFRAUD_REASONS", MAX_REASONS)),
        )

    @property
    def audit_path(self) -> Path:
        """The SQLite audit file in use."""
        return self.audit_db or self.workspace.audit_db

    @property
    def fallback_path(self) -> Path:
        """The audit fallback file in use."""
        return self.audit_fallback or self.workspace.state_dir / "audit-fallback.jsonl"

    @property
    def lock_path(self) -> Path:
        """The entity lock file in use."""
        return self.lock_file or self.workspace.state_dir / "online-features.lock"


def _optional_path(value: str | None) -> Path | None:
    return Path(value).resolve() if value else None


def _positive_number(env: Any, name: str, default: float) -> float:
    text = env.get(name)
    if text is None or text == "":
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}={text!r} is not a positive number; fix or unset it")
    return value


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


@dataclass(frozen=True)
class ModelOutputs:
    """The model's outputs for a matrix of rows.

    Attributes:
        scores: Fraud probabilities, calibrated when the model has a calibrator,
            shape (rows,).
        margins: Raw log-odds, shape (rows,): ``base_value`` plus the row's
            contributions.
        base_value: Expected margin of the model, log-odds.
        contributions: SHAP contributions, shape (rows, features), log-odds.
    """

    scores: np.ndarray
    margins: np.ndarray
    base_value: float
    contributions: np.ndarray


def model_outputs(model: TrainedModel, matrix: np.ndarray) -> ModelOutputs:
    """Score and explain rows: the one place where the service calls the model.

    ``predict_proba`` returns the calibrated probability when the model carries a
    calibrator, else the booster's raw score. Contributions explain the raw margin.

    Args:
        model: The served model.
        matrix: Features in ``model.feature_columns`` order, float64, shape
            (rows, features).
    """
    base_value, contributions = model.contributions(matrix)
    margins = base_value + contributions.sum(axis=1)
    scores = np.asarray(model.predict_proba(matrix), dtype=np.float64)
    return ModelOutputs(scores, margins, float(base_value), contributions)


def score_rows(model: TrainedModel, matrix: np.ndarray) -> np.ndarray:
    """Return only the probabilities of rows (counterfactual search, batch checks)."""
    return np.asarray(model.predict_proba(matrix), dtype=np.float64)


STORE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    sqlite3.Error,
    LockTimeoutError,
)


def _store_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean the online store is unreachable, Redis's included."""
    try:
        from redis.exceptions import RedisError
    except ImportError:  # pragma: no cover - redis ships with feast[redis]
        return STORE_ERRORS
    return (*STORE_ERRORS, RedisError)


class ScoringCore:
    """Score transactions against one loaded model version.

    Args:
        model: The served model, or a bare ``TrainedModel`` for in-process use.
        online: ``OnlineFeatures`` of the online store.
        features: The feature parameters the model was trained with.
        locks: Entity locks held around each state read and write; None relies on
            ``OnlineFeatures``' in-process lock alone (one process only).
        audit: Writer that receives one record per decision; None records nothing.
        reasons: Reasons per decision.
    """

    def __init__(
        self,
        *,
        model: ServedModel | TrainedModel,
        online: Any,
        features: FeaturesParams,
        locks: EntityLock | None = None,
        audit: AuditWriter | None = None,
        reasons: int = MAX_REASONS,
    ) -> None:
        if isinstance(model, TrainedModel):
            model = ServedModel(
                model=model,
                name="",
                version=str(getattr(model, "version", "")),
                alias=str(getattr(model, "alias", "")),
                run_id=str(getattr(model, "run_id", "")),
                source="memory",
            )
        self.served = model
        self.model = model.model
        self.online = online
        self.features = features
        self.locks = locks
        self.audit = audit
        self.reasons = reasons
        self.degraded_count = 0
        self.last_store_error: str | None = None
        self._store_errors = _store_errors()
        self._counter_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> ScoringCore:
        """Load the model and open the online store, locks and audit log."""
        served = load_served_model(settings)
        check_model_features(served, settings.features)
        online = open_online_features(settings)
        return cls(
            model=served,
            online=online,
            features=settings.features,
            locks=open_entity_locks(settings, online),
            audit=open_audit_writer(settings),
            reasons=settings.reasons,
        )

    def score(self, transaction: dict[str, Any]) -> dict[str, Any]:
        """Score one transaction given as canonical-schema fields.

        The card's and the merchant's states are read, the features computed and
        the transaction appended to both states before the model runs: the update
        does not depend on the score. An unreachable online store gives the
        no-history defaults and ``degraded: true`` instead of an error.

        Returns:
            transaction_id, score (fraud probability), decision, model_version,
            reasons (at most ``reasons``, strongest first), base_value, margin and
            other_contribution (log-odds; base value plus the reasons'
            contributions plus other_contribution equals the margin), cold_start
            and missing_features (state views without a row for the card or
            merchant, whose features took the no-history defaults), degraded, and
            timings in milliseconds.

        Raises:
            ValueError: The timestamp is naive or the amount is not a positive int;
                nothing is written.
            AuditBacklogError: The decision could not be queued for the audit log.
        """
        started = time.perf_counter()
        features, degraded = self._live_features(transaction)
        features_done = time.perf_counter()

        row = np.array(
            [[features.values[name] for name in self.model.feature_columns]],
            dtype=np.float64,
        )
        outputs = model_outputs(self.model, row)
        score = float(outputs.scores[0])
        scored = time.perf_counter()

        contributions = outputs.contributions[0]
        reasons = top_reasons(
            self.model.feature_columns, row[0], contributions, limit=self.reasons
        )
        shown = sum(reason.contribution for reason in reasons)
        margin = float(outputs.margins[0])
        decision = decide(score, self.model.thresholds)
        finished = time.perf_counter()

        response = {
            "transaction_id": str(transaction["transaction_id"]),
            "score": score,
            "decision": decision,
            "model_version": self.served.version,
            "reasons": [reason.to_json() for reason in reasons],
            "base_value": outputs.base_value,
            "margin": margin,
            "other_contribution": float(contributions.sum()) - shown,
            "cold_start": bool(features.missing),
            "missing_features": list(features.missing),
            "degraded": degraded,
            "timings_ms": {
                "features": round((features_done - started) * 1000, 3),
                "score": round((scored - features_done) * 1000, 3),
                "reasons": round((finished - scored) * 1000, 3),
                "total": round((finished - started) * 1000, 3),
            },
        }
        if self.audit is not None:
            self.audit.submit(
                self._audit_record(transaction, response, row[0], contributions)
            )
        return response

    def _live_features(self, transaction: dict[str, Any]) -> tuple[Any, bool]:
        """Read, compute and update under the entity locks; defaults if unreachable."""
        from cardfraud.features import check_transaction
        from cardfraud.online import compute_features

        check_transaction(transaction)
        card_key = f"card:{transaction['card_id']}"
        merchant_key = f"merchant:{transaction['merchant_id']}"
        try:
            if self.locks is None:
                return self.online.process(transaction), False
            with self.locks.hold(card_key, merchant_key):
                return self.online.process(transaction), False
        except self._store_errors as error:
            with self._counter_lock:
                self.degraded_count += 1
                self.last_store_error = f"{type(error).__name__}: {error}"
            logger.error(
                "transaction %s: online store unavailable (%s: %s); scored with "
                "no-history defaults and marked degraded",
                transaction.get("transaction_id"),
                type(error).__name__,
                error,
                extra={"transaction_id": str(transaction.get("transaction_id"))},
            )
            return compute_features(transaction, None, None, self.features), True

    def _audit_record(
        self,
        transaction: dict[str, Any],
        response: dict[str, Any],
        values: np.ndarray,
        contributions: np.ndarray,
    ) -> dict[str, Any]:
        columns = self.model.feature_columns
        return {
            **{key: value for key, value in response.items() if key != "timings_ms"},
            "decided_at": datetime.now(UTC).isoformat(),
            "request": _json_ready(transaction),
            "features": {name: float(values[i]) for i, name in enumerate(columns)},
            "contributions": {
                name: float(contributions[i]) for i, name in enumerate(columns)
            },
            "thresholds": dict(self.model.thresholds),
            "model": self.served.describe(),
            "timings_ms": response["timings_ms"],
        }

    def store_health(self) -> dict[str, Any]:
        """Check the online store and the audit store; returns their states."""
        health: dict[str, Any] = {}
        try:
            self.online.read_card("__health_check__")
            health["online_store"] = {"status": "ok"}
        except self._store_errors as error:
            health["online_store"] = {
                "status": "unavailable",
                "error": f"{type(error).__name__}: {error}",
            }
        if self.audit is not None:
            try:
                self.audit.store.check()
                health["audit_store"] = {
                    "status": "ok",
                    "pending": self.audit.pending,
                    "written": self.audit.written,
                }
            except Exception as error:  # any failure is reported
                health["audit_store"] = {
                    "status": "unavailable",
                    "error": f"{type(error).__name__}: {error}",
                }
        health["degraded_responses"] = self.degraded_count
        return health

    def close(self) -> None:
        """Write every queued audit record and release the locks."""
        if self.audit is not None:
            self.audit.close()
        close = getattr(self.locks, "close", None)
        if close is not None:
            close()


def _json_ready(transaction: dict[str, Any]) -> dict[str, Any]:
    ready = {}
    for key, value in transaction.items():
        ready[key] = value.isoformat() if isinstance(value, datetime) else value
    return ready


def load_served_model(settings: ServiceSettings) -> ServedModel:
    """Load the packaged folder if one is set, else the registered version."""
    from cardfraud.served_model import load_from_folder, load_from_registry

    if settings.model_dir is not None:
        served = load_from_folder(settings.model_dir)
    else:
        served = load_from_registry(
            tracking_uri=settings.tracking_uri,
            model_name=settings.model_name,
            alias=settings.model_alias,
            version=settings.model_version,
        )
    logger.info(
        "serving %s version %s (alias %r, flavour %s, from %s)",
        served.name,
        served.version,
        served.alias,
        served.model.flavour,
        served.source,
    )
    return served


def check_model_features(served: ServedModel, features: FeaturesParams) -> None:
    """Raise ValueError when the parameters do not produce the model's features."""
    from cardfraud.features import feature_columns

    unknown = sorted(set(served.model.feature_columns) - set(feature_columns(features)))
    if unknown:
        raise ValueError(
            f"model {served.name} version {served.version} needs "
            f"feature(s) {unknown} that the features section of the parameters "
            "file does not produce; serve with the parameters the model was "
            "trained with (CARDFRAUD_PARAMS)"
        )


def open_online_features(settings: ServiceSettings) -> Any:
    """Open the Feast online store named by the settings."""
    from cardfraud.online import OnlineFeatures

    online = OnlineFeatures.from_repo(
        settings.workspace.feature_repo,
        settings.features,
        store_yaml=settings.feature_store_yaml,
    )
    limit_redis_retries(online.store)
    return online


REDIS_SOCKET_TIMEOUT_S = 2.0
"""Longest wait for a Redis connect or reply before the request is scored degraded."""


def limit_redis_retries(store: Any) -> None:
    """Make a Feast Redis online store fail fast when its server is unreachable.

    Feast builds its redis-py client with the library's defaults: no socket timeout
    and 3 retries with exponential backoff, about 10 s per command against a closed
    port (redis-py 7.4.1). After this call the client retries once without backoff
    and waits at most ``REDIS_SOCKET_TIMEOUT_S`` for a connect or a reply. A
    request then falls back to degraded mode at once when the port is closed, and
    after about two timeouts when the server accepts connections but does not
    reply. Other online stores and Redis cluster or sentinel clients keep Feast's
    settings.
    """
    config = store.config.online_store
    if getattr(config, "type", "") != "redis":
        return
    redis_type = getattr(config, "redis_type", "redis")
    if getattr(redis_type, "value", redis_type) != "redis":
        return
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = store.provider.online_store._get_client(config)
    connection_kwargs = client.connection_pool.connection_kwargs
    for name in ("socket_timeout", "socket_connect_timeout"):
        if connection_kwargs.get(name) is None:
            connection_kwargs[name] = REDIS_SOCKET_TIMEOUT_S
    client.set_retry(Retry(NoBackoff(), 1))


def open_entity_locks(settings: ServiceSettings, online: Any) -> EntityLock:
    """Return Redis locks for a Redis online store, file locks otherwise."""
    from cardfraud.entity_locks import (
        RedisEntityLock,
        StripedFileLock,
        redis_client_from_connection_string,
    )

    config = online.store.config.online_store
    if getattr(config, "type", "") == "redis":
        client = redis_client_from_connection_string(config.connection_string)
        logger.info("entity locks: Redis keys on the online store's server")
        return RedisEntityLock(client)
    logger.info("entity locks: fcntl stripes of %s", settings.lock_path)
    return StripedFileLock(settings.lock_path)


def open_audit_store(settings: ServiceSettings) -> AuditStore:
    """Open the audit store that the settings name."""
    from cardfraud.audit import DynamoAuditStore, SqliteAuditStore

    if settings.audit_backend == "dynamodb":
        return DynamoAuditStore(
            settings.audit_table,
            region=settings.audit_region,
            endpoint_url=settings.audit_endpoint_url,
        )
    return SqliteAuditStore(settings.audit_path)


def open_audit_writer(settings: ServiceSettings) -> AuditWriter:
    """Open the audit store and start its background writer."""
    store = open_audit_store(settings)
    logger.info(
        "audit log: %s",
        settings.audit_table
        if settings.audit_backend == "dynamodb"
        else settings.audit_path,
    )
    return AuditWriter(
        store,
        flush_interval_s=settings.audit_flush_ms / 1000,
        fallback_path=settings.fallback_path,
    )
