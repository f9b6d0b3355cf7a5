"""Generated periods with and without a drift scenario, and the monitor run on them.

A model is fitted on the 30 days before ``CUTOFF``; the monitor then reads every
later day with the labels known on that day. The drift scenario starts on
``DRIFT_START``: the ``mass`` customer segment pays five times larger amounts, twice
as often and eight hours later, and a mimicry fraud campaign adds 5% of the
legitimate volume in frauds that copy their cards' habits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path

import numpy as np
import polars as pl
import xgboost as xgb
import yaml

import fraudgen
from cardfraud.features import build_feature_table, feature_columns
from cardfraud.monitoring.decisions import (
    batch_decisions,
    label_events_from_transactions,
)
from cardfraud.monitoring.monitor import MonitorReport, MonitorSettings, run_monitor
from cardfraud.monitoring.performance import MaturedBaseline, matured_baseline
from cardfraud.monitoring.reference import profile_for_model, window_rows
from cardfraud.monitoring.settings import monitor_settings
from cardfraud.params import FeaturesParams, MonitorParams, parse_section
from cardfraud.paths import project_root
from cardfraud.training import TrainedModel

START = date(2025, 1, 1)
DAYS = 150
ROWS = 60_000
FRAUD_RATE = 0.02
FIT_START = date(2025, 1, 31)
CUTOFF = date(2025, 3, 2)
SCORE_REFERENCE_END = date(2025, 3, 16)
DRIFT_START = date(2025, 3, 22)
DRIFTED_FEATURES = frozenset(
    {"log_amount", "hour_of_day", "amount_zscore_card", "amount_ratio_card_mean"}
)
"""Features the segment shift moves directly: amounts and hours."""
FEATURE_PARAMS = FeaturesParams(windows_hours=[1, 24, 168, 720], label_delay_days=30)


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def window(start: date, end: date) -> dict[str, str]:
    return {"start": midnight(start).isoformat(), "end": midnight(end).isoformat()}


def drift_config() -> dict:
    return {
        "campaigns": [
            {"scenario": "mimicry", "start": DRIFT_START, "fraud_rate": 0.05}
        ],
        "segment_shifts": [
            {
                "segment": "mass",
                "start": DRIFT_START,
                "amount_multiplier": 5.0,
                "volume_multiplier": 2.0,
                "hour_shift": 8,
            }
        ],
    }


def generate(seed: int, *, drift: bool) -> pl.DataFrame:
    config = {
        "rows": ROWS,
        "days": DAYS,
        "start": START,
        "fraud_rate": FRAUD_RATE,
        "seed": seed,
    }
    if drift:
        config["drift"] = drift_config()
    return fraudgen.generate_frame(fraudgen.build_config(config), threads=1)


def fit_model(features: pl.DataFrame, seed: int) -> TrainedModel:
    """Fit a small XGBoost model on the 30 days before the cutoff."""
    columns = feature_columns(FEATURE_PARAMS)
    rows = window_rows(features, window(FIT_START, CUTOFF))
    matrix = rows.select(columns).to_numpy().astype(np.float64)
    labels = rows["is_fraud"].to_numpy().astype(np.float64)
    booster = xgb.train(
        {
            "max_depth": 4,
            "eta": 0.1,
            "objective": "binary:logistic",
            "seed": seed,
            "nthread": 1,
        },
        xgb.DMatrix(matrix, labels),
        num_boost_round=150,
    )
    scores = booster.inplace_predict(matrix)
    thresholds = {
        "review": float(np.quantile(scores, 0.99)),
        "decline": float(np.quantile(scores, 0.998)),
    }
    meta = {
        "windows": {
            "fit": window(FIT_START, CUTOFF),
            "test": window(CUTOFF, SCORE_REFERENCE_END),
        }
    }
    return TrainedModel("xgboost", booster, columns, thresholds, meta)


def project_monitor_params() -> MonitorParams:
    """The ``monitor`` section of the project's params.yaml."""
    params = yaml.safe_load((project_root() / "params.yaml").read_text("utf-8"))
    return parse_section(MonitorParams, params["monitor"], section="monitor")


@dataclass(frozen=True)
class ScenarioRun:
    """One generated period, its model and what the monitor found.

    Attributes:
        baseline: The matured average precision before the drift start, which
            the exporters publish.
        matured_baseline: Every baseline figure, the ROC AUC that the
            performance alert tests included.
        settings: The settings the monitor ran with.
    """

    transactions: pl.DataFrame
    features: pl.DataFrame
    model: TrainedModel
    report: MonitorReport
    baseline: float
    matured_baseline: MaturedBaseline
    settings: MonitorSettings


def run_scenario(seed: int, *, drift: bool, out: Path | None = None) -> ScenarioRun:
    """Generate, fit, score every later day in batch and run the monitor."""
    transactions = generate(seed, drift=drift)
    features = build_feature_table(transactions, FEATURE_PARAMS).join(
        transactions.select("transaction_id", "label_available_at"), "transaction_id"
    )
    model = fit_model(features, seed)
    later = features.filter(pl.col("timestamp") >= midnight(CUTOFF))
    decisions = batch_decisions(later, model, model_version="1")

    before_drift = window_rows(features, window(CUTOFF, DRIFT_START))
    params = project_monitor_params()
    baseline = matured_baseline(
        before_drift,
        model.predict_proba(before_drift),
        maturity_days=params.maturity_days,
        bootstrap_rounds=params.bootstrap_rounds,
        seed=params.seed,
    )
    if baseline is None:
        raise RuntimeError(
            f"seed {seed}: no fraud before {DRIFT_START} was reported within "
            f"{params.maturity_days} days, so there is no baseline"
        )

    settings = monitor_settings(
        params,
        review_threshold=model.thresholds["review"],
        alerts_per_10000=100.0,
        baseline=baseline,
    )
    report = run_monitor(
        decisions,
        label_events_from_transactions(transactions),
        profile_for_model(features, model),
        settings,
        feature_columns=model.feature_columns,
        offline_features=features,
    )
    return ScenarioRun(
        transactions,
        features,
        model,
        report,
        baseline.average_precision,
        baseline,
        settings,
    )


def alert_days(report: MonitorReport, kind: str) -> dict[str, date]:
    """Return the day each alert of ``kind`` was raised, by subject."""
    return {
        alert["subject"]: date.fromisoformat(alert["raised_on"])
        for alert in report.alerts
        if alert["kind"] == kind
    }
