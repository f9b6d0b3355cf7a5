"""Delay-aware model training: tuning, calibration, operating thresholds, the model.

The feature table is never split at random. :mod:`cardfraud.splits` places the test
window after the training cutoff and labels training rows with what was known at the
time. :mod:`cardfraud.tuning` tunes each tree-model family on prequential folds inside
the training period and scores the rule baseline and logistic regression on the same
folds. The family with the best mean validation average precision is the candidate.

The candidate is the newest fold's model: the best family, fitted with its best
hyperparameters on the rows before the newest validation window. Its scores on that
window, which it never saw and whose labels are mature at the cutoff, fit the
calibrator and set the review and decline thresholds, so both describe this very
model. The newest ``maturity_days`` before the cutoff are not trained on, because a
model fitted on them could not be validated before the cutoff. The test window is not
used here except to count its rows.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import polars as pl
import xgboost as xgb
from sklearn.metrics import average_precision_score, brier_score_loss

from cardfraud.calibration import Calibrator, fit_calibrator
from cardfraud.params import CostParams, TrainParams
from cardfraud.splits import (
    TARGET_COLUMN,
    Fold,
    TimeWindow,
    WindowPlan,
    delay_aware_rows,
    label_counts,
    plan_windows,
    select_window,
)
from cardfraud.tuning import (
    MODEL_THREADS,
    FoldData,
    StudyResult,
    fit_family,
    fit_logistic,
    positive_weight,
    raw_scores,
    reference_fold_scores,
    tune_family,
)

logger = logging.getLogger(__name__)

__all__ = [
    "MODEL_THREADS",
    "TimeWindow",
    "positive_weight",
    "select_window",
]

MODEL_FILES: dict[str, str] = {"xgboost": "model.ubj", "lightgbm": "model.txt"}
META_FILE = "model_meta.json"
TUNING_FILE = "tuning.json"
REFERENCES_FILE = "references.json"
LABEL_COLUMN = "is_fraud"
TIME_COLUMN = "timestamp"
AMOUNT_COLUMN = "amount_minor"
KEY_COLUMNS = ("transaction_id", "card_id", "merchant_id", TIME_COLUMN)
METRIC_DECIMALS = 6
SAMPLE_DRAW_COLUMN = "_sample_draw"


class TrainingError(ValueError):
    """The feature table or its split cannot train a model."""


def load_feature_columns(spec_path: Path) -> list[str]:
    """Read the model's input columns from ``feature_spec.json``.

    Raises:
        TrainingError: The file lacks a non-empty ``feature_columns`` list of strings.
    """
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    columns = spec.get("feature_columns") if isinstance(spec, dict) else None
    if not columns or not all(isinstance(name, str) for name in columns):
        raise TrainingError(
            f"{spec_path}: 'feature_columns' is missing or not a list of column names; "
            "rerun the features stage"
        )
    return list(columns)


def read_feature_table(path: Path, *, feature_columns: list[str]) -> pl.DataFrame:
    """Read the feature table and check the columns that training relies on.

    Args:
        path: Parquet file with one row per transaction.
        feature_columns: Numeric model inputs that must be present, finite and non-null.

    Raises:
        TrainingError: A column is missing or has the wrong dtype, nulls or non-finite
            values. The message names the column and the fix.
    """
    frame = pl.read_parquet(path)
    check_feature_table(frame, feature_columns=feature_columns)
    return frame


def check_feature_table(frame: pl.DataFrame, *, feature_columns: list[str]) -> None:
    """Raise :class:`TrainingError` when ``frame`` breaks the feature table contract."""
    required = [*KEY_COLUMNS, LABEL_COLUMN, *feature_columns]
    missing = [name for name in required if name not in frame.columns]
    if missing:
        raise TrainingError(
            f"feature table lacks column(s) {missing}; rebuild the features or fix "
            "feature_spec.json"
        )
    time_dtype = frame.schema[TIME_COLUMN]
    if not isinstance(time_dtype, pl.Datetime) or time_dtype.time_zone != "UTC":
        raise TrainingError(
            f"column 'timestamp' has dtype {time_dtype}, expected a UTC-aware "
            "Datetime; convert it once with an explicit time zone"
        )
    label_dtype = frame.schema[LABEL_COLUMN]
    label_nulls = frame[LABEL_COLUMN].null_count()
    if label_dtype != pl.Boolean or label_nulls:
        raise TrainingError(
            f"column 'is_fraud' must be Boolean without nulls, got {label_dtype} "
            f"with {label_nulls} nulls; fix the labels in the features stage"
        )
    for name in feature_columns:
        check_feature_column(frame[name])


def check_feature_column(column: pl.Series) -> None:
    """Raise :class:`TrainingError` unless ``column`` is numeric, complete, finite."""
    if not column.dtype.is_numeric():
        raise TrainingError(
            f"feature {column.name!r} has dtype {column.dtype}, expected a numeric "
            "dtype; encode it as a number in the features stage"
        )
    nulls = column.null_count()
    if nulls:
        raise TrainingError(
            f"feature {column.name!r} has {nulls} null value(s); the feature table "
            "must be complete, so fill them in the features stage"
        )
    if column.dtype.is_float():
        non_finite = int((~column.is_finite()).sum())
        if non_finite:
            raise TrainingError(
                f"feature {column.name!r} has {non_finite} NaN or infinite value(s); "
                "replace them in the features stage"
            )


def file_sha256(path: Path) -> str:
    """Return the hex SHA-256 digest of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_amounts(frame: pl.DataFrame) -> None:
    """Raise :class:`TrainingError` unless ``amount_minor`` is complete integers.

    The cost matrix needs each transaction's amount; :func:`join_amounts` adds it from
    the raw data.
    """
    if AMOUNT_COLUMN not in frame.columns:
        raise TrainingError(
            "column 'amount_minor' is missing; the cost matrix needs each "
            "transaction's amount, so join it from the raw data (join_amounts)"
        )
    dtype = frame.schema[AMOUNT_COLUMN]
    nulls = frame[AMOUNT_COLUMN].null_count()
    if not dtype.is_integer() or nulls:
        raise TrainingError(
            f"column 'amount_minor' must be integer minor units without nulls, got "
            f"{dtype} with {nulls} nulls; fix the raw data"
        )


def join_amounts(frame: pl.DataFrame, raw: pl.DataFrame) -> pl.DataFrame:
    """Return ``frame`` with ``amount_minor`` from ``raw``, joined on transaction_id.

    A frame that already has ``amount_minor`` is returned unchanged.

    Raises:
        TrainingError: A transaction of ``frame`` is missing from ``raw``.
    """
    if AMOUNT_COLUMN in frame.columns:
        return frame
    amounts = raw.select("transaction_id", AMOUNT_COLUMN)
    joined = frame.join(amounts, on="transaction_id", how="left", maintain_order="left")
    missing = joined[AMOUNT_COLUMN].null_count()
    if missing:
        raise TrainingError(
            f"{missing} transaction(s) of the feature table are not in the raw data; "
            "rebuild the features from the current raw data"
        )
    return joined


def feature_matrix(frame: pl.DataFrame, feature_columns: list[str]) -> np.ndarray:
    """Return the features as a float64 array of shape (rows, len(feature_columns))."""
    matrix = frame.select(feature_columns).cast(pl.Float64).to_numpy()
    return np.ascontiguousarray(matrix, dtype=np.float64)


def label_vector(frame: pl.DataFrame, column: str = LABEL_COLUMN) -> np.ndarray:
    """Return a 0/1 label column (``is_fraud`` by default) as an int8 array."""
    return frame[column].cast(pl.Int8).to_numpy()


def add_sample_draws(frame: pl.DataFrame, *, seed: int) -> pl.DataFrame:
    """Add one seeded uniform draw per row that decides its down-sampling.

    Drawing once for the whole table makes every training set keep the same
    legitimate rows wherever their windows overlap.
    """
    draws = np.random.default_rng(seed).random(frame.height)
    return frame.with_columns(pl.Series(SAMPLE_DRAW_COLUMN, draws))


def sample_training_rows(rows: pl.DataFrame, *, rate: float) -> pl.DataFrame:
    """Keep every delay-aware fraud and the legitimate rows whose draw is below rate."""
    return rows.filter(
        (pl.col(TARGET_COLUMN) == 1) | (pl.col(SAMPLE_DRAW_COLUMN) < rate)
    )


def check_classes(rows: pl.DataFrame, *, name: str, column: str) -> None:
    """Raise :class:`TrainingError` unless ``rows[column]`` contains both classes."""
    frauds = int(rows[column].cast(pl.Int64).sum())
    if frauds == 0 or frauds == rows.height:
        raise TrainingError(
            f"the {name} has {frauds} frauds in {rows.height} rows; it needs both "
            "classes, so generate more data, move train.cutoff or widen "
            "train.fold_days"
        )


def build_fold_data(
    frame: pl.DataFrame,
    fold: Fold,
    *,
    plan: WindowPlan,
    feature_columns: list[str],
    sample_rate: float,
) -> tuple[FoldData, dict[str, int]]:
    """Return the model inputs of one fold and its row counts.

    The training rows are labelled as known at the validation window's start and
    down-sampled; the validation rows are labelled as known at the main cutoff.
    """
    train = delay_aware_rows(
        frame, fold.train, known_at=fold.validation.start, maturity=plan.maturity
    )
    sampled = sample_training_rows(train, rate=sample_rate)
    validation = delay_aware_rows(
        frame, fold.validation, known_at=plan.cutoff, maturity=plan.maturity
    )
    check_classes(
        sampled, name=f"training set of fold {fold.index}", column=TARGET_COLUMN
    )
    check_classes(
        validation, name=f"validation window of fold {fold.index}", column=TARGET_COLUMN
    )
    data = FoldData(
        index=fold.index,
        train_matrix=feature_matrix(sampled, feature_columns),
        train_labels=label_vector(sampled, TARGET_COLUMN),
        validation_matrix=feature_matrix(validation, feature_columns),
        validation_labels=label_vector(validation, TARGET_COLUMN),
    )
    period = select_window(frame, fold.train)
    counts = {
        "train_rows": train.height,
        "train_left_out_rows": period.height - train.height,
        "train_unlabelled_frauds": label_counts(train)["unlabelled_frauds"],
        "train_sampled_rows": sampled.height,
        "train_frauds": int(data.train_labels.sum()),
        "validation_rows": validation.height,
        "validation_frauds": int(data.validation_labels.sum()),
    }
    return data, counts


def choose_candidate(studies: dict[str, StudyResult]) -> StudyResult:
    """Return the study with the highest mean validation AP; ties go to the first."""
    best: StudyResult | None = None
    for study in studies.values():
        if best is None or study.best_value > best.best_value:
            best = study
    if best is None:
        raise TrainingError("train.models is empty; name at least one model family")
    return best


def choose_thresholds(
    scores: np.ndarray,
    labels: np.ndarray,
    *,
    review_alert_rate: float,
    decline_precision: float,
) -> dict[str, float]:
    """Choose the review and decline score thresholds on out-of-time rows.

    A transaction is declined when its score is at least ``decline``, sent to review
    when it is at least ``review``, and approved otherwise.

    Args:
        scores: Fraud scores of the threshold window, shape (rows,).
        labels: 0/1 labels of the same rows.
        review_alert_rate: Share of rows to send to review or decline; ties at the
            threshold can raise the realised share above it.
        decline_precision: Fraud precision the decline threshold must reach.

    Returns:
        ``{"review": float, "decline": float}`` with ``decline >= review``. The decline
        threshold is the lowest score whose precision reaches the target, so recall at
        that precision is highest. It is 1.0 when no score reaches the target.
    """
    order = np.argsort(-scores, kind="stable")
    ordered = scores[order].astype(np.float64)
    alerts = max(1, math.ceil(review_alert_rate * scores.size))
    review = float(ordered[alerts - 1])
    decline = decline_threshold(scores, labels, decline_precision=decline_precision)
    return {"review": review, "decline": max(decline, review)}


def decline_threshold(
    scores: np.ndarray, labels: np.ndarray, *, decline_precision: float
) -> float:
    """Return the lowest score whose precision reaches ``decline_precision``.

    Recall at that precision is then highest. Returns 1.0 when no score reaches it.
    """
    order = np.argsort(-scores, kind="stable")
    ordered = scores[order].astype(np.float64)
    true_positives = np.cumsum(labels[order])
    precision = true_positives / np.arange(1, scores.size + 1)
    # Only the last row of a run of equal scores is a threshold that can be applied.
    last_of_value = np.append(ordered[1:] != ordered[:-1], True)
    reaching = np.flatnonzero(last_of_value & (precision >= decline_precision))
    if reaching.size == 0:
        logger.warning(
            "no score reaches decline precision %.3f on %d rows; decline set to 1.0",
            decline_precision,
            scores.size,
        )
        return 1.0
    return float(ordered[reaching[-1]])


def review_threshold_by_cost(
    scores: np.ndarray,
    labels: np.ndarray,
    amounts: np.ndarray,
    *,
    cost: CostParams,
) -> float:
    """Return the review threshold with the lowest expected cost on the given rows.

    Alerting a row costs ``false_alarm_minor`` when it is legitimate and
    ``caught_fraud_minor`` when it is fraud; a fraud left unalerted costs
    ``missed_fraud_share`` of its amount. Only thresholds that can be applied count:
    equal scores are alerted together. Of equal costs, the higher threshold wins.

    Args:
        scores: Calibrated fraud probabilities, shape (rows,).
        labels: 0/1 labels, shape (rows,).
        amounts: Amounts in minor units, shape (rows,).

    Returns:
        The threshold; 1.0 when alerting nothing costs least.
    """
    order = np.argsort(-scores, kind="stable")
    ordered = scores[order].astype(np.float64)
    frauds = labels[order].astype(np.float64)
    losses = frauds * amounts[order] * cost.missed_fraud_share
    alert_costs = np.where(frauds == 1, cost.caught_fraud_minor, cost.false_alarm_minor)
    # Cost of alerting the top i + 1 rows: their alert costs plus every loss below.
    totals = np.cumsum(alert_costs) + (losses.sum() - np.cumsum(losses))
    last_of_value = np.append(ordered[1:] != ordered[:-1], True)
    candidates = np.flatnonzero(last_of_value)
    if candidates.size == 0:
        return 1.0
    best = candidates[np.argmin(totals[candidates])]
    if totals[best] >= losses.sum():
        return 1.0
    return float(ordered[best])


def operating_thresholds(
    scores: np.ndarray,
    labels: np.ndarray,
    amounts: np.ndarray,
    *,
    params: TrainParams,
) -> dict[str, float]:
    """Choose the review and decline thresholds on calibrated validation scores.

    The review threshold minimises the expected cost (``threshold_rule: cost``) or
    alerts ``review_alert_rate`` of the rows (``alert_rate``). The decline threshold
    is the lowest score whose precision reaches ``decline_precision``, never below
    the review threshold.
    """
    if params.threshold_rule == "alert_rate":
        return choose_thresholds(
            scores,
            labels,
            review_alert_rate=params.review_alert_rate,
            decline_precision=params.decline_precision,
        )
    review = review_threshold_by_cost(scores, labels, amounts, cost=params.cost)
    decline = decline_threshold(
        scores, labels, decline_precision=params.decline_precision
    )
    return {"review": review, "decline": max(decline, review)}


def expected_cost(
    labels: np.ndarray,
    alerted: np.ndarray,
    amounts: np.ndarray,
    *,
    cost: CostParams,
) -> float:
    """Return the total cost in minor units of alerting the rows in ``alerted``."""
    fraud = labels == 1
    return float(
        cost.false_alarm_minor * np.sum(alerted & ~fraud)
        + cost.caught_fraud_minor * np.sum(alerted & fraud)
        + cost.missed_fraud_share * np.sum(amounts[fraud & ~alerted])
    )


@dataclass(frozen=True)
class TrainedModel:
    """A fitted booster with the metadata that scoring it needs.

    Scores are calibrated fraud probabilities when ``meta`` contains a calibrator;
    margins and SHAP contributions explain the booster's raw log-odds, which the
    calibrator maps to the probability by an increasing function.

    Attributes:
        flavour: ``xgboost`` or ``lightgbm``.
        booster: The library's native booster.
        feature_columns: Input columns in the order the booster expects.
        thresholds: ``{"review": float, "decline": float}`` probability thresholds.
        meta: The full content of ``model_meta.json``.
    """

    flavour: str
    booster: Any
    feature_columns: list[str]
    thresholds: dict[str, float]
    meta: dict[str, Any]

    def as_matrix(self, features: pl.DataFrame | np.ndarray) -> np.ndarray:
        """Return a float64 matrix with columns in ``feature_columns`` order.

        Raises:
            TrainingError: A column is missing, or an array has the wrong shape.
        """
        if isinstance(features, pl.DataFrame):
            missing = [c for c in self.feature_columns if c not in features.columns]
            if missing:
                raise TrainingError(
                    f"input lacks feature column(s) {missing}; pass every column of "
                    "feature_columns"
                )
            return feature_matrix(features, self.feature_columns)
        matrix = np.asarray(features, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != len(self.feature_columns):
            raise TrainingError(
                f"input array has shape {matrix.shape}, expected (rows, "
                f"{len(self.feature_columns)}) in feature_columns order"
            )
        return matrix

    @cached_property
    def calibrator(self) -> Calibrator | None:
        """The calibrator stored in ``meta``, or None for an uncalibrated model."""
        stored = self.meta.get("calibration")
        return None if stored is None else Calibrator.from_json(stored)

    def predict_proba(self, features: pl.DataFrame | np.ndarray) -> np.ndarray:
        """Return the calibrated fraud probability of each row, shape (rows,).

        An uncalibrated model returns its raw scores.
        """
        if self.calibrator is None:
            return self.predict_raw(features)
        return self.calibrator.apply(self.predict_margin(features))

    def predict_raw(self, features: pl.DataFrame | np.ndarray) -> np.ndarray:
        """Return the booster's uncalibrated score of each row, shape (rows,)."""
        return raw_scores(self.booster, self.as_matrix(features))

    def predict_margin(self, features: pl.DataFrame | np.ndarray) -> np.ndarray:
        """Return the raw log-odds score of each row, shape (rows,)."""
        matrix = self.as_matrix(features)
        if self.flavour == "xgboost":
            return np.asarray(
                self.booster.inplace_predict(matrix, predict_type="margin")
            )
        return np.asarray(self.booster.predict(matrix, raw_score=True))

    def contributions(
        self, features: pl.DataFrame | np.ndarray
    ) -> tuple[float, np.ndarray]:
        """Return SHAP feature contributions in log-odds from the library's tree SHAP.

        Returns:
            ``(base_value, contributions)``: the model's expected margin, taken from
            the model (XGBoost estimates its intercept from the data), and an array of
            shape (rows, len(feature_columns)). The base value plus a row's
            contributions equals that row's margin.
        """
        matrix = self.as_matrix(features)
        if self.flavour == "xgboost":
            data = xgb.DMatrix(matrix, nthread=MODEL_THREADS)
            full = self.booster.predict(data, pred_contribs=True)
        else:
            full = self.booster.predict(matrix, pred_contrib=True)
        full = np.asarray(full, dtype=np.float64)
        base_value = float(full[0, -1]) if full.shape[0] else self.expected_margin()
        return base_value, full[:, :-1]

    def expected_margin(self) -> float:
        """Return the base value of the contributions, from one all-zero row."""
        zeros = np.zeros((1, len(self.feature_columns)))
        return self.contributions(zeros)[0]

    def save(self, folder: Path) -> Path:
        """Write the native model file and ``model_meta.json`` into ``folder``.

        Returns:
            Path of the native model file.
        """
        folder.mkdir(parents=True, exist_ok=True)
        model_path = folder / MODEL_FILES[self.flavour]
        self.booster.save_model(str(model_path))
        meta_text = json.dumps(self.meta, indent=2, sort_keys=True) + "\n"
        (folder / META_FILE).write_text(meta_text, encoding="utf-8")
        return model_path


def load_booster(model_path: Path, *, flavour: str) -> xgb.Booster | lgb.Booster:
    """Load a native XGBoost or LightGBM model file."""
    if flavour == "xgboost":
        booster = xgb.Booster(model_file=str(model_path))
        booster.set_param({"nthread": MODEL_THREADS})
        return booster
    if flavour == "lightgbm":
        return lgb.Booster(model_file=str(model_path))
    raise TrainingError(
        f"unknown model flavour {flavour!r}; expected one of {MODEL_FILES}"
    )


def model_from_meta(booster: Any, meta: dict[str, Any]) -> TrainedModel:
    """Wrap a loaded booster and its ``model_meta.json`` content."""
    return TrainedModel(
        flavour=meta["flavour"],
        booster=booster,
        feature_columns=list(meta["feature_columns"]),
        thresholds={key: float(value) for key, value in meta["thresholds"].items()},
        meta=meta,
    )


def load_model(folder: Path) -> TrainedModel:
    """Load the model that :meth:`TrainedModel.save` wrote into ``folder``.

    Raises:
        FileNotFoundError: ``model_meta.json`` or the model file is missing; run the
            train stage first.
    """
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path} not found; run the train stage first")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    model_path = folder / MODEL_FILES[meta["flavour"]]
    if not model_path.is_file():
        raise FileNotFoundError(f"{model_path} not found; run the train stage first")
    return model_from_meta(load_booster(model_path, flavour=meta["flavour"]), meta)


@dataclass(frozen=True)
class TrainingResult:
    """The trained model, the training metrics and the records saved beside them.

    Attributes:
        model: The calibrated candidate with its thresholds.
        metrics: Content of ``train.json``.
        tuning: Every Optuna trial of every family, for ``tuning.json``.
        references: The reference models, for ``references.json``.
    """

    model: TrainedModel
    metrics: dict[str, Any]
    tuning: dict[str, Any]
    references: dict[str, Any]


@dataclass(frozen=True)
class CalibrationFit:
    """The calibrator and thresholds fitted on the newest fold's validation window."""

    calibrator: Calibrator
    thresholds: dict[str, float]
    metrics: dict[str, float]


def train_model(
    frame: pl.DataFrame,
    *,
    feature_columns: list[str],
    params: TrainParams,
    data_fingerprint: str,
) -> TrainingResult:
    """Tune on prequential folds, then fit and calibrate the candidate.

    The candidate is the best family fitted with its best hyperparameters on the
    newest fold's training rows. Its scores on that fold's validation window fit the
    calibrator and choose the thresholds. With ``params.refit`` the candidate is then
    refitted on the whole training period and keeps that calibrator and those
    thresholds. The logistic-regression reference is fitted on the fold's rows.

    Args:
        frame: The feature table with ``amount_minor``; see
            :func:`check_feature_table` and :func:`check_amounts`.
        feature_columns: Model inputs, in the order the model receives them.
        params: Training parameters.
        data_fingerprint: SHA-256 of the feature table file, stored in the metadata.

    Raises:
        TrainingError: The table, a window or a class is missing.
        cardfraud.splits.SplitError: A window does not fit the data.
    """
    check_feature_table(frame, feature_columns=feature_columns)
    check_amounts(frame)
    plan = plan_windows(
        frame,
        cutoff=None if params.cutoff is None else cutoff_instant(params),
        test_days=params.test_days,
        maturity_days=params.maturity_days,
        burn_in_days=params.burn_in_days,
        folds=params.folds,
        fold_days=params.fold_days,
    )
    frame = add_sample_draws(frame, seed=params.seed)
    fold_inputs = [
        build_fold_data(
            frame,
            fold,
            plan=plan,
            feature_columns=feature_columns,
            sample_rate=params.negative_sample_rate,
        )
        for fold in plan.folds
    ]
    folds = [data for data, _ in fold_inputs]

    studies = {
        family: tune_family(
            family,
            folds,
            trials=params.trials,
            max_estimators=params.max_estimators,
            imbalance=params.imbalance,
            seed=params.seed,
        )
        for family in params.models
    }
    reference_scores = reference_fold_scores(
        folds,
        rules=params.baseline_rules,
        feature_columns=feature_columns,
        imbalance=params.imbalance,
    )
    best = choose_candidate(studies)
    newest = folds[0]
    booster = fit_family(
        best.family,
        best.best_params,
        newest.train_matrix,
        newest.train_labels,
        imbalance=params.imbalance,
        seed=params.seed,
    )
    calibration = calibrate_on_validation(
        booster, newest, validation_amounts(frame, plan), params=params
    )
    logistic = fit_logistic(
        newest.train_matrix, newest.train_labels, imbalance=params.imbalance
    )
    fit_counts = {
        "rows": int(newest.train_labels.size),
        "frauds": int(newest.train_labels.sum()),
    }
    if params.refit:
        booster, fit_counts = refit_on_training_period(
            frame, plan, best, feature_columns=feature_columns, params=params
        )

    meta = build_meta(
        plan,
        feature_columns=feature_columns,
        params=params,
        fit_counts=fit_counts,
        candidate=best,
        calibrator=calibration.calibrator,
        thresholds=calibration.thresholds,
        data_fingerprint=data_fingerprint,
    )
    model = TrainedModel(
        best.family, booster, feature_columns, calibration.thresholds, meta
    )
    metrics = training_metrics(
        frame,
        plan,
        fit_counts=fit_counts,
        fold_counts=[counts for _, counts in fold_inputs],
        studies=studies,
        reference_scores=reference_scores,
        candidate=best,
        calibration=calibration,
    )
    logger.info(
        "candidate %s (mean validation AP %.4f) fitted on %d rows (%d frauds); "
        "thresholds %s",
        best.family,
        best.best_value,
        fit_counts["rows"],
        fit_counts["frauds"],
        calibration.thresholds,
    )
    return TrainingResult(
        model=model,
        metrics=metrics,
        tuning={
            "trials": [
                trial.to_json() for study in studies.values() for trial in study.trials
            ]
        },
        references={
            "rule_baseline": {"rules": dict(sorted(params.baseline_rules.items()))},
            "logistic_regression": logistic.to_json(),
            "feature_columns": list(feature_columns),
        },
    )


def refit_on_training_period(
    frame: pl.DataFrame,
    plan: WindowPlan,
    candidate: StudyResult,
    *,
    feature_columns: list[str],
    params: TrainParams,
) -> tuple[Any, dict[str, int]]:
    """Fit the candidate's family and hyperparameters on the whole training period.

    Labels are those known at the cutoff, as in every fold. The calibrator fitted on
    the newest fold's out-of-time scores is kept, as scikit-learn's
    ``CalibratedClassifierCV(ensemble=False)`` does: the refitted model has the same
    hyperparameters and a similar margin scale, and it sees the most recent weeks
    before the cutoff, which the fold model never does.

    Returns:
        The booster and its training row and fraud counts.
    """
    rows = delay_aware_rows(
        frame, plan.train, known_at=plan.cutoff, maturity=plan.maturity
    )
    sampled = sample_training_rows(rows, rate=params.negative_sample_rate)
    check_classes(sampled, name="training period", column=TARGET_COLUMN)
    labels = label_vector(sampled, TARGET_COLUMN)
    booster = fit_family(
        candidate.family,
        candidate.best_params,
        feature_matrix(sampled, feature_columns),
        labels,
        imbalance=params.imbalance,
        seed=params.seed,
    )
    return booster, {"rows": int(labels.size), "frauds": int(labels.sum())}


def cutoff_instant(params: TrainParams) -> datetime:
    """Return ``params.cutoff`` as UTC midnight."""
    day = params.cutoff
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def validation_amounts(frame: pl.DataFrame, plan: WindowPlan) -> np.ndarray:
    """Return ``amount_minor`` of the newest fold's validation rows, in row order."""
    rows = delay_aware_rows(
        frame, plan.folds[0].validation, known_at=plan.cutoff, maturity=plan.maturity
    )
    return rows[AMOUNT_COLUMN].to_numpy()


def calibrate_on_validation(
    booster: Any, fold: FoldData, amounts: np.ndarray, *, params: TrainParams
) -> CalibrationFit:
    """Fit the calibrator and choose thresholds on a fold's validation rows.

    Args:
        booster: The model fitted on the fold's training rows.
        fold: The fold; its validation rows are out of time for ``booster``.
        amounts: Amounts in minor units of the validation rows.
        params: Calibration method, threshold rule and cost matrix.
    """
    labels = fold.validation_labels
    raw = raw_scores(booster, fold.validation_matrix)
    margins = margin_scores(booster, fold.validation_matrix)
    calibrator = fit_calibrator(margins, labels, method=params.calibration)
    calibrated = calibrator.apply(margins)
    thresholds = operating_thresholds(calibrated, labels, amounts, params=params)

    alerted = calibrated >= thresholds["review"]
    declined = calibrated >= thresholds["decline"]
    frauds = int(labels.sum())
    metrics = {
        "rows": int(labels.size),
        "frauds": frauds,
        "average_precision": float(average_precision_score(labels, calibrated)),
        "brier_raw": float(brier_score_loss(labels, raw)),
        "brier_calibrated": float(brier_score_loss(labels, calibrated)),
        "alert_rate": float(alerted.mean()),
        "recall_at_review": safe_ratio(labels[alerted].sum(), frauds),
        "precision_at_review": safe_ratio(labels[alerted].sum(), alerted.sum()),
        "precision_at_decline": safe_ratio(labels[declined].sum(), declined.sum()),
        "expected_cost_per_transaction": expected_cost(
            labels, alerted, amounts, cost=params.cost
        )
        / labels.size,
    }
    return CalibrationFit(calibrator, thresholds, metrics)


def margin_scores(booster: Any, matrix: np.ndarray) -> np.ndarray:
    """Return a tree model's raw log-odds, shape (rows,)."""
    if isinstance(booster, xgb.Booster):
        return np.asarray(
            booster.inplace_predict(matrix, predict_type="margin"), dtype=np.float64
        )
    return np.asarray(booster.predict(matrix, raw_score=True), dtype=np.float64)


def build_meta(
    plan: WindowPlan,
    *,
    feature_columns: list[str],
    params: TrainParams,
    fit_counts: dict[str, int],
    candidate: StudyResult,
    calibrator: Calibrator,
    thresholds: dict[str, float],
    data_fingerprint: str,
) -> dict[str, Any]:
    """Return the content of ``model_meta.json``, free of wall-clock values."""
    library = xgb if candidate.family == "xgboost" else lgb
    newest = plan.folds[0]
    fit_window = plan.train if params.refit else newest.train
    return {
        "flavour": candidate.family,
        "library_version": library.__version__,
        "model_file": MODEL_FILES[candidate.family],
        "feature_columns": list(feature_columns),
        "windows": {
            **plan.to_json(),
            "fit": fit_window.to_json(),
            "calibration": newest.validation.to_json(),
        },
        "params": params.model_dump(mode="json"),
        "hyperparameters": candidate.best_params,
        "validation_average_precision": candidate.best_value,
        "fit_rows": fit_counts["rows"],
        "fit_frauds": fit_counts["frauds"],
        "model_threads": MODEL_THREADS,
        "data_fingerprint": data_fingerprint,
        "calibration": calibrator.to_json(),
        "thresholds": thresholds,
        "cost": params.cost.model_dump(mode="json"),
        "decision_rule": "decline if probability >= decline, review if probability "
        ">= review, else approve",
    }


def training_metrics(
    frame: pl.DataFrame,
    plan: WindowPlan,
    *,
    fit_counts: dict[str, int],
    fold_counts: list[dict[str, int]],
    studies: dict[str, StudyResult],
    reference_scores: dict[str, dict[str, float]],
    candidate: StudyResult,
    calibration: CalibrationFit,
) -> dict[str, Any]:
    """Return the content of ``train.json``, floats rounded to 6 decimals."""
    test = select_window(frame, plan.test)
    validation_ap: dict[str, float] = {
        family: study.best_value for family, study in studies.items()
    }
    for name, per_fold in reference_scores.items():
        validation_ap[name] = float(np.mean(list(per_fold.values())))
    metrics: dict[str, Any] = {
        "candidate": candidate.family,
        "cutoff": plan.cutoff.isoformat(),
        "fit_rows": fit_counts["rows"],
        "fit_frauds": fit_counts["frauds"],
        "test_rows": test.height,
        "test_frauds": int(test[LABEL_COLUMN].sum()),
        "folds": {
            str(fold.index): counts
            for fold, counts in zip(plan.folds, fold_counts, strict=True)
        },
        "validation_average_precision": validation_ap,
        "trials": {
            family: {"total": len(study.trials), "pruned": study.pruned}
            for family, study in studies.items()
        },
        "review_threshold": calibration.thresholds["review"],
        "decline_threshold": calibration.thresholds["decline"],
        "calibration_window": calibration.metrics,
    }
    return round_metrics(metrics)


def safe_ratio(numerator: float, denominator: float) -> float:
    """Return ``numerator / denominator``, or 0.0 when the denominator is 0."""
    return float(numerator) / float(denominator) if denominator else 0.0


def round_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """Return a copy with every float, also in nested dicts, rounded to 6 decimals."""
    rounded: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            rounded[key] = round_metrics(value)
        elif isinstance(value, float):
            rounded[key] = round(value, METRIC_DECIMALS)
        else:
            rounded[key] = value
    return rounded
