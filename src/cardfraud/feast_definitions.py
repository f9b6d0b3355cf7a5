"""Feast objects of the feature repository: entities, feature views and the service.

The feature views read the feature table parquet (one row per transaction) with the
transaction timestamp as Feast's event timestamp, so an online read returns the values
of the entity's latest transaction up to the materialisation end.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64, PrimitiveFeastType

from cardfraud.features import (
    CARD_HISTORY_COLUMNS,
    CARD_STATE_COLUMN,
    MERCHANT_COLUMNS,
    feature_dtype,
)

PROJECT = "cardfraud"
CARD_VIEW = "card_features"
MERCHANT_VIEW = "merchant_features"
REQUEST_VIEW = "request"
SERVICE = "fraud_model"
EVENT_TIMESTAMP = "timestamp"


@dataclass(frozen=True)
class FeastDefinitions:
    """The Feast objects built from one feature table.

    Attributes:
        card: Entity keyed by ``card_id``.
        merchant: Entity keyed by ``merchant_id``.
        source: File source on the feature table parquet.
        card_view: Card aggregates and the card's last-seen time.
        merchant_view: Merchant counts and fraud rate.
        service: Both views, for the model's online reads.
    """

    card: Entity
    merchant: Entity
    source: FileSource
    card_view: FeatureView
    merchant_view: FeatureView
    service: FeatureService

    def objects(self) -> list[object]:
        """Return every object, in the order ``FeatureStore.apply`` accepts."""
        return [
            self.card,
            self.merchant,
            self.source,
            self.card_view,
            self.merchant_view,
            self.service,
        ]


def split_view_columns(feature_columns: list[str]) -> tuple[list[str], list[str]]:
    """Split model features into card view and merchant view columns.

    Card window and history aggregates go to the card view, which also stores
    ``card_last_seen_epoch_s``; merchant aggregates go to the merchant view. The rest
    are computed from the scoring request itself and are not stored in Feast.
    """
    card = [
        name
        for name in feature_columns
        if name.startswith(("card_count_", "card_amount_sum_"))
        or name in CARD_HISTORY_COLUMNS
    ]
    merchant = [name for name in feature_columns if name in MERCHANT_COLUMNS]
    return [*card, CARD_STATE_COLUMN], merchant


def build_definitions(
    features_path: Path, feature_columns: list[str]
) -> FeastDefinitions:
    """Build the entities, feature views and feature service over a feature table.

    Args:
        features_path: The feature table parquet; made absolute so that the registry
            does not depend on the working directory.
        feature_columns: Model features of the table (``feature_spec.json``).
    """
    card = Entity(name="card", join_keys=["card_id"], value_type=ValueType.STRING)
    merchant = Entity(
        name="merchant", join_keys=["merchant_id"], value_type=ValueType.STRING
    )
    source = FileSource(
        name="feature_table",
        path=str(features_path.resolve()),
        timestamp_field=EVENT_TIMESTAMP,
    )
    card_columns, merchant_columns = split_view_columns(feature_columns)
    # ttl=0 means no expiry, so offline reads and online reads return the same
    # latest value however old it is.
    card_view = FeatureView(
        name=CARD_VIEW,
        entities=[card],
        ttl=timedelta(0),
        schema=[_field(name) for name in card_columns],
        source=source,
        online=True,
    )
    merchant_view = FeatureView(
        name=MERCHANT_VIEW,
        entities=[merchant],
        ttl=timedelta(0),
        schema=[_field(name) for name in merchant_columns],
        source=source,
        online=True,
    )
    service = FeatureService(name=SERVICE, features=[card_view, merchant_view])
    return FeastDefinitions(card, merchant, source, card_view, merchant_view, service)


def feature_lineage(
    descriptions: dict[str, dict[str, Any]], *, source_path: str
) -> dict[str, dict[str, Any]]:
    """Map every model feature to its feature view, source and transformation.

    Args:
        descriptions: ``features.describe_features`` output, one entry per feature.
        source_path: Path of the feature table as it should appear in the lineage,
            relative to the workspace so that the file is the same on every machine.

    Returns:
        Feature name to ``{"feature_view", "source", "transformation",
        "parameters"}``; features computed from the scoring request have the view
        ``request``.
    """
    card_columns, merchant_columns = split_view_columns(list(descriptions))
    lineage = {}
    for name, description in descriptions.items():
        if name in card_columns:
            view = CARD_VIEW
        elif name in merchant_columns:
            view = MERCHANT_VIEW
        else:
            view = REQUEST_VIEW
        lineage[name] = {
            "feature_view": view,
            "source": source_path,
            **description,
        }
    return lineage


def _field(name: str) -> Field:
    dtype: PrimitiveFeastType = Int64 if feature_dtype(name).is_integer() else Float64
    return Field(name=name, dtype=dtype)
