"""Stage train: fit the model on a time-ordered split and save it with its metadata."""

from __future__ import annotations

import json
import logging
from typing import Any

from cardfraud.params import TrainParams
from cardfraud.paths import Workspace
from cardfraud.training import (
    file_sha256,
    load_feature_columns,
    read_feature_table,
    train_model,
)

logger = logging.getLogger(__name__)

FEATURES_FILE = "features.parquet"
SPEC_FILE = "feature_spec.json"
METRICS_FILE = "train.json"


def run(ws: Workspace, params: TrainParams) -> dict[str, Any]:
    """Train on ``features.parquet`` and write the model, its metadata and metrics.

    Writes ``model.ubj`` or ``model.txt`` and ``model_meta.json`` to
    ``ws.candidate_dir``, and ``train.json`` to ``ws.metrics_dir``.

    Returns:
        The training metrics plus the model file path and the data fingerprint.
    """
    features_path = ws.features_dir / FEATURES_FILE
    feature_columns = load_feature_columns(ws.features_dir / SPEC_FILE)
    frame = read_feature_table(features_path, feature_columns=feature_columns)
    result = train_model(
        frame,
        feature_columns=feature_columns,
        params=params,
        data_fingerprint=file_sha256(features_path),
    )
    model_path = result.model.save(ws.candidate_dir)

    ws.metrics_dir.mkdir(parents=True, exist_ok=True)
    metrics_text = json.dumps(result.metrics, indent=2, sort_keys=True) + "\n"
    (ws.metrics_dir / METRICS_FILE).write_text(metrics_text, encoding="utf-8")
    logger.info("wrote %s and %s", model_path, ws.metrics_dir / METRICS_FILE)
    return {
        **result.metrics,
        "model_path": str(model_path),
        "data_fingerprint": result.model.meta["data_fingerprint"],
    }
