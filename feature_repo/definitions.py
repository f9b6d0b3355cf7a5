"""Feast objects of the pipeline's feature table, discovered by ``feast apply`` here.

The table is ``<project root>/data/features/features.parquet``, the state snapshots
lie beside it, and the feature columns follow the ``features`` section of
``<project root>/params.yaml``.
"""

from pathlib import Path

from cardfraud.feast_definitions import build_definitions
from cardfraud.feature_store import FEATURES_FILE
from cardfraud.features import feature_columns
from cardfraud.params import load_params
from cardfraud.paths import Workspace

PROJECT_ROOT = Path(__file__).resolve().parents[1]

_workspace = Workspace(PROJECT_ROOT)
_params = load_params(PROJECT_ROOT / "params.yaml").features
_definitions = build_definitions(
    _workspace.features_dir / FEATURES_FILE, feature_columns(_params)
)

card = _definitions.card
merchant = _definitions.merchant
transaction = _definitions.transaction
feature_table = _definitions.source
card_state_snapshot = _definitions.card_state_source
merchant_state_snapshot = _definitions.merchant_state_source
transaction_features = _definitions.transaction_view
card_state = _definitions.card_state
merchant_state = _definitions.merchant_state
fraud_model = _definitions.service
