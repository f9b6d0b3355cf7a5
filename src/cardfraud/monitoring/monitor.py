"""The monitor: drift, decision mix, matured performance and skew over a period.

``run_monitor`` takes decisions and label events and returns a ``MonitorReport``:
daily tables, the alerts raised, and a machine-readable summary
(``metrics/monitor.json``). An alert is raised on the first day a condition has held
for ``confirm_days`` consecutive days.

The performance condition holds on day D when the ROC AUC of D's matured window
(``cardfraud.monitoring.performance``) is below the baseline ROC AUC, measured on
the model's test window under the same labelling rule, in both of these ways:

- significantly: a one-sided z-test, ``z = (AUC - AUC_0) / sqrt(se^2 + se_0^2)``
  with both standard errors from resampling cards, gives ``z`` at or below the
  normal quantile of ``performance_alpha``;
- materially: the Gini coefficient ``2 * AUC - 1`` is at least
  ``performance_gini_drop`` (relative) below the baseline's.

The test uses ROC AUC, not average precision, because AUC does not depend on the
fraud rate. A campaign of frauds that the model misses raises the fraud rate, and
the extra frauds lift precision at every depth, so average precision can stay
close to its baseline while the model misses most of the new frauds. A window
can also contain few fraud incidents (4 to 16 fraud cards in 7-day windows of 400
payments a day, in the generated data of tests/monitoring/drift_scenarios.py), so
the standard errors resample cards rather than payments.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, timedelta
from statistics import NormalDist
from typing import Any

import polars as pl

from cardfraud.monitoring.drift import daily_drift
from cardfraud.monitoring.performance import (
    MaturedBaseline,
    PerformanceSettings,
    matured_performance,
)
from cardfraud.monitoring.reference import SCORE_NAME, ReferenceProfile
from cardfraud.monitoring.skew import feature_skew

logger = logging.getLogger(__name__)

DECISIONS = ("approve", "review", "decline")
ALERT_KINDS = ("feature_drift", "score_drift", "performance_drop")
SUMMARY_DECIMALS = 6


@dataclass(frozen=True)
class MonitorSettings:
    """Thresholds and sizes of one monitor run (the ``monitor`` section of params).

    Attributes:
        psi_alert: Feature PSI at or above which a day counts as drifted.
        score_psi_alert: Score PSI at or above which a day counts as drifted.
        drift_window_days: Event days pooled into each day's drift sample.
        drift_min_rows: Days whose sample has fewer rows are not judged, nor days
            whose window starts before the period.
        drift_exclude: Features not judged for drift alerts (still reported).
        confirm_days: Consecutive days a condition must hold to raise an alert.
        performance: How matured performance is measured.
        performance_alpha: One-sided significance level of the test that matured
            ROC AUC is below the baseline's.
        performance_gini_drop: Smallest relative fall of the Gini coefficient
            (``2 * AUC - 1``) below the baseline's that counts as a drop.
        baseline: The model's matured performance on its test window; None
            disables the performance alert.
        skew_sample: Decisions compared with the offline features.
        seed: Seed of the skew sample.
    """

    psi_alert: float
    score_psi_alert: float
    drift_window_days: int
    drift_min_rows: int
    drift_exclude: tuple[str, ...]
    confirm_days: int
    performance: PerformanceSettings
    performance_alpha: float
    performance_gini_drop: float
    baseline: MaturedBaseline | None
    skew_sample: int
    seed: int


@dataclass
class MonitorReport:
    """Findings of one monitor run.

    Attributes:
        period: First and last event day monitored.
        drift: Per-day drift of every feature and the score (``DRIFT_SCHEMA``).
        decision_mix: Per-day decision counts and rates, review queue included.
        performance: Per-day matured performance (``PERFORMANCE_SCHEMA``).
        skew: Online/offline comparison per feature, or None without offline rows.
        alerts: Alerts raised, each with its kind, subject, first day and value.
        data_quality: Rows, duplicates, degraded decisions and days without data.
        baseline_average_precision: The model's matured average precision on its
            test window, or None.
        baseline_roc_auc: The model's matured ROC AUC on its test window, which
            the performance alert compares with, or None.
    """

    period: tuple[date, date]
    drift: pl.DataFrame
    decision_mix: pl.DataFrame
    performance: pl.DataFrame
    skew: pl.DataFrame | None
    alerts: list[dict[str, Any]] = field(default_factory=list)
    data_quality: dict[str, Any] = field(default_factory=dict)
    baseline_average_precision: float | None = None
    baseline_roc_auc: float | None = None

    def summary(self) -> dict[str, Any]:
        """Return the machine-readable summary written to ``metrics/monitor.json``."""
        last_drift = self.drift.filter(pl.col("day") == self.period[1])
        latest = self.performance.drop_nulls("average_precision").tail(1)
        return round_floats(
            {
                "period": {
                    "start": self.period[0].isoformat(),
                    "end": self.period[1].isoformat(),
                },
                "alerts": self.alerts,
                "alert_counts": {
                    kind: sum(1 for alert in self.alerts if alert["kind"] == kind)
                    for kind in ALERT_KINDS
                },
                "drift_last_day": {
                    row["column"]: {"psi": row["psi"], "rows": row["rows"]}
                    for row in last_drift.iter_rows(named=True)
                },
                "max_feature_psi": max_value(
                    self.drift.filter(pl.col("column") != SCORE_NAME), "psi"
                ),
                "max_score_psi": max_value(
                    self.drift.filter(pl.col("column") == SCORE_NAME), "psi"
                ),
                "decision_mix": decision_totals(self.decision_mix),
                "matured_performance": (
                    latest.to_dicts()[0] | {"day": latest["day"][0].isoformat()}
                    if latest.height
                    else None
                ),
                "unlabelled_share": (
                    self.performance["unlabelled_share"][-1]
                    if self.performance.height
                    else None
                ),
                "skew": skew_summary(self.skew),
                "data_quality": self.data_quality,
                "baseline_average_precision": self.baseline_average_precision,
                "baseline_roc_auc": self.baseline_roc_auc,
            }
        )


def max_value(frame: pl.DataFrame, column: str) -> float | None:
    """Return the largest non-null value of a column, or None."""
    value = frame[column].max() if frame.height else None
    return None if value is None else float(value)


def round_floats(value: Any) -> Any:
    """Round every float in a nested structure to ``SUMMARY_DECIMALS``."""
    if isinstance(value, float):
        return round(value, SUMMARY_DECIMALS)
    if isinstance(value, dict):
        return {key: round_floats(item) for key, item in value.items()}
    if isinstance(value, list):
        return [round_floats(item) for item in value]
    if isinstance(value, date):
        return value.isoformat()
    return value


def decision_mix(decisions: pl.DataFrame) -> pl.DataFrame:
    """Return per-day counts and rates of each decision; reviews are the queue."""
    counts = decisions.group_by("day").agg(
        pl.len().alias("rows"),
        *[
            (pl.col("decision") == name).sum().cast(pl.Int64).alias(name)
            for name in DECISIONS
        ],
        pl.col("degraded").sum().cast(pl.Int64).alias("degraded"),
        pl.col("score").mean().alias("mean_score"),
    )
    return counts.sort("day").with_columns(
        *[(pl.col(name) / pl.col("rows")).alias(f"{name}_rate") for name in DECISIONS],
        pl.col("review").alias("review_queue"),
        (pl.col("degraded") / pl.col("rows")).alias("degraded_rate"),
    )


def decision_totals(mix: pl.DataFrame) -> dict[str, Any]:
    """Return the period's decision counts and rates."""
    rows = int(mix["rows"].sum()) if mix.height else 0
    totals: dict[str, Any] = {"rows": rows}
    for name in DECISIONS:
        count = int(mix[name].sum()) if mix.height else 0
        totals[name] = count
        totals[f"{name}_rate"] = count / rows if rows else 0.0
    totals["review_queue_max_per_day"] = int(mix["review"].max()) if mix.height else 0
    return totals


def skew_summary(skew: pl.DataFrame | None) -> dict[str, Any] | None:
    """Return the compared rows and the columns whose values differ."""
    if skew is None:
        return None
    differing = skew.filter(pl.col("mismatches") > 0)
    return {
        "compared": int(skew["compared"].max()) if skew.height else 0,
        "columns_with_mismatches": differing["column"].to_list(),
        "max_mismatch_share": max_value(skew, "mismatch_share") or 0.0,
    }


def first_confirmed_day(
    days: list[date], flags: list[bool], *, confirm_days: int
) -> tuple[date, date] | None:
    """Return the first and the confirming day of a run of ``confirm_days`` flags."""
    run = 0
    for index, flagged in enumerate(flags):
        run = run + 1 if flagged else 0
        if run >= confirm_days:
            return days[index - confirm_days + 1], days[index]
    return None


def drift_alerts(
    drift: pl.DataFrame, settings: MonitorSettings
) -> list[dict[str, Any]]:
    """Return one alert per column whose PSI stayed at or above its threshold."""
    alerts = []
    for (column,), rows in drift.sort("day").group_by("column", maintain_order=True):
        if column in settings.drift_exclude:
            continue
        is_score = column == SCORE_NAME
        threshold = settings.score_psi_alert if is_score else settings.psi_alert
        judged = rows.filter(
            pl.col("full_window") & (pl.col("rows") >= settings.drift_min_rows)
        )
        flags = (judged["psi"] >= threshold).to_list()
        found = first_confirmed_day(
            judged["day"].to_list(), flags, confirm_days=settings.confirm_days
        )
        if found is None:
            continue
        value = judged.filter(pl.col("day") == found[1])["psi"][0]
        alerts.append(
            {
                "kind": "score_drift" if is_score else "feature_drift",
                "subject": column,
                "first_day": found[0].isoformat(),
                "raised_on": found[1].isoformat(),
                "value": float(value),
                "threshold": threshold,
            }
        )
    return alerts


def performance_alerts(
    performance: pl.DataFrame, settings: MonitorSettings
) -> list[dict[str, Any]]:
    """Return an alert when matured ROC AUC fell below the baseline's.

    A day counts when its window's ROC AUC passes both checks of the module
    docstring: the one-sided z-test at ``performance_alpha`` and the relative Gini
    drop of ``performance_gini_drop``. Days without a figure or a standard error
    do not count. The alert's ``threshold`` is the highest AUC that would have
    counted on the confirming day.
    """
    baseline = settings.baseline
    if baseline is None or performance.height == 0:
        return []
    if baseline.roc_auc_se is None:
        logger.warning(
            "performance alert off: the baseline has no ROC AUC standard error; "
            "set monitor.bootstrap_rounds to 2 or more"
        )
        return []
    tested = performance_test(performance, settings, baseline)
    found = first_confirmed_day(
        tested["day"].to_list(),
        tested["_flag"].to_list(),
        confirm_days=settings.confirm_days,
    )
    if found is None:
        return []
    confirming = tested.filter(pl.col("day") == found[1]).row(0, named=True)
    return [
        {
            "kind": "performance_drop",
            "subject": "roc_auc",
            "first_day": found[0].isoformat(),
            "raised_on": found[1].isoformat(),
            "value": float(confirming["roc_auc"]),
            "threshold": float(confirming["_highest_flagged"]),
            "baseline": baseline.roc_auc,
            "z": float(confirming["_z"]),
            "window_start": confirming["window_start"].isoformat(),
            "window_end": confirming["window_end"].isoformat(),
        }
    ]


def performance_test(
    performance: pl.DataFrame, settings: MonitorSettings, baseline: MaturedBaseline
) -> pl.DataFrame:
    """Add the z statistic, the highest AUC that counts, and the day's flag.

    Adds ``_z``, ``_highest_flagged`` and ``_flag`` (False where the day has no
    ROC AUC or no standard error).

    Raises:
        ValueError: The baseline has no standard error.
    """
    if baseline.roc_auc_se is None:
        raise ValueError(
            "the baseline has no ROC AUC standard error; build it with "
            "monitor.bootstrap_rounds of 2 or more"
        )
    critical = NormalDist().inv_cdf(settings.performance_alpha)
    gini_floor = 0.5 + (1.0 - settings.performance_gini_drop) * (baseline.roc_auc - 0.5)
    spread = (pl.col("roc_auc_se") ** 2 + baseline.roc_auc_se**2).sqrt()
    return performance.with_columns(
        _z=(pl.col("roc_auc") - baseline.roc_auc) / spread,
        _highest_flagged=pl.min_horizontal(
            baseline.roc_auc + critical * spread, pl.lit(gini_floor)
        ),
    ).with_columns(
        _flag=(
            (pl.col("_z") <= critical) & (pl.col("roc_auc") <= gini_floor)
        ).fill_null(False)
    )


def baseline_figure(settings: MonitorSettings, name: str) -> float | None:
    """Return one figure of the settings' baseline, or None without a baseline."""
    return None if settings.baseline is None else getattr(settings.baseline, name)


def data_quality(decisions: pl.DataFrame, period: tuple[date, date]) -> dict[str, Any]:
    """Return row counts, degraded decisions and days without decisions."""
    days = pl.date_range(period[0], period[1], "1d", eager=True)
    seen = set(decisions["day"].unique().to_list())
    return {
        "rows": decisions.height,
        "degraded": int(decisions["degraded"].sum()),
        "days": days.len(),
        "days_without_decisions": [d.isoformat() for d in days if d not in seen],
        "model_versions": sorted(decisions["model_version"].unique().to_list()),
    }


def run_monitor(
    decisions: pl.DataFrame,
    label_events: pl.DataFrame,
    profile: ReferenceProfile,
    settings: MonitorSettings,
    *,
    feature_columns: list[str],
    offline_features: pl.DataFrame | None = None,
    period: tuple[date, date] | None = None,
) -> MonitorReport:
    """Monitor the decisions of a period.

    Args:
        decisions: Decision frame (see ``cardfraud.monitoring.decisions``).
        label_events: Fraud reports; only those known on each day are used.
        profile: The model's reference profile.
        settings: Thresholds and sizes.
        feature_columns: The model's features.
        offline_features: Feature table for the skew check; None skips it.
        period: First and last event day; default the decisions' own span.

    Raises:
        ValueError: There are no decisions in the period, or the profile lacks a
            feature of the model.
    """
    missing = [name for name in feature_columns if name not in profile.columns]
    if missing:
        raise ValueError(
            f"reference profile lacks feature(s) {missing}; it belongs to another "
            "model: rebuild it with profile_for_model"
        )
    if period is None and decisions.height:
        period = (decisions["day"].min(), decisions["day"].max())
    if period is None:
        raise ValueError("no decisions to monitor; widen --since or run the replay")
    decisions = decisions.filter(pl.col("day").is_between(*period))
    if decisions.height == 0:
        raise ValueError(
            f"no decisions between {period[0]} and {period[1]}; widen the period"
        )
    drift = daily_drift(
        decisions,
        profile,
        columns=[*feature_columns, SCORE_NAME],
        window_days=settings.drift_window_days,
    )
    days = [
        period[0] + timedelta(days=i) for i in range((period[1] - period[0]).days + 1)
    ]
    performance = matured_performance(
        decisions, label_events, settings.performance, days=days
    )
    skew = None
    if offline_features is not None:
        skew, absent = feature_skew(
            decisions,
            offline_features,
            feature_columns=feature_columns,
            sample_size=settings.skew_sample,
            seed=settings.seed,
        )
        if absent:
            logger.warning("%d sampled decision(s) have no offline features", absent)
    report = MonitorReport(
        period=period,
        drift=drift,
        decision_mix=decision_mix(decisions),
        performance=performance,
        skew=skew,
        alerts=drift_alerts(drift, settings)
        + performance_alerts(performance, settings),
        data_quality=data_quality(decisions, period),
        baseline_average_precision=baseline_figure(settings, "average_precision"),
        baseline_roc_auc=baseline_figure(settings, "roc_auc"),
    )
    for alert in report.alerts:
        logger.warning(
            "monitor alert %s on %s from %s (value %.4f, threshold %.4f)",
            alert["kind"],
            alert["subject"],
            alert["first_day"],
            alert["value"],
            alert["threshold"],
        )
    return report
