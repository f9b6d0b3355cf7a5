"""The monitor on five seeds: quiet without drift, raised in time with it (slow).

Each seed's drifted and quiet runs are generated once and shared by the tests.
``test_detection_figures_table`` prints the figures as a Markdown table for
docs/benchmarks.md; pytest shows it even while it captures output.
"""

from __future__ import annotations

from functools import cache
from statistics import NormalDist

import pytest

from cardfraud.monitoring.monitor import performance_test
from tests.monitoring.drift_scenarios import (
    DRIFT_START,
    DRIFTED_FEATURES,
    ScenarioRun,
    alert_days,
    project_monitor_params,
    run_scenario,
)

pytestmark = pytest.mark.slow

SEEDS = (1, 2, 3, 4, 5)


@cache
def scenario(seed: int, drift: bool) -> ScenarioRun:
    return run_scenario(seed, drift=drift)


def feature_drift_delays(run: ScenarioRun) -> dict[str, int]:
    """Days from the drift start to each affected feature's alert."""
    raised = alert_days(run.report, "feature_drift")
    return {
        name: (day - DRIFT_START).days
        for name, day in raised.items()
        if name in DRIFTED_FEATURES
    }


def performance_delay(run: ScenarioRun) -> int | None:
    """Days from the drift start to the performance alert, or None."""
    raised = alert_days(run.report, "performance_drop").get("roc_auc")
    return None if raised is None else (raised - DRIFT_START).days


def lowest_z(run: ScenarioRun) -> float:
    """The lowest z statistic of the performance test over the period."""
    tested = performance_test(
        run.report.performance, run.settings, run.matured_baseline
    )
    return float(tested["_z"].drop_nulls().drop_nans().min())


@pytest.mark.parametrize("seed", SEEDS)
def test_no_alert_without_drift_seed(seed: int):
    report = scenario(seed, False).report
    assert report.alerts == []


@pytest.mark.parametrize("seed", SEEDS)
def test_feature_drift_within_seven_days_seed(seed: int):
    delays = feature_drift_delays(scenario(seed, True))
    late = {name: days for name, days in delays.items() if not 0 <= days <= 7}
    assert set(delays) == DRIFTED_FEATURES
    assert late == {}


@pytest.mark.parametrize("seed", SEEDS)
def test_performance_drop_in_time_seed(seed: int):
    maturity = project_monitor_params().maturity_days
    delay = performance_delay(scenario(seed, True))
    assert delay is not None
    assert maturity <= delay <= maturity + 14


def test_detection_figures_table(capsys: pytest.CaptureFixture[str]):
    params = project_monitor_params()
    maturity = params.maturity_days
    critical = NormalDist().inv_cdf(params.performance_alpha)
    lines = [
        "| seed | feature drift, days (first to last affected feature) "
        "| performance drop, days | lowest z with drift | alerts without drift "
        "| lowest z without drift |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    false_alarms = 0
    for seed in SEEDS:
        drifted, quiet = scenario(seed, True), scenario(seed, False)
        delays = feature_drift_delays(drifted)
        false_alarms += len(quiet.report.alerts)
        lines.append(
            f"| {seed} | {min(delays.values())} to {max(delays.values())} "
            f"| {performance_delay(drifted)} | {lowest_z(drifted):.1f} "
            f"| {len(quiet.report.alerts)} | {lowest_z(quiet):.1f} |"
        )
    lines.append(
        f"\nBounds: feature drift 7 days, performance drop {maturity + 14} days "
        f"(maturity {maturity} + 14); the test counts z at or below "
        f"{critical:.2f} (alpha {params.performance_alpha:g}); false alarms over "
        f"{len(SEEDS)} quiet runs: {false_alarms}."
    )
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert false_alarms == 0
