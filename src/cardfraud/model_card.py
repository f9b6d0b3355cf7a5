"""Markdown model card and promotion report of a registered model version.

Both are built from the files the pipeline already wrote (``model_meta.json``,
``train.json``, ``evaluate.json``, the data manifest and the promotion decision), so
they contain no wall-clock values and change only when those files change.
"""

from __future__ import annotations

from typing import Any

ROW_METRICS: dict[str, str] = {
    "average_precision": "Average precision (AUC-PR)",
    "roc_auc": "ROC AUC",
    "recall_at_fpr": "Recall at the target false-positive rate",
    "precision_at_review": "Precision at the review threshold",
    "recall_at_review": "Recall at the review threshold",
    "precision_at_decline": "Precision at the decline threshold",
    "recall_at_decline": "Recall at the decline threshold",
    "alert_rate": "Alert rate (review or decline)",
    "expected_cost_per_transaction": "Expected cost per transaction (minor units)",
    "cost_without_model_per_transaction": "Cost without a model (minor units)",
    "brier_score": "Brier score, calibrated",
    "brier_score_uncalibrated": "Brier score, uncalibrated",
    "ece": "Expected calibration error, calibrated",
    "ece_uncalibrated": "Expected calibration error, uncalibrated",
}


def format_interval(entry: dict[str, float]) -> str:
    """Return ``value [low, high]`` with 4 decimals, or the value alone."""
    text = f"{entry['value']:.4f}"
    if "ci_low" in entry:
        text += f" [{entry['ci_low']:.4f}, {entry['ci_high']:.4f}]"
    return text


def metric_rows(evaluation: dict[str, Any]) -> list[str]:
    """Return the table rows of the headline test metrics."""
    rows = ["| Metric | Value [95% CI] |", "|---|---|"]
    for key, label in ROW_METRICS.items():
        if key in evaluation:
            rows.append(f"| {label} | {format_interval(evaluation[key])} |")
    if "card_precision_at_k" in evaluation:
        k = evaluation.get("card_precision_k")
        rows.append(
            f"| Card Precision@{k} per day | "
            f"{format_interval(evaluation['card_precision_at_k'])} |"
        )
        if "card_precision_at_k_max" in evaluation:
            rows.append(
                f"| Card Precision@{k} of a perfect ranking | "
                f"{evaluation['card_precision_at_k_max']:.4f} |"
            )
    return rows


def scenario_rows(evaluation: dict[str, Any]) -> list[str]:
    """Return the table rows of recall and average precision per fraud scenario."""
    scenarios = evaluation.get("scenario", {})
    if not scenarios:
        return ["The test window names no fraud scenario."]
    rows = [
        "| Scenario | Recall at review [95% CI] | Average precision [95% CI] |",
        "|---|---|---|",
    ]
    for name, entry in sorted(scenarios.items()):
        rows.append(
            f"| {name} | {format_interval(entry['recall_at_review'])} | "
            f"{format_interval(entry['average_precision'])} |"
        )
    return rows


def comparison_rows(training: dict[str, Any], evaluation: dict[str, Any]) -> list[str]:
    """Return validation and test average precision of every model.

    Only the candidate and the references are scored on the test window.
    """
    candidate = training.get("candidate")
    test = {name: entry for name, entry in evaluation.get("reference", {}).items()}
    if candidate is not None and "average_precision" in evaluation:
        test[candidate] = evaluation
    rows = [
        "| Model | Mean validation AP (folds) | Test AP [95% CI] |",
        "|---|---|---|",
    ]
    validation = training.get("validation_average_precision", {})
    for name in sorted(set(validation) | set(test)):
        label = f"{name} (candidate)" if name == candidate else name
        value = validation.get(name)
        shown = "" if value is None else f"{value:.4f}"
        entry = test.get(name)
        tested = "" if entry is None else format_interval(entry["average_precision"])
        rows.append(f"| {label} | {shown} | {tested} |")
    return rows


def build_model_card(
    *,
    registration: dict[str, Any],
    meta: dict[str, Any],
    training: dict[str, Any],
    evaluation: dict[str, Any],
    manifest: dict[str, Any] | None,
) -> str:
    """Return the markdown model card of one registered version.

    Args:
        registration: Content of ``registration.json`` (name, version, alias, reason).
        meta: Content of ``model_meta.json``.
        training: Content of ``train.json``.
        evaluation: Content of ``evaluate.json``.
        manifest: The raw data manifest, or None when the workspace has none.
    """
    windows = meta["windows"]
    params = meta["params"]
    thresholds = meta["thresholds"]
    cost = meta["cost"]
    data_lines = [
        f"- Feature table SHA-256: `{meta['data_fingerprint']}`",
        f"- Features: {len(meta['feature_columns'])} point-in-time features "
        "(see `feature_columns.json` and `lineage.json` in the MLflow run)",
    ]
    if manifest is not None:
        data_lines += [
            f"- Raw data: {manifest.get('rows')} transactions, "
            f"{manifest.get('frauds')} frauds, from {manifest.get('package', '?')} "
            f"{manifest.get('package_version', '')}",
            f"- Generator configuration hash: `{manifest.get('config_hash', 'n/a')}`",
        ]
    lines = [
        f"# Model card: {registration['model_name']} version {registration['version']}",
        "",
        f"Alias: **{registration['alias']}** ({registration['reason']}).",
        "",
        "## Intended use",
        "",
        "Scores card payments in real time for the fraud-operations team. The score is "
        "a calibrated fraud probability; payments at or above the decline threshold "
        "are declined, those at or above the review threshold go to an analyst, the "
        "rest are approved. Every decision comes with its top SHAP reasons.",
        "",
        "Out of scope: credit decisions, anti-money-laundering monitoring, and any "
        "population other than the one the training data describes.",
        "",
        "## Data",
        "",
        *data_lines,
        f"- Training rows: {windows['fit']['start'][:10]} to "
        f"{windows['fit']['end'][:10]}, labelled with the fraud reports known at "
        f"the end of that window; legitimate only when older than "
        f"{windows['maturity_days']} days without a report "
        f"({training.get('fit_rows')} rows after down-sampling, "
        f"{training.get('fit_frauds')} frauds)",
        f"- Calibration and threshold window: {windows['calibration']['start'][:10]} "
        f"to {windows['calibration']['end'][:10]}",
        f"- Test window: {windows['test']['start'][:10]} to "
        f"{windows['test']['end'][:10]}, scored on ground truth "
        f"({evaluation.get('rows')} rows, {evaluation.get('frauds')} frauds)",
        "",
        "## Model",
        "",
        f"- Family: {meta['flavour']} {meta['library_version']}, tuned with Optuna "
        f"({params['trials']} trials per family over {params['folds']} prequential "
        "folds, seeded TPE sampler, median pruner)",
        f"- Hyperparameters: `{meta['hyperparameters']}`",
        f"- Class imbalance: {params['negative_sample_rate']:.0%} of legitimate rows "
        f"kept, positive-class weight rule `{params['imbalance']}`",
        f"- Calibration: {meta['calibration']['method']}, fitted on the calibration "
        "window",
        "",
        *comparison_rows(training, evaluation),
        "",
        "## Test metrics",
        "",
        "Intervals are 95% percentile bootstrap intervals over transactions "
        "(over days for Card Precision@k).",
        "",
        *metric_rows(evaluation),
        "",
        *scenario_rows(evaluation),
        "",
        "## Decision thresholds",
        "",
        f"- Review at probability >= {thresholds['review']:.6f} "
        f"(rule `{params['threshold_rule']}`)",
        f"- Decline at probability >= {thresholds['decline']:.6f} "
        f"(precision target {params['decline_precision']})",
        f"- Cost matrix: false alarm {cost['false_alarm_minor']}, caught fraud "
        f"{cost['caught_fraud_minor']} (minor units), missed fraud "
        f"{cost['missed_fraud_share']:.0%} of its amount",
        "",
        "## Limitations",
        "",
        "- Trained and tested on synthetic payments; figures on real data will differ.",
        (
            "- The model is refitted on the whole training period with the labels "
            "known at the cutoff; its calibrator comes from the fold model's scores on "
            f"the {params['fold_days']}-day window it calibrates on, which assumes the "
            "refit keeps the fold model's margin scale."
            if params.get("refit")
            else f"- The model is not trained on the {params['fold_days']} days that "
            f"calibrate it, nor on the {windows['maturity_days']} days before the "
            "cutoff, whose labels are not mature yet."
        ),
        "- Fraud reports that arrive after the end of the training rows count as "
        "legitimate in training, as they would in production.",
        "- Card Precision@k leaves out cards already known to be compromised at the "
        "test start and cards found on earlier test days; every other metric keeps "
        "their transactions.",
        "- Thresholds and calibration come from one window before the test; a change "
        "in fraud prevalence moves both.",
        "",
    ]
    return "\n".join(lines)


def build_promotion_report(registration: dict[str, Any]) -> str:
    """Return the markdown promotion report of one registration."""
    champion = registration.get("previous_champion_average_precision")
    lines = [
        f"# Promotion of {registration['model_name']} version "
        f"{registration['version']}",
        "",
        f"Decision: **{registration['alias']}**.",
        "",
        f"Reason: {registration['reason']}.",
        "",
        "| | Average precision on the candidate's test window |",
        "|---|---|",
        f"| Candidate | {registration['candidate_average_precision']:.6f} |",
        "| Current champion (version "
        f"{registration.get('previous_champion_version') or 'none'}) | "
        f"{'n/a' if champion is None else f'{champion:.6f}'} |",
        "",
        f"Required gain: more than {registration['promotion_margin']:.6f}.",
        "",
    ]
    return "\n".join(lines)
