"""The monitor on generated drift: raised in time with it, quiet without it.

One seed here; tests/slow/test_monitor_drift.py runs five. Decisions are scored in
batch from the feature table, which equals the service's features (the replay test
checks that through the scoring core), so a whole period takes seconds.
"""

from __future__ import annotations

from datetime import timedelta
from statistics import NormalDist

import numpy as np
import polars as pl
import pytest

from cardfraud.evaluation import average_precision
from cardfraud.monitoring.decisions import label_events_from_transactions
from cardfraud.monitoring.monitor import performance_test
from cardfraud.monitoring.performance import (
    TARGET,
    end_of_day,
    label_status,
    naive_labels,
)
from tests.monitoring.drift_scenarios import (
    DRIFT_START,
    DRIFTED_FEATURES,
    ScenarioRun,
    alert_days,
    project_monitor_params,
    run_scenario,
)

SEED = 3


@pytest.fixture(scope="module")
def drifted() -> ScenarioRun:
    return run_scenario(SEED, drift=True)


@pytest.fixture(scope="module")
def quiet() -> ScenarioRun:
    return run_scenario(SEED, drift=False)


def test_drift_raised_within_seven_days(drifted: ScenarioRun):
    raised = alert_days(drifted.report, "feature_drift")
    in_time = {
        name
        for name, day in raised.items()
        if DRIFT_START <= day <= DRIFT_START + timedelta(days=7)
    }
    assert in_time >= DRIFTED_FEATURES, sorted(raised.items())
    assert min(raised.values()) >= DRIFT_START


def test_performance_drop_within_maturity_and_14_days(drifted: ScenarioRun):
    maturity = project_monitor_params().maturity_days
    raised = alert_days(drifted.report, "performance_drop")
    assert "roc_auc" in raised
    delay = (raised["roc_auc"] - DRIFT_START).days
    assert maturity <= delay <= maturity + 14


def test_performance_alert_matches_its_test(drifted: ScenarioRun):
    """The alert's figures are those of its confirming day's matured window."""
    (alert,) = [a for a in drifted.report.alerts if a["kind"] == "performance_drop"]
    settings = drifted.settings
    tested = performance_test(
        drifted.report.performance, settings, drifted.matured_baseline
    )
    day = tested.filter(pl.col("day").cast(pl.String) == alert["raised_on"]).row(
        0, named=True
    )
    confirming_days = tested.filter(
        pl.col("day").is_between(
            pl.lit(alert["first_day"]).str.to_date(),
            pl.lit(alert["raised_on"]).str.to_date(),
        )
    )
    critical = NormalDist().inv_cdf(settings.performance_alpha)
    assert alert["baseline"] == drifted.matured_baseline.roc_auc
    assert alert["value"] == pytest.approx(day["roc_auc"])
    assert alert["z"] == pytest.approx(day["_z"])
    assert alert["z"] <= critical
    assert alert["value"] <= alert["threshold"]
    maturity = timedelta(days=settings.performance.maturity_days)
    assert alert["window_end"] == (day["day"] - maturity).isoformat()
    assert confirming_days["_flag"].to_list() == [True] * settings.confirm_days


def test_no_alert_without_drift(quiet: ScenarioRun):
    assert quiet.report.alerts == []
    assert quiet.report.summary()["alert_counts"] == {
        "feature_drift": 0,
        "score_drift": 0,
        "performance_drop": 0,
    }


def test_skew_check_finds_batch_equal_offline(quiet: ScenarioRun):
    skew = quiet.report.skew
    assert skew is not None
    assert skew["compared"].min() > 0
    assert skew["mismatches"].sum() == 0


def test_unlabelled_as_legitimate_changes_figure(quiet: ScenarioRun):
    """Counting unreported payments as legitimate lowers AP; the monitor does not."""
    decisions = quiet.report.performance
    day = decisions.drop_nulls("average_precision")["day"][-1]
    known_at = end_of_day(day)
    events = label_events_from_transactions(quiet.transactions)
    scored = quiet.features.with_columns(
        score=pl.Series(quiet.model.predict_proba(quiet.features)),
        day=pl.col("timestamp").dt.date(),
    ).filter(pl.col("timestamp") < known_at)
    recent = scored.filter(pl.col("day") > day - timedelta(days=21))

    naive = naive_labels(recent, events, known_at=known_at)
    truth = recent["is_fraud"].cast(pl.Float64).to_numpy()
    naive_ap = average_precision(
        naive[TARGET].cast(pl.Float64).to_numpy(), naive["score"].to_numpy()
    )
    true_ap = average_precision(truth, recent["score"].to_numpy())
    hidden = int(truth.sum() - naive[TARGET].sum())
    assert hidden > 0
    assert abs(naive_ap - true_ap) > 0.02

    params = project_monitor_params()
    monitored = label_status(
        recent, events, known_at=known_at, maturity_days=params.maturity_days
    )
    assert monitored[TARGET].null_count() == recent.height - int(
        monitored[TARGET].sum()
    )
    row = decisions.filter(pl.col("day") == day).row(0, named=True)
    window = scored.filter(
        pl.col("day").is_between(row["window_start"], row["window_end"])
    )
    matured = label_status(
        window, events, known_at=known_at, maturity_days=params.maturity_days
    )
    assert matured[TARGET].null_count() == 0
    assert row["average_precision"] == pytest.approx(
        average_precision(
            matured[TARGET].cast(pl.Float64).to_numpy(), matured["score"].to_numpy()
        )
    )
    assert row["unlabelled_share"] > 0.0
    assert np.isfinite(row["average_precision_low"])
