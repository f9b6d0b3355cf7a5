"""Monitor settings from the ``monitor`` section of params.yaml."""

from __future__ import annotations

from cardfraud.monitoring.monitor import MonitorSettings
from cardfraud.monitoring.performance import MaturedBaseline, PerformanceSettings
from cardfraud.params import MonitorParams


def monitor_settings(
    params: MonitorParams,
    *,
    review_threshold: float,
    alerts_per_10000: float,
    baseline: MaturedBaseline | None,
) -> MonitorSettings:
    """Build the settings of one monitor run.

    Args:
        params: The ``monitor`` section.
        review_threshold: The model's review threshold, the operating point.
        alerts_per_10000: Card Precision@k budget of the evaluate section.
        baseline: The model's matured performance on its test window; None
            disables the performance alert.
    """
    return MonitorSettings(
        psi_alert=params.psi_alert,
        score_psi_alert=params.score_psi_alert,
        drift_window_days=params.drift_window_days,
        drift_min_rows=params.drift_min_rows,
        drift_exclude=tuple(params.drift_exclude),
        confirm_days=params.confirm_days,
        performance=PerformanceSettings(
            maturity_days=params.maturity_days,
            window_days=params.performance_window_days,
            review_threshold=review_threshold,
            alerts_per_10000=alerts_per_10000,
            bootstrap_rounds=params.bootstrap_rounds,
            min_frauds=params.min_frauds,
            seed=params.seed,
        ),
        performance_alpha=params.performance_alpha,
        performance_gini_drop=params.performance_gini_drop,
        baseline=baseline,
        skew_sample=params.skew_sample,
        seed=params.seed,
    )
