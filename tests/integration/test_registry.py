"""Tests of MLflow registration, champion/challenger promotion and load_champion.

Most tests use a temporary SQLite store; one runs against a real ``mlflow server``
started on a free 127.0.0.1 port with a temporary backend.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import mlflow
import mlflow.tracking._model_registry.utils as registry_utils
import mlflow.tracking._tracking_service.utils as tracking_utils
import numpy as np
import polars as pl
import pytest

from cardfraud.params import EvaluateParams, RegisterParams, TrainParams
from cardfraud.paths import Workspace
from cardfraud.registry import (
    CHALLENGER,
    CHAMPION,
    decide_promotion,
    flatten_metrics,
    load_champion,
    make_client,
    set_alias,
)
from cardfraud.stages import evaluate as evaluate_stage
from cardfraud.stages import register as register_stage
from cardfraud.stages import train as train_stage
from cardfraud.training import load_model

FEATURES = ["amount_log", "velocity", "merchant_risk", "noise"]
MODEL_NAME = "card-fraud-test"
SERVER_START_TIMEOUT_S = 90.0


def make_feature_table(
    *, rows: int = 2000, days: int = 30, seed: int = 4
) -> pl.DataFrame:
    """Build a small feature table whose fraud label depends on three features.

    Fraud labels arrive one to four days after the transaction.
    """
    rng = np.random.default_rng(seed)
    start = datetime(2025, 5, 1, tzinfo=UTC)
    offsets = np.sort(rng.integers(0, days * 86_400_000_000, size=rows))
    features = {
        "amount_log": rng.normal(3.0, 1.0, rows),
        "velocity": rng.poisson(2.0, rows).astype(np.int64),
        "merchant_risk": rng.uniform(0.0, 1.0, rows),
        "noise": rng.normal(size=rows),
    }
    logit = (
        -8.0
        + 1.2 * features["amount_log"]
        + 0.8 * features["velocity"]
        + 2.0 * features["merchant_risk"]
    )
    is_fraud = rng.uniform(size=rows) < 1.0 / (1.0 + np.exp(-logit))
    timestamps = [start + timedelta(microseconds=int(o)) for o in offsets]
    delays = rng.uniform(1.0, 4.0, rows)
    return pl.DataFrame(
        {
            "transaction_id": [f"t{i:06d}" for i in range(rows)],
            "card_id": [f"c{i % 53:03d}" for i in range(rows)],
            "merchant_id": [f"m{i % 17:03d}" for i in range(rows)],
            "timestamp": pl.Series(timestamps, dtype=pl.Datetime("us", "UTC")),
            **features,
            "amount_minor": rng.integers(500, 50_000, rows),
            "is_fraud": is_fraud,
            "label_available_at": pl.Series(
                [
                    t + timedelta(days=float(d)) if f else None
                    for t, f, d in zip(timestamps, is_fraud, delays, strict=True)
                ],
                dtype=pl.Datetime("us", "UTC"),
            ),
            "fraud_scenario": ["takeover" if f else None for f in is_fraud],
        }
    )


def train_params(**changes: object) -> TrainParams:
    """Return small, fast training parameters for 30 days of data."""
    values = {
        "cutoff": None,
        "test_days": 8,
        "maturity_days": 3,
        "burn_in_days": 0,
        "folds": 1,
        "fold_days": 6,
        "models": ["xgboost"],
        "trials": 2,
        "max_estimators": 25,
        "negative_sample_rate": 1.0,
        "review_alert_rate": 0.05,
        "decline_precision": 0.5,
        "cost": {
            "false_alarm_minor": 500,
            "caught_fraud_minor": 500,
            "missed_fraud_share": 1.0,
        },
        "baseline_rules": {"velocity": 4.0},
        "seed": 5,
    }
    values.update(changes)
    return TrainParams(**values)


WEAK = {"max_estimators": 10, "baseline_rules": {"noise": 1.0}}
MANIFEST = {"rows": 2000, "frauds": 60, "config_hash": "abc123", "package": "test"}


def prepare_candidate(
    ws: Workspace,
    table: pl.DataFrame,
    *,
    feature_columns: list[str],
    params: TrainParams,
) -> None:
    """Write the feature table and manifest, then run the train and evaluate stages."""
    ws.features_dir.mkdir(parents=True, exist_ok=True)
    table.write_parquet(ws.features_dir / "features.parquet")
    spec = {"feature_columns": feature_columns}
    (ws.features_dir / "feature_spec.json").write_text(json.dumps(spec))
    lineage = {"features": "synthetic", "rows": table.height}
    (ws.features_dir / "lineage.json").write_text(json.dumps(lineage))
    ws.raw_dir.mkdir(parents=True, exist_ok=True)
    (ws.raw_dir / "manifest.json").write_text(json.dumps(MANIFEST))
    train_stage.run(ws, params)
    evaluate_stage.run(ws, EvaluateParams(bootstrap_rounds=20, seed=11))


@pytest.fixture(scope="module")
def table() -> pl.DataFrame:
    return make_feature_table()


@pytest.fixture(autouse=True)
def restore_mlflow_uris(monkeypatch: pytest.MonkeyPatch) -> None:
    """Restore MLflow's process-wide tracking and registry URIs after each test.

    Registration sets them, and later tests in the same process must not inherit a
    temporary store.
    """
    monkeypatch.setattr(tracking_utils, "_tracking_uri", tracking_utils._tracking_uri)
    monkeypatch.setattr(registry_utils, "_registry_uri", registry_utils._registry_uri)


@pytest.fixture
def sqlite_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point ``Workspace.tracking_uri`` at a temporary SQLite store."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def test_decide_promotion_cases() -> None:
    first = decide_promotion(candidate_score=0.4, champion_score=None, margin=0.0)
    better = decide_promotion(candidate_score=0.5, champion_score=0.4, margin=0.05)
    slightly = decide_promotion(candidate_score=0.43, champion_score=0.4, margin=0.05)
    equal = decide_promotion(candidate_score=0.4, champion_score=0.4, margin=0.0)

    assert first.alias == CHAMPION
    assert better.alias == CHAMPION
    assert slightly.alias == CHALLENGER
    assert equal.alias == CHALLENGER
    assert "0.400000" in better.reason


def test_flatten_metrics_names() -> None:
    nested = {"test": {"roc_auc": {"value": 0.9}, "scenario_recall": {"a b!": 0.5}}}

    assert flatten_metrics({**nested, "rows": 10, "flag": True, "name": "x"}) == {
        "test_roc_auc_value": 0.9,
        "test_scenario_recall_a b_": 0.5,
        "rows": 10.0,
    }


def test_register_promotes_better_and_keeps_worse_as_challenger(
    tmp_path: Path, table: pl.DataFrame, sqlite_uri: str
) -> None:
    registry_params = RegisterParams(model_name=MODEL_NAME, promotion_margin=0.01)
    weak = Workspace(tmp_path / "weak")
    strong = Workspace(tmp_path / "strong")
    prepare_candidate(
        weak, table, feature_columns=["noise"], params=train_params(**WEAK)
    )
    prepare_candidate(strong, table, feature_columns=FEATURES, params=train_params())

    first = register_stage.run(weak, registry_params)
    second = register_stage.run(strong, registry_params)
    third = register_stage.run(weak, registry_params)

    assert (first["version"], first["alias"]) == ("1", CHAMPION)
    assert first["reason"] == "no champion was registered"
    assert (second["version"], second["alias"]) == ("2", CHAMPION)
    assert second["previous_champion_version"] == "1"
    assert (
        second["candidate_average_precision"]
        > second["previous_champion_average_precision"]
    )
    assert (third["version"], third["alias"]) == ("3", CHALLENGER)
    assert third["previous_champion_version"] == "2"
    assert "beats the champion's" in (strong.models_dir / "promotion.md").read_text()
    card = (strong.models_dir / "model_card.md").read_text()
    assert "Alias: **champion**" in card
    assert "Average precision (AUC-PR)" in card
    assert json.loads(weak.registration_file.read_text()) == third

    client = make_client(sqlite_uri)
    assert str(client.get_model_version_by_alias(MODEL_NAME, CHAMPION).version) == "2"
    assert str(client.get_model_version_by_alias(MODEL_NAME, CHALLENGER).version) == "3"


def test_registered_run_has_lineage_and_metadata(
    tmp_path: Path, table: pl.DataFrame, sqlite_uri: str
) -> None:
    ws = Workspace(tmp_path / "ws")
    prepare_candidate(ws, table, feature_columns=FEATURES, params=train_params())

    report = register_stage.run(
        ws, RegisterParams(model_name=MODEL_NAME, promotion_margin=0.0)
    )

    client = make_client(sqlite_uri)
    run = client.get_run(report["run_id"])
    artifacts = {item.path for item in client.list_artifacts(report["run_id"])}
    reports = {item.path for item in client.list_artifacts(report["run_id"], "reports")}
    plots = {item.path for item in client.list_artifacts(report["run_id"], "plots")}
    meta = json.loads((ws.candidate_dir / "model_meta.json").read_text())
    manifest_hash = hashlib.sha256((ws.raw_dir / "manifest.json").read_bytes())
    assert {"lineage.json", "model_meta.json", "feature_columns.json"} <= artifacts
    assert {"reports/model_card.md", "reports/promotion.md"} <= reports
    assert "plots/reliability_calibrated.csv" in plots
    assert run.data.params["hyper_max_depth"] == str(
        meta["hyperparameters"]["max_depth"]
    )
    assert run.data.params["cost_false_alarm_minor"] == "500"
    assert run.data.tags["data_fingerprint"] == meta["data_fingerprint"]
    assert run.data.tags["data_manifest_sha256"] == manifest_hash.hexdigest()
    assert run.data.tags["data_config_hash"] == "abc123"
    assert run.data.tags["git_commit"]
    trials = client.search_runs(
        [run.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{report['run_id']}'",
    )
    assert len(trials) == 2
    assert {trial.data.tags["trial_state"] for trial in trials} <= {
        "COMPLETE",
        "PRUNED",
    }
    assert all("fold_1_average_precision" in t.data.metrics for t in trials)
    assert run.data.metrics["test_average_precision_value"] == pytest.approx(
        report["candidate_average_precision"]
    )
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.artifact_location == ws.mlflow_artifacts.resolve().as_uri()


def test_moving_alias_moves_loaded_champion(
    tmp_path: Path, table: pl.DataFrame, sqlite_uri: str
) -> None:
    registry_params = RegisterParams(model_name=MODEL_NAME, promotion_margin=0.0)
    weak = Workspace(tmp_path / "weak")
    strong = Workspace(tmp_path / "strong")
    prepare_candidate(
        weak, table, feature_columns=["noise"], params=train_params(**WEAK)
    )
    prepare_candidate(strong, table, feature_columns=FEATURES, params=train_params())
    register_stage.run(weak, registry_params)
    register_stage.run(strong, registry_params)

    before = load_champion(tracking_uri=sqlite_uri, model_name=MODEL_NAME)
    set_alias(
        make_client(sqlite_uri), model_name=MODEL_NAME, version="1", alias=CHAMPION
    )
    after = load_champion(tracking_uri=sqlite_uri, model_name=MODEL_NAME)

    assert (before.version, before.feature_columns) == ("2", FEATURES)
    assert (after.version, after.feature_columns) == ("1", ["noise"])
    weak_local = load_model(weak.candidate_dir)
    np.testing.assert_array_equal(
        after.predict_proba(table), weak_local.predict_proba(table)
    )
    assert after.thresholds == weak_local.thresholds
    base_value, contributions = before.contributions(table.head(5))
    np.testing.assert_allclose(
        base_value + contributions.sum(axis=1),
        before.predict_margin(table.head(5)),
        atol=1e-5,
    )


def test_load_champion_ignores_global_tracking_uri(
    tmp_path: Path, table: pl.DataFrame, sqlite_uri: str
) -> None:
    ws = Workspace(tmp_path / "ws")
    prepare_candidate(ws, table, feature_columns=FEATURES, params=train_params())
    register_stage.run(ws, RegisterParams(model_name=MODEL_NAME, promotion_margin=0.0))
    other_store = f"sqlite:///{tmp_path / 'other.db'}"
    mlflow.set_tracking_uri(other_store)
    mlflow.set_registry_uri(other_store)

    champion = load_champion(tracking_uri=sqlite_uri, model_name=MODEL_NAME)

    assert champion.version == "1"
    assert champion.run_id


def test_register_same_model_twice_keeps_champion(
    tmp_path: Path, table: pl.DataFrame, sqlite_uri: str
) -> None:
    ws = Workspace(tmp_path / "ws")
    prepare_candidate(ws, table, feature_columns=FEATURES, params=train_params())
    registry_params = RegisterParams(model_name=MODEL_NAME, promotion_margin=0.0)

    register_stage.run(ws, registry_params)
    again = register_stage.run(ws, registry_params)

    client = make_client(sqlite_uri)
    assert str(client.get_model_version_by_alias(MODEL_NAME, CHAMPION).version) == "1"
    assert str(client.get_model_version_by_alias(MODEL_NAME, CHALLENGER).version) == "2"
    assert again["alias"] == CHALLENGER
    promotion = (ws.models_dir / "promotion.md").read_text()
    assert "Decision: **challenger**" in promotion
    assert "does not beat the champion" in promotion
    assert (
        again["previous_champion_average_precision"]
        == again["candidate_average_precision"]
    )
    assert (
        again["previous_champion_stored_average_precision"]
        == again["candidate_average_precision"]
    )


def test_lightgbm_model_registers_and_loads(
    tmp_path: Path, table: pl.DataFrame, sqlite_uri: str
) -> None:
    ws = Workspace(tmp_path / "ws")
    params = train_params(models=["lightgbm"])
    prepare_candidate(ws, table, feature_columns=FEATURES, params=params)

    register_stage.run(ws, RegisterParams(model_name=MODEL_NAME, promotion_margin=0.0))
    champion = load_champion(tracking_uri=sqlite_uri, model_name=MODEL_NAME)

    assert champion.flavour == "lightgbm"
    np.testing.assert_array_equal(
        champion.predict_proba(table),
        load_model(ws.candidate_dir).predict_proba(table),
    )
    base_value, contributions = champion.contributions(table.head(5))
    np.testing.assert_allclose(
        base_value + contributions.sum(axis=1),
        champion.predict_margin(table.head(5)),
        atol=1e-9,
    )


def test_load_champion_without_alias_raises(sqlite_uri: str) -> None:
    with pytest.raises(LookupError, match="has no alias 'champion'"):
        load_champion(tracking_uri=sqlite_uri, model_name="missing-model")


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_health(url: str, process: subprocess.Popen[bytes]) -> None:
    """Poll ``url``/health until it returns 200; fail if the server exits first."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"mlflow server exited with code {process.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    pytest.fail(f"mlflow server at {url} not healthy after {SERVER_START_TIMEOUT_S} s")


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """Start ``mlflow server`` on 127.0.0.1 with a temporary backend; stop it by PID."""
    port = free_port()
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    environment = {
        **os.environ,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
    }
    environment.pop("MLFLOW_TRACKING_URI", None)
    log_path = tmp_path / "mlflow-server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                str(mlflow_cli),
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
                "--backend-store-uri",
                f"sqlite:///{tmp_path / 'server.db'}",
                "--artifacts-destination",
                str(tmp_path / "server-artifacts"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def test_register_and_load_through_tracking_server(
    tmp_path: Path,
    table: pl.DataFrame,
    mlflow_server: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    ws = Workspace(tmp_path / "ws")
    prepare_candidate(ws, table, feature_columns=FEATURES, params=train_params())

    report = register_stage.run(
        ws, RegisterParams(model_name=MODEL_NAME, promotion_margin=0.0)
    )
    champion = load_champion(tracking_uri=mlflow_server, model_name=MODEL_NAME)

    assert (report["version"], report["alias"]) == ("1", CHAMPION)
    assert champion.version == "1"
    assert champion.feature_columns == FEATURES
    np.testing.assert_array_equal(
        champion.predict_proba(table),
        load_model(ws.candidate_dir).predict_proba(table),
    )
    assert not ws.mlflow_artifacts.exists()
    assert any((tmp_path / "server-artifacts").rglob("model.ubj"))
