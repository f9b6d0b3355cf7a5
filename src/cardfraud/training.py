"""Model training on a time-ordered split, operating thresholds and the saved model.

The feature table is split by UTC calendar day, never at random. The last ``test_days``
days are the test window. The ``threshold_days`` days before them are the threshold
window, an out-of-time tail of the training period on which the review and decline
thresholds are chosen. The model is fitted on the days before the threshold window.

Scores are the model's fraud scores in [0, 1]. With a positive-class weight other than 1
they rank transactions correctly but overstate the fraud probability.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import polars as pl
import xgboost as xgb
from sklearn.metrics import average_precision_score

from cardfraud.params import TrainParams

logger = logging.getLogger(__name__)

Flavour = Literal["xgboost", "lightgbm"]

MODEL_FILES: dict[str, str] = {"xgboost": "model.ubj", "lightgbm": "model.txt"}
META_FILE = "model_meta.json"
MODEL_THREADS = 2
LABEL_COLUMN = "is_fraud"
TIME_COLUMN = "timestamp"
KEY_COLUMNS = ("transaction_id", "card_id", "merchant_id", TIME_COLUMN)
METRIC_DECIMALS = 6


class TrainingError(ValueError):
    """The feature table or its split cannot train a model."""


@dataclass(frozen=True)
class TimeWindow:
    """A half-open interval of UTC time, ``start <= timestamp < end``."""

    start: datetime
    end: datetime

    def to_json(self) -> dict[str, str]:
        """Return the bounds as ISO 8601 strings."""
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}

    @classmethod
    def from_json(cls, value: dict[str, str]) -> TimeWindow:
        """Build a window from the output of :meth:`to_json`."""
        return cls(
            start=datetime.fromisoformat(value["start"]),
            end=datetime.fromisoformat(value["end"]),
        )


@dataclass(frozen=True)
class TimeSplit:
    """Rows of the feature table in the fit, threshold and test windows."""

    fit: pl.DataFrame
    threshold: pl.DataFrame
    test: pl.DataFrame
    fit_window: TimeWindow
    threshold_window: TimeWindow
    test_window: TimeWindow


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


def split_by_time(
    frame: pl.DataFrame, *, test_days: int, threshold_days: int
) -> TimeSplit:
    """Split the feature table into fit, threshold and test windows by UTC day.

    The test window is the last ``test_days`` calendar days up to the end of the last
    day with data. The threshold window is the ``threshold_days`` days before it and the
    fit window is everything earlier.

    NOTE: The split uses the ground-truth ``is_fraud`` for every training row, including
    frauds whose ``label_available_at`` falls after the training period ends, so it is
    more optimistic than a delay-aware split.

    Raises:
        TrainingError: The table or a window has no rows, or the fit window lacks
            either class.
    """
    if frame.height == 0:
        raise TrainingError("the feature table has no rows; rerun the features stage")
    first_day = (
        frame[TIME_COLUMN].min().replace(hour=0, minute=0, second=0, microsecond=0)
    )
    last_day = (
        frame[TIME_COLUMN].max().replace(hour=0, minute=0, second=0, microsecond=0)
    )
    end = last_day + timedelta(days=1)
    test_start = end - timedelta(days=test_days)
    threshold_start = test_start - timedelta(days=threshold_days)

    split = TimeSplit(
        fit=select_window(frame, TimeWindow(first_day, threshold_start)),
        threshold=select_window(frame, TimeWindow(threshold_start, test_start)),
        test=select_window(frame, TimeWindow(test_start, end)),
        fit_window=TimeWindow(first_day, threshold_start),
        threshold_window=TimeWindow(threshold_start, test_start),
        test_window=TimeWindow(test_start, end),
    )
    check_split(split, test_days=test_days, threshold_days=threshold_days)
    return split


def check_split(split: TimeSplit, *, test_days: int, threshold_days: int) -> None:
    """Raise :class:`TrainingError` when a window of ``split`` is unusable."""
    for name, rows in (
        ("fit", split.fit),
        ("threshold", split.threshold),
        ("test", split.test),
    ):
        if rows.height == 0:
            raise TrainingError(
                f"the {name} window has no rows (test_days={test_days}, "
                f"threshold_days={threshold_days}); the data spans "
                f"{split.fit_window.start.date()} to {split.test_window.end.date()}, "
                "so lower test_days or threshold_days"
            )
    frauds = int(split.fit[LABEL_COLUMN].sum())
    if frauds == 0 or frauds == split.fit.height:
        raise TrainingError(
            f"the fit window has {frauds} frauds in {split.fit.height} rows; training "
            "needs both classes, so generate more data or lower test_days"
        )


def select_window(frame: pl.DataFrame, window: TimeWindow) -> pl.DataFrame:
    """Return the rows with ``window.start <= timestamp < window.end``, in order."""
    timestamps = pl.col(TIME_COLUMN)
    return frame.filter((timestamps >= window.start) & (timestamps < window.end))


def feature_matrix(frame: pl.DataFrame, feature_columns: list[str]) -> np.ndarray:
    """Return the features as a float64 array of shape (rows, len(feature_columns))."""
    matrix = frame.select(feature_columns).cast(pl.Float64).to_numpy()
    return np.ascontiguousarray(matrix, dtype=np.float64)


def label_vector(frame: pl.DataFrame) -> np.ndarray:
    """Return ``is_fraud`` as an int8 array of 0 and 1."""
    return frame[LABEL_COLUMN].cast(pl.Int8).to_numpy()


def positive_weight(labels: np.ndarray, *, imbalance: str) -> float:
    """Return the weight of a fraud row relative to a legitimate one.

    Args:
        labels: 0/1 labels of the fit window.
        imbalance: ``balanced`` gives negatives/positives, ``sqrt`` its square root and
            ``none`` 1.0.
    """
    positives = int(labels.sum())
    ratio = (labels.size - positives) / max(positives, 1)
    weights = {"balanced": ratio, "sqrt": math.sqrt(ratio), "none": 1.0}
    if imbalance not in weights:
        raise TrainingError(
            f"imbalance={imbalance!r} is not one of {sorted(weights)}; fix params.yaml"
        )
    return float(weights[imbalance])


def fit_booster(
    matrix: np.ndarray, labels: np.ndarray, *, params: TrainParams
) -> xgb.Booster | lgb.Booster:
    """Fit the gradient-boosted trees that ``params.model`` names.

    Both libraries run on ``MODEL_THREADS`` threads with a fixed seed, so the same data
    and parameters give identical predictions.
    """
    weight = positive_weight(labels, imbalance=params.imbalance)
    if params.model == "xgboost":
        return fit_xgboost(matrix, labels, params=params, scale_pos_weight=weight)
    return fit_lightgbm(matrix, labels, params=params, scale_pos_weight=weight)


def fit_xgboost(
    matrix: np.ndarray,
    labels: np.ndarray,
    *,
    params: TrainParams,
    scale_pos_weight: float,
) -> xgb.Booster:
    """Fit an XGBoost binary classifier with the hist tree method."""
    booster_params = {
        "objective": "binary:logistic",
        "eval_metric": "aucpr",
        "tree_method": "hist",
        "max_depth": params.max_depth,
        "learning_rate": params.learning_rate,
        "scale_pos_weight": scale_pos_weight,
        "nthread": MODEL_THREADS,
        "seed": params.seed,
        "verbosity": 0,
    }
    train_data = xgb.DMatrix(matrix, label=labels, nthread=MODEL_THREADS)
    return xgb.train(booster_params, train_data, num_boost_round=params.n_estimators)


def fit_lightgbm(
    matrix: np.ndarray,
    labels: np.ndarray,
    *,
    params: TrainParams,
    scale_pos_weight: float,
) -> lgb.Booster:
    """Fit a LightGBM binary classifier in its deterministic mode."""
    booster_params = {
        "objective": "binary",
        "max_depth": params.max_depth,
        "num_leaves": min(2**params.max_depth - 1, 255),
        "learning_rate": params.learning_rate,
        "scale_pos_weight": scale_pos_weight,
        "num_threads": MODEL_THREADS,
        "seed": params.seed,
        "deterministic": True,
        "force_row_wise": True,
        "verbosity": -1,
    }
    train_data = lgb.Dataset(matrix, label=labels, params={"verbosity": -1})
    return lgb.train(booster_params, train_data, num_boost_round=params.n_estimators)


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
        decline = 1.0
    else:
        decline = float(ordered[reaching[-1]])
    return {"review": review, "decline": max(decline, review)}


@dataclass(frozen=True)
class TrainedModel:
    """A fitted booster with the metadata that scoring it needs.

    Attributes:
        flavour: ``xgboost`` or ``lightgbm``.
        booster: The library's native booster.
        feature_columns: Input columns in the order the booster expects.
        thresholds: ``{"review": float, "decline": float}`` fraud-score thresholds.
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

    def predict_proba(self, features: pl.DataFrame | np.ndarray) -> np.ndarray:
        """Return the fraud score of each row, shape (rows,), in [0, 1]."""
        matrix = self.as_matrix(features)
        if self.flavour == "xgboost":
            return np.asarray(self.booster.inplace_predict(matrix))
        return np.asarray(self.booster.predict(matrix))

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
    """The trained model and the training metrics for ``train.json``."""

    model: TrainedModel
    metrics: dict[str, Any]


def train_model(
    frame: pl.DataFrame,
    *,
    feature_columns: list[str],
    params: TrainParams,
    data_fingerprint: str,
) -> TrainingResult:
    """Split by time, fit the booster, and choose thresholds on the threshold window.

    Args:
        frame: The feature table; see :func:`check_feature_table`.
        feature_columns: Model inputs, in the order the model receives them.
        params: Training parameters.
        data_fingerprint: SHA-256 of the feature table file, stored in the metadata.
    """
    check_feature_table(frame, feature_columns=feature_columns)
    split = split_by_time(
        frame, test_days=params.test_days, threshold_days=params.threshold_days
    )
    fit_labels = label_vector(split.fit)
    booster = fit_booster(
        feature_matrix(split.fit, feature_columns), fit_labels, params=params
    )
    untuned = TrainedModel(params.model, booster, feature_columns, {}, {})

    threshold_labels = label_vector(split.threshold)
    threshold_scores = untuned.predict_proba(split.threshold)
    thresholds = choose_thresholds(
        threshold_scores,
        threshold_labels,
        review_alert_rate=params.review_alert_rate,
        decline_precision=params.decline_precision,
    )
    meta = build_meta(
        split,
        feature_columns=feature_columns,
        params=params,
        thresholds=thresholds,
        data_fingerprint=data_fingerprint,
    )
    model = TrainedModel(params.model, booster, feature_columns, thresholds, meta)
    metrics = training_metrics(
        split, threshold_scores=threshold_scores, thresholds=thresholds
    )
    logger.info(
        "trained %s on %d rows (%d frauds); thresholds %s",
        params.model,
        split.fit.height,
        int(fit_labels.sum()),
        thresholds,
    )
    return TrainingResult(model=model, metrics=metrics)


def build_meta(
    split: TimeSplit,
    *,
    feature_columns: list[str],
    params: TrainParams,
    thresholds: dict[str, float],
    data_fingerprint: str,
) -> dict[str, Any]:
    """Return the content of ``model_meta.json``, free of wall-clock values."""
    library = xgb if params.model == "xgboost" else lgb
    return {
        "flavour": params.model,
        "library_version": library.__version__,
        "model_file": MODEL_FILES[params.model],
        "feature_columns": list(feature_columns),
        "windows": {
            "fit": split.fit_window.to_json(),
            "threshold": split.threshold_window.to_json(),
            "test": split.test_window.to_json(),
        },
        "params": params.model_dump(mode="json"),
        "model_threads": MODEL_THREADS,
        "data_fingerprint": data_fingerprint,
        "thresholds": thresholds,
        "decision_rule": "decline if score >= decline, review if score >= review, "
        "else approve",
    }


def training_metrics(
    split: TimeSplit, *, threshold_scores: np.ndarray, thresholds: dict[str, float]
) -> dict[str, Any]:
    """Return row counts and threshold-window metrics, rounded to 6 decimals."""
    labels = label_vector(split.threshold)
    flagged = threshold_scores >= thresholds["review"]
    declined = threshold_scores >= thresholds["decline"]
    frauds = int(labels.sum())
    metrics: dict[str, Any] = {
        "fit_rows": split.fit.height,
        "fit_frauds": int(split.fit[LABEL_COLUMN].sum()),
        "threshold_rows": split.threshold.height,
        "threshold_frauds": frauds,
        "test_rows": split.test.height,
        "test_frauds": int(split.test[LABEL_COLUMN].sum()),
        "review_threshold": thresholds["review"],
        "decline_threshold": thresholds["decline"],
        "threshold_alert_rate": float(flagged.mean()),
        "threshold_recall_at_review": safe_ratio(labels[flagged].sum(), frauds),
        "threshold_precision_at_decline": safe_ratio(
            labels[declined].sum(), declined.sum()
        ),
        "threshold_average_precision": (
            float(average_precision_score(labels, threshold_scores)) if frauds else 0.0
        ),
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
