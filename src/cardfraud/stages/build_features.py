"""Stage build_features: feature table, its spec and lineage, and the Feast store."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from cardfraud.data import read_transactions
from cardfraud.features import (
    KEY_COLUMNS,
    LABEL_COLUMN,
    build_feature_table,
    describe_features,
    feature_columns,
)
from cardfraud.params import FeaturesParams
from cardfraud.paths import Workspace
from cardfraud.schema import SCHEMA_VERSION

logger = logging.getLogger(__name__)

FEATURES_FILE = "features.parquet"
SPEC_FILE = "feature_spec.json"
LINEAGE_FILE = "lineage.json"


def run(ws: Workspace, params: FeaturesParams) -> dict[str, Any]:
    """Build features from ``ws.raw_dir`` and load every entity's state into Feast.

    Writes ``features.parquet``, ``feature_spec.json``, ``lineage.json`` and the
    state snapshots ``card_state.parquet`` and ``merchant_state.parquet`` under
    ``ws.features_dir``; the files depend only on the raw data and ``params``.
    ``lineage.json`` maps each model feature to its Feast view, online source,
    source table, transformation and parameters, and is checked against the
    applied registry before the stage returns.

    Raises:
        cardfraud.lineage.LineageError: The lineage disagrees with the registry or
            with ``params``.
    """
    from cardfraud.feast_definitions import feature_lineage
    from cardfraud.feature_store import apply_and_load_state
    from cardfraud.online import CARD_STATE_VIEW, MERCHANT_STATE_VIEW

    transactions = read_transactions(ws.raw_dir)
    table = build_feature_table(transactions, params)
    columns = feature_columns(params)

    ws.features_dir.mkdir(parents=True, exist_ok=True)
    features_path = ws.features_dir / FEATURES_FILE
    table.write_parquet(features_path)
    spec = {
        "feature_columns": columns,
        "key_columns": list(KEY_COLUMNS),
        "label_column": LABEL_COLUMN,
        "online_state_views": [CARD_STATE_VIEW, MERCHANT_STATE_VIEW],
        "params": params.model_dump(mode="json"),
        "schema_version": SCHEMA_VERSION,
    }
    _write_json(ws.features_dir / SPEC_FILE, spec)
    source = str(features_path.relative_to(ws.root))
    lineage = feature_lineage(describe_features(params), source_path=source)
    _write_json(ws.features_dir / LINEAGE_FILE, lineage)

    store = apply_and_load_state(ws, transactions, params, columns)
    check_registered_lineage(ws, lineage, params, columns)
    return {
        "rows": table.height,
        "features": len(columns),
        "features_path": source,
        "lineage_features": len(lineage),
        "feature_store": store,
    }


def check_registered_lineage(
    ws: Workspace,
    lineage: dict[str, dict[str, Any]],
    params: FeaturesParams,
    columns: list[str],
) -> None:
    """Check the lineage against the applied Feast registry and ``params``.

    Raises:
        cardfraud.lineage.LineageError: A feature has no entry, an entry names a view
            the registry lacks, or a window or delay differs from ``params``.
    """
    from cardfraud.feature_store import open_store
    from cardfraud.lineage import (
        check_lineage,
        raise_for_lineage,
        registry_feature_views,
    )

    views = registry_feature_views(open_store(ws))
    problems = check_lineage(
        lineage, model_features=columns, feature_views=views, params=params
    )
    raise_for_lineage(problems)
    logger.info("lineage covers all %d features", len(columns))


def _write_json(path: Path, document: dict[str, Any]) -> None:
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    path.write_text(text, encoding="utf-8")
