"""Stage train: tune, calibrate and save the candidate model with its metadata."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import polars as pl

from cardfraud.data import list_partitions
from cardfraud.feature_store import read_training_set
from cardfraud.monitoring.reference import write_reference_profile
from cardfraud.params import TrainParams
from cardfraud.paths import Workspace
from cardfraud.training import (
    AMOUNT_COLUMN,
    MODEL_FILES,
    REFERENCES_FILE,
    TUNING_FILE,
    check_feature_table,
    file_sha256,
    join_amounts,
    load_feature_columns,
    read_feature_table,
    train_model,
)

logger = logging.getLogger(__name__)

FEATURES_FILE = "features.parquet"
SPEC_FILE = "feature_spec.json"
METRICS_FILE = "train.json"


def run(ws: Workspace, params: TrainParams) -> dict[str, Any]:
    """Train on ``features.parquet`` and write the model, its records and metrics.

    Writes ``model.ubj`` or ``model.txt``, ``model_meta.json``, ``tuning.json`` (every
    Optuna trial), ``references.json`` (the reference models) and
    ``reference_profile.json`` (the drift monitor's reference distributions) to
    ``ws.candidate_dir``, and ``train.json`` to ``ws.metrics_dir``.

    Returns:
        The training metrics plus the model file path and the data fingerprint.
    """
    features_path = ws.features_dir / FEATURES_FILE
    feature_columns = load_feature_columns(ws.features_dir / SPEC_FILE)
    if params.feature_source == "feast":
        # The training set comes from Feast's point-in-time join, the same
        # definitions the service reads online (docs/adr/0004-fresh-online-features.md).
        frame = read_training_set(ws, feature_columns)
        check_feature_table(frame, feature_columns=feature_columns)
        if AMOUNT_COLUMN in pl.read_parquet_schema(features_path):
            # A table that carries amounts keeps them; Feast returns features only.
            amounts = pl.read_parquet(
                features_path, columns=["transaction_id", AMOUNT_COLUMN]
            )
            frame = join_amounts(frame, amounts)
    else:
        frame = read_feature_table(features_path, feature_columns=feature_columns)
    frame = with_amounts(frame, ws.raw_dir)
    result = train_model(
        frame,
        feature_columns=feature_columns,
        params=params,
        data_fingerprint=file_sha256(features_path),
    )
    remove_stale_models(ws.candidate_dir, keep=result.model.flavour)
    model_path = result.model.save(ws.candidate_dir)
    write_reference_profile(ws.candidate_dir, frame, result.model)
    write_json(ws.candidate_dir / TUNING_FILE, result.tuning)
    write_json(ws.candidate_dir / REFERENCES_FILE, result.references)
    write_json(ws.metrics_dir / METRICS_FILE, result.metrics)
    logger.info("wrote %s and %s", model_path, ws.metrics_dir / METRICS_FILE)
    return {
        **result.metrics,
        "model_path": str(model_path),
        "data_fingerprint": result.model.meta["data_fingerprint"],
    }


def with_amounts(frame: pl.DataFrame, raw_dir: Path) -> pl.DataFrame:
    """Return the feature table with ``amount_minor``, joined from the raw data.

    A table that already has the column is returned unchanged.
    """
    if AMOUNT_COLUMN in frame.columns:
        return frame
    raw = pl.read_parquet(
        list_partitions(raw_dir),
        columns=["transaction_id", AMOUNT_COLUMN],
        hive_partitioning=False,
    )
    return join_amounts(frame, raw)


def remove_stale_models(folder: Path, *, keep: str) -> None:
    """Delete model files of other flavours left by an earlier run in ``folder``."""
    for flavour, name in MODEL_FILES.items():
        path = folder / name
        if flavour != keep and path.is_file():
            path.unlink()


def write_json(path: Path, document: dict[str, Any]) -> None:
    """Write ``document`` as sorted, indented JSON, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", "utf-8")
