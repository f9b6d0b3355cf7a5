"""Stage register: log the candidate to MLflow, register it and set its alias.

Besides ``registration.json`` it writes ``promotion.md``, which says why the candidate
became champion or challenger, and ``model_card.md``, the model card of the registered
version. Both are also logged to the candidate's MLflow run.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import polars as pl

from cardfraud.evaluation import average_precision
from cardfraud.model_card import build_model_card, build_promotion_report
from cardfraud.params import RegisterParams
from cardfraud.paths import Workspace
from cardfraud.registry import (
    CHAMPION,
    COMPARED_METRIC,
    ChampionModel,
    RunRecords,
    decide_promotion,
    find_alias_version,
    flatten_metrics,
    load_champion,
    log_candidate,
    log_run_files,
    make_client,
    register_candidate,
    set_alias,
    stored_score,
)
from cardfraud.stages.evaluate import METRICS_FILE as EVALUATE_FILE
from cardfraud.stages.train import FEATURES_FILE
from cardfraud.stages.train import METRICS_FILE as TRAIN_FILE
from cardfraud.training import (
    TUNING_FILE,
    TimeWindow,
    label_vector,
    load_model,
    select_window,
)

logger = logging.getLogger(__name__)

LINEAGE_FILE = "lineage.json"
MANIFEST_FILE = "manifest.json"
PROMOTION_FILE = "promotion.md"
MODEL_CARD_FILE = "model_card.md"


def run(ws: Workspace, params: RegisterParams) -> dict[str, Any]:
    """Register the trained model and make it champion or challenger.

    The candidate is compared with the current champion on the candidate's test
    rows; the champion's stored metric is reported beside it. Writes
    ``ws.registration_file``.

    Returns:
        The content of ``registration.json``.
    """
    tracking_uri = ws.tracking_uri()
    model = load_model(ws.candidate_dir)
    evaluation = read_json(ws.metrics_dir / EVALUATE_FILE)
    candidate_score = float(evaluation["average_precision"]["value"])
    test = select_window(
        pl.read_parquet(ws.features_dir / FEATURES_FILE),
        TimeWindow.from_json(model.meta["windows"]["test"]),
    )

    client = make_client(tracking_uri)
    champion_version = find_alias_version(
        client, model_name=params.model_name, alias=CHAMPION
    )
    champion_stored = None
    champion_score = None
    if champion_version is not None:
        champion_stored = stored_score(client, champion_version)
        champion = load_champion(
            tracking_uri=tracking_uri, model_name=params.model_name
        )
        champion_score = score_on_rows(champion, test, fallback=champion_stored)

    training = read_json(ws.metrics_dir / TRAIN_FILE)
    manifest_path = ws.raw_dir / MANIFEST_FILE
    manifest = read_json(manifest_path) if manifest_path.is_file() else None
    records = RunRecords(
        metrics=flatten_metrics({"train": training, "test": evaluation}),
        lineage_path=ws.features_dir / LINEAGE_FILE,
        tags=manifest_tags(manifest_path, manifest),
        trials=read_trials(ws.candidate_dir / TUNING_FILE),
        artifacts={
            "plots": sorted(ws.plots_dir.glob("*.csv")),
            "metrics": [ws.metrics_dir / TRAIN_FILE, ws.metrics_dir / EVALUATE_FILE],
        },
    )
    candidate = log_candidate(
        model,
        tracking_uri=tracking_uri,
        experiment_name=params.model_name,
        records=records,
        artifact_location=default_artifact_location(ws, tracking_uri),
    )
    version = register_candidate(
        candidate,
        tracking_uri=tracking_uri,
        model_name=params.model_name,
        test_score=candidate_score,
        data_fingerprint=model.meta["data_fingerprint"],
    )
    decision = decide_promotion(
        candidate_score=candidate_score,
        champion_score=champion_score,
        margin=params.promotion_margin,
    )
    set_alias(
        client, model_name=params.model_name, version=version, alias=decision.alias
    )

    report = {
        "model_name": params.model_name,
        "version": version,
        "alias": decision.alias,
        "reason": decision.reason,
        "run_id": candidate.run_id,
        "candidate_average_precision": round(candidate_score, 6),
        "previous_champion_version": (
            None if champion_version is None else str(champion_version.version)
        ),
        "previous_champion_average_precision": rounded(champion_score),
        "previous_champion_stored_average_precision": rounded(champion_stored),
        "promotion_margin": params.promotion_margin,
        "compared_metric": COMPARED_METRIC,
        "test_window": model.meta["windows"]["test"],
    }
    written = write_reports(
        ws,
        report,
        card=build_model_card(
            registration=report,
            meta=model.meta,
            training=training,
            evaluation=evaluation,
            manifest=manifest,
        ),
    )
    log_run_files(
        tracking_uri=tracking_uri,
        run_id=candidate.run_id,
        paths=written,
        artifact_path="reports",
    )
    logger.info("version %s is %s: %s", version, decision.alias, decision.reason)
    return report


def write_reports(ws: Workspace, report: dict[str, Any], *, card: str) -> list[Path]:
    """Write registration.json, promotion.md and model_card.md under models/.

    Returns:
        The paths written.
    """
    folder = ws.registration_file.parent
    folder.mkdir(parents=True, exist_ok=True)
    report_text = json.dumps(report, indent=2, sort_keys=True) + "\n"
    ws.registration_file.write_text(report_text, encoding="utf-8")
    promotion = folder / PROMOTION_FILE
    promotion.write_text(build_promotion_report(report), encoding="utf-8")
    model_card = folder / MODEL_CARD_FILE
    model_card.write_text(card, encoding="utf-8")
    return [ws.registration_file, promotion, model_card]


def manifest_tags(path: Path, manifest: dict[str, Any] | None) -> dict[str, str]:
    """Return the data manifest's SHA-256 and generator config hash as run tags."""
    if manifest is None:
        logger.warning("%s not found; the run has no data manifest tags", path)
        return {}
    tags = {"data_manifest_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    if manifest.get("config_hash"):
        tags["data_config_hash"] = str(manifest["config_hash"])
    return tags


def read_trials(path: Path) -> list[dict[str, Any]]:
    """Return the Optuna trials recorded by the train stage; empty when absent."""
    if not path.is_file():
        logger.warning("%s not found; no trial runs are logged", path)
        return []
    return list(read_json(path).get("trials", []))


def score_on_rows(
    champion: ChampionModel, rows: pl.DataFrame, *, fallback: float | None
) -> float | None:
    """Return the champion's average precision on ``rows``, rounded to 6 decimals.

    The rounding matches the candidate's metric in ``evaluate.json``, so equal models
    compare as equal. Returns ``fallback`` when the rows lack a feature the champion
    needs or contain a single class, because the champion then cannot be scored on them.

    NOTE: A champion trained on data that overlaps these rows scores optimistically
    here, which makes promotion harder; the train windows are not compared.
    """
    missing = [name for name in champion.feature_columns if name not in rows.columns]
    labels = label_vector(rows)
    frauds = int(labels.sum())
    if missing or frauds in (0, labels.size):
        logger.warning(
            "champion version %s not scored on the candidate's test rows (missing "
            "features %s, %d frauds in %d rows); using its stored metric %s",
            champion.version,
            missing,
            frauds,
            labels.size,
            fallback,
        )
        return fallback
    return round(average_precision(labels, champion.predict_proba(rows)), 6)


def default_artifact_location(ws: Workspace, tracking_uri: str) -> str | None:
    """Return the workspace artifact root for a SQLite store, None for a server."""
    if tracking_uri.startswith("sqlite:"):
        return ws.mlflow_artifacts.resolve().as_uri()
    return None


def read_json(path: Any) -> dict[str, Any]:
    """Read a JSON object from ``path``."""
    return json.loads(path.read_text(encoding="utf-8"))


def rounded(value: float | None) -> float | None:
    """Round to 6 decimals, keeping None."""
    return None if value is None else round(value, 6)
