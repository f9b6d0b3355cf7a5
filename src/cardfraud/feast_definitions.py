"""Feast objects of the feature repository: entities, feature views and the service.

Two kinds of views:

- ``transaction_features`` reads the feature table, one row per transaction keyed by
  ``transaction_id`` with the transaction time as event timestamp. A training set from
  ``get_historical_features`` with entity rows ``(transaction_id, timestamp)`` gets
  each transaction's own row, whose features use only transactions ordered strictly
  before it. Feast's join takes rows at or before the lookup time and ignores the
  tie rule, so the rule lives in the rows themselves.
- ``card_state`` and ``merchant_state`` hold the online aggregates of
  ``cardfraud.online``; their sources are the state snapshots that the features stage
  writes next to the feature table.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import timedelta
from pathlib import Path
from typing import Any

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Array, Float64, Int64, PrimitiveFeastType, String

from cardfraud.features import (
    OWN_COLUMNS,
    feature_dtype,
)
from cardfraud.online import (
    CARD_STATE_VIEW,
    MERCHANT_STATE_VIEW,
    STATE_TIME_COLUMN,
    CardState,
    MerchantState,
    state_field_types,
)

PROJECT = "cardfraud"
TRANSACTION_VIEW = "transaction_features"
REQUEST_SOURCE = "request"
SERVICE = "fraud_model"
EVENT_TIMESTAMP = "timestamp"
CARD_STATE_FILE = "card_state.parquet"
MERCHANT_STATE_FILE = "merchant_state.parquet"


@dataclass(frozen=True)
class FeastDefinitions:
    """The Feast objects built from one features folder.

    Attributes:
        card: Entity keyed by ``card_id``.
        merchant: Entity keyed by ``merchant_id``.
        transaction: Entity keyed by ``transaction_id``.
        source: File source on the feature table parquet.
        card_state_source: File source on the card state snapshot.
        merchant_state_source: File source on the merchant state snapshot.
        transaction_view: Every model feature per transaction, offline only.
        card_state: Online card state.
        merchant_state: Online merchant state.
        service: The model's features, for training sets.
    """

    card: Entity
    merchant: Entity
    transaction: Entity
    source: FileSource
    card_state_source: FileSource
    merchant_state_source: FileSource
    transaction_view: FeatureView
    card_state: FeatureView
    merchant_state: FeatureView
    service: FeatureService

    def objects(self) -> list[object]:
        """Return every object, in the order ``FeatureStore.apply`` accepts."""
        return [getattr(self, item.name) for item in fields(self)]


def build_definitions(
    features_path: Path, feature_columns: list[str]
) -> FeastDefinitions:
    """Build the entities, feature views and feature service of a features folder.

    Args:
        features_path: The feature table parquet; made absolute so that the registry
            does not depend on the working directory. The state snapshots are
            ``card_state.parquet`` and ``merchant_state.parquet`` beside it.
        feature_columns: Model features of the table (``feature_spec.json``).
    """
    folder = features_path.resolve().parent
    card = Entity(name="card", join_keys=["card_id"], value_type=ValueType.STRING)
    merchant = Entity(
        name="merchant", join_keys=["merchant_id"], value_type=ValueType.STRING
    )
    transaction = Entity(
        name="transaction", join_keys=["transaction_id"], value_type=ValueType.STRING
    )
    source = FileSource(
        name="feature_table",
        path=str(features_path.resolve()),
        timestamp_field=EVENT_TIMESTAMP,
    )
    card_state_source = FileSource(
        name="card_state_snapshot",
        path=str(folder / CARD_STATE_FILE),
        timestamp_field=STATE_TIME_COLUMN,
    )
    merchant_state_source = FileSource(
        name="merchant_state_snapshot",
        path=str(folder / MERCHANT_STATE_FILE),
        timestamp_field=STATE_TIME_COLUMN,
    )
    # ttl=0 means no expiry: a row keyed by its own transaction is always in range,
    # and a state that went stale is still the truth about its entity.
    transaction_view = FeatureView(
        name=TRANSACTION_VIEW,
        entities=[transaction],
        ttl=timedelta(0),
        schema=[_feature_field(name) for name in feature_columns],
        source=source,
        online=False,
    )
    card_state = FeatureView(
        name=CARD_STATE_VIEW,
        entities=[card],
        ttl=timedelta(0),
        schema=_state_fields(CardState),
        source=card_state_source,
        online=True,
    )
    merchant_state = FeatureView(
        name=MERCHANT_STATE_VIEW,
        entities=[merchant],
        ttl=timedelta(0),
        schema=_state_fields(MerchantState),
        source=merchant_state_source,
        online=True,
    )
    service = FeatureService(name=SERVICE, features=[transaction_view])
    return FeastDefinitions(
        card,
        merchant,
        transaction,
        source,
        card_state_source,
        merchant_state_source,
        transaction_view,
        card_state,
        merchant_state,
        service,
    )


def online_source(name: str) -> str:
    """Return where the online path takes a feature from.

    ``card_state`` for features of the card's history (including the ratio, z-score,
    time gap and first-use flags), ``merchant_state`` for merchant features and
    ``request`` for features of the transaction's own fields.
    """
    if name in OWN_COLUMNS:
        return REQUEST_SOURCE
    if name.startswith("merchant_"):
        return MERCHANT_STATE_VIEW
    return CARD_STATE_VIEW


def feature_lineage(
    descriptions: dict[str, dict[str, Any]], *, source_path: str
) -> dict[str, dict[str, Any]]:
    """Map every model feature to its feature view, sources and transformation.

    Args:
        descriptions: ``features.describe_features`` output, one entry per feature.
        source_path: Path of the feature table as it should appear in the lineage,
            relative to the workspace so that the file is the same on every machine.

    Returns:
        Feature name to ``{"feature_view", "online_source", "source",
        "transformation", "parameters"}``.
    """
    return {
        name: {
            "feature_view": TRANSACTION_VIEW,
            "online_source": online_source(name),
            "source": source_path,
            **description,
        }
        for name, description in descriptions.items()
    }


def _feature_field(name: str) -> Field:
    dtype: PrimitiveFeastType = Int64 if feature_dtype(name).is_integer() else Float64
    return Field(name=name, dtype=dtype)


def _state_fields(state_class: type) -> list[Field]:
    types = {"int": Int64, "int_list": Array(Int64), "string_list": Array(String)}
    return [
        Field(name=name, dtype=types[kind])
        for name, kind in state_field_types(state_class).items()
    ]
