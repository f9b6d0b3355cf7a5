"""Model families, prequential tuning with Optuna, and the two reference models.

Each tuned family (XGBoost, LightGBM) runs one Optuna study with a seeded
``TPESampler`` and a ``MedianPruner``. A trial fits the family on every prequential
fold, oldest first, and reports the running mean of the folds' validation average
precision after each fold. A trial whose running mean falls below the median of
earlier trials at the same fold stops early. The study maximises the mean over all
folds.

Class imbalance is handled twice and explicitly: legitimate training rows are
down-sampled (``negative_sample_rate``) and fraud rows get a positive-class weight
(``imbalance``). Both distort the raw scores, which calibration corrects.

The references show what the tuned models add: a rule baseline that counts the
hand-written rules a transaction fires, and an L2-regularised logistic regression on
standardised ``sign(x) * log(1 + |x|)`` features.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import optuna
import xgboost as xgb
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score

logger = logging.getLogger(__name__)

MODEL_THREADS = 2
FAMILIES = ("xgboost", "lightgbm")
MIN_ESTIMATORS = 10
PRUNER_STARTUP_TRIALS = 2


class TuningError(ValueError):
    """The folds or parameters cannot be tuned on."""


@dataclass(frozen=True)
class FoldData:
    """Model inputs of one prequential fold.

    Attributes:
        index: 1 for the newest validation window.
        train_matrix: Training features, float64, shape (rows, features).
        train_labels: Delay-aware 0/1 labels of the training rows, int8.
        validation_matrix: Validation features, float64.
        validation_labels: 0/1 labels of the validation rows known at the cutoff.
    """

    index: int
    train_matrix: np.ndarray
    train_labels: np.ndarray
    validation_matrix: np.ndarray
    validation_labels: np.ndarray


@dataclass(frozen=True)
class TrialRecord:
    """One Optuna trial: its hyperparameters and validation scores per fold."""

    family: str
    number: int
    state: str
    params: dict[str, Any]
    fold_average_precision: dict[str, float]
    value: float | None

    def to_json(self) -> dict[str, Any]:
        """Return the record as a JSON-serialisable dict."""
        return {
            "family": self.family,
            "number": self.number,
            "state": self.state,
            "params": self.params,
            "fold_average_precision": self.fold_average_precision,
            "value": self.value,
        }


@dataclass(frozen=True)
class StudyResult:
    """The outcome of one family's study."""

    family: str
    best_params: dict[str, Any]
    best_value: float
    trials: list[TrialRecord] = field(default_factory=list)

    @property
    def pruned(self) -> int:
        """Number of trials stopped early by the pruner."""
        return sum(1 for trial in self.trials if trial.state == "PRUNED")


def positive_weight(labels: np.ndarray, *, imbalance: str) -> float:
    """Return the weight of a fraud row relative to a legitimate one.

    Args:
        labels: 0/1 labels of the training rows.
        imbalance: ``balanced`` gives negatives/positives, ``sqrt`` its square root and
            ``none`` 1.0.
    """
    positives = int(labels.sum())
    ratio = (labels.size - positives) / max(positives, 1)
    weights = {"balanced": ratio, "sqrt": math.sqrt(ratio), "none": 1.0}
    if imbalance not in weights:
        raise TuningError(
            f"imbalance={imbalance!r} is not one of {sorted(weights)}; fix params.yaml"
        )
    return float(weights[imbalance])


def suggest_params(
    trial: optuna.Trial, family: str, *, max_estimators: int
) -> dict[str, Any]:
    """Draw one point of the family's search space."""
    upper = max(max_estimators, MIN_ESTIMATORS)
    common = {
        "n_estimators": trial.suggest_int("n_estimators", MIN_ESTIMATORS, upper),
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
    }
    if family == "xgboost":
        return {
            **common,
            "max_depth": trial.suggest_int("max_depth", 3, 8),
            "min_child_weight": trial.suggest_float(
                "min_child_weight", 1.0, 20.0, log=True
            ),
            "subsample": trial.suggest_float("subsample", 0.6, 1.0),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
            "reg_lambda": trial.suggest_float("reg_lambda", 0.1, 10.0, log=True),
        }
    return {
        **common,
        "num_leaves": trial.suggest_int("num_leaves", 8, 128, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 10, 200, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.5, 1.0),
        "bagging_fraction": trial.suggest_float("bagging_fraction", 0.6, 1.0),
        "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 10.0, log=True),
    }


def fit_family(
    family: str,
    hyperparameters: dict[str, Any],
    matrix: np.ndarray,
    labels: np.ndarray,
    *,
    imbalance: str,
    seed: int,
) -> xgb.Booster | lgb.Booster:
    """Fit one tree model; the same inputs always give identical predictions.

    Both libraries run on ``MODEL_THREADS`` threads with a fixed seed.
    """
    weight = positive_weight(labels, imbalance=imbalance)
    if family == "xgboost":
        return fit_xgboost(hyperparameters, matrix, labels, weight=weight, seed=seed)
    if family == "lightgbm":
        return fit_lightgbm(hyperparameters, matrix, labels, weight=weight, seed=seed)
    raise TuningError(f"model family {family!r} is not one of {FAMILIES}")


def fit_xgboost(
    hyperparameters: dict[str, Any],
    matrix: np.ndarray,
    labels: np.ndarray,
    *,
    weight: float,
    seed: int,
) -> xgb.Booster:
    """Fit an XGBoost binary classifier with the hist tree method."""
    booster_params = {
        "objective": "binary:logistic",
        "eval_metric": "aucpr",
        "tree_method": "hist",
        "max_depth": hyperparameters["max_depth"],
        "learning_rate": hyperparameters["learning_rate"],
        "min_child_weight": hyperparameters["min_child_weight"],
        "subsample": hyperparameters["subsample"],
        "colsample_bytree": hyperparameters["colsample_bytree"],
        "reg_lambda": hyperparameters["reg_lambda"],
        "scale_pos_weight": weight,
        "nthread": MODEL_THREADS,
        "seed": seed,
        "verbosity": 0,
    }
    data = xgb.DMatrix(matrix, label=labels, nthread=MODEL_THREADS)
    return xgb.train(
        booster_params, data, num_boost_round=hyperparameters["n_estimators"]
    )


def fit_lightgbm(
    hyperparameters: dict[str, Any],
    matrix: np.ndarray,
    labels: np.ndarray,
    *,
    weight: float,
    seed: int,
) -> lgb.Booster:
    """Fit a LightGBM binary classifier in its deterministic mode."""
    booster_params = {
        "objective": "binary",
        "num_leaves": hyperparameters["num_leaves"],
        "learning_rate": hyperparameters["learning_rate"],
        "min_child_samples": hyperparameters["min_child_samples"],
        "feature_fraction": hyperparameters["feature_fraction"],
        "bagging_fraction": hyperparameters["bagging_fraction"],
        "bagging_freq": 1,
        "lambda_l2": hyperparameters["lambda_l2"],
        "scale_pos_weight": weight,
        "num_threads": MODEL_THREADS,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "verbosity": -1,
    }
    data = lgb.Dataset(matrix, label=labels, params={"verbosity": -1})
    return lgb.train(
        booster_params, data, num_boost_round=hyperparameters["n_estimators"]
    )


def raw_scores(booster: Any, matrix: np.ndarray) -> np.ndarray:
    """Return a tree model's uncalibrated fraud probabilities, shape (rows,)."""
    if isinstance(booster, xgb.Booster):
        return np.asarray(booster.inplace_predict(matrix), dtype=np.float64)
    return np.asarray(booster.predict(matrix), dtype=np.float64)


def validation_score(labels: np.ndarray, scores: np.ndarray) -> float:
    """Return the average precision used for tuning and model choice."""
    return float(average_precision_score(labels, scores))


def tune_family(
    family: str,
    folds: Sequence[FoldData],
    *,
    trials: int,
    max_estimators: int,
    imbalance: str,
    seed: int,
) -> StudyResult:
    """Run one seeded Optuna study for ``family`` over the folds.

    Args:
        folds: Prequential folds, newest first; trials fit them oldest first.
        trials: Number of trials, pruned ones included.

    Returns:
        The best hyperparameters by mean validation average precision and a record
        of every trial.
    """
    ordered = sorted(folds, key=lambda fold: -fold.index)
    records: list[TrialRecord] = []

    def objective(trial: optuna.Trial) -> float:
        params = suggest_params(trial, family, max_estimators=max_estimators)
        scores: dict[str, float] = {}
        for step, fold in enumerate(ordered):
            booster = fit_family(
                family,
                params,
                fold.train_matrix,
                fold.train_labels,
                imbalance=imbalance,
                seed=seed,
            )
            predicted = raw_scores(booster, fold.validation_matrix)
            scores[str(fold.index)] = validation_score(
                fold.validation_labels, predicted
            )
            trial.report(float(np.mean(list(scores.values()))), step)
            if trial.should_prune():
                records.append(
                    TrialRecord(family, trial.number, "PRUNED", params, scores, None)
                )
                raise optuna.TrialPruned()
        value = float(np.mean(list(scores.values())))
        records.append(
            TrialRecord(family, trial.number, "COMPLETE", params, scores, value)
        )
        return value

    with quiet_optuna():
        study = optuna.create_study(
            study_name=family,
            direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=seed),
            pruner=optuna.pruners.MedianPruner(
                n_startup_trials=PRUNER_STARTUP_TRIALS, n_warmup_steps=0
            ),
        )
        study.optimize(objective, n_trials=trials, n_jobs=1)
    best = next(r for r in records if r.number == study.best_trial.number)
    logger.info(
        "%s: best mean validation AP %.4f after %d trials (%d pruned)",
        family,
        study.best_value,
        len(records),
        sum(1 for r in records if r.state == "PRUNED"),
    )
    return StudyResult(family, dict(best.params), float(study.best_value), records)


@contextmanager
def quiet_optuna() -> Iterator[None]:
    """Silence Optuna's per-trial log lines for a block, then restore the level.

    Optuna writes them to stderr with timestamps, which would make every executed
    notebook differ; this module logs one summary line per study instead.
    """
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)


def signed_log(matrix: np.ndarray) -> np.ndarray:
    """Return ``sign(x) * log(1 + |x|)``, which tames heavy-tailed counts and sums."""
    return np.sign(matrix) * np.log1p(np.abs(matrix))


@dataclass(frozen=True)
class LogisticModel:
    """A logistic regression stored as plain numbers.

    The score is ``sigmoid(((signed_log(x) - mean) / scale) @ coef + intercept)``.
    """

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """Return fraud scores in [0, 1], shape (rows,)."""
        standard = (signed_log(matrix) - self.mean) / self.scale
        return 1.0 / (1.0 + np.exp(-(standard @ self.coef + self.intercept)))

    def to_json(self) -> dict[str, Any]:
        """Return the coefficients as lists of floats."""
        return {
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> LogisticModel:
        """Build the model from the output of :meth:`to_json`."""
        return cls(
            mean=np.asarray(value["mean"], dtype=np.float64),
            scale=np.asarray(value["scale"], dtype=np.float64),
            coef=np.asarray(value["coef"], dtype=np.float64),
            intercept=float(value["intercept"]),
        )


def fit_logistic(
    matrix: np.ndarray, labels: np.ndarray, *, imbalance: str
) -> LogisticModel:
    """Fit the logistic-regression reference with the same positive weight rule."""
    transformed = signed_log(matrix)
    mean = transformed.mean(axis=0)
    scale = transformed.std(axis=0)
    scale[scale == 0.0] = 1.0
    weight = positive_weight(labels, imbalance=imbalance)
    regression = LogisticRegression(C=1.0, solver="lbfgs", max_iter=2000)
    regression.fit(
        (transformed - mean) / scale,
        labels,
        sample_weight=np.where(labels == 1, weight, 1.0),
    )
    return LogisticModel(
        mean, scale, regression.coef_[0].copy(), float(regression.intercept_[0])
    )


def rule_scores(
    matrix: np.ndarray, *, rules: dict[str, float], feature_columns: list[str]
) -> np.ndarray:
    """Return the share of rules that fire for each row, shape (rows,).

    A rule ``name: value`` fires when feature ``name`` is at least ``value``.

    Raises:
        TuningError: A rule names a feature that is not a model input.
    """
    missing = sorted(set(rules) - set(feature_columns))
    if missing:
        raise TuningError(
            f"train.baseline_rules name feature(s) {missing} that the feature table "
            f"does not contain; use names from feature_spec.json: {feature_columns}"
        )
    fired = np.zeros(matrix.shape[0], dtype=np.float64)
    for name, value in sorted(rules.items()):
        fired += matrix[:, feature_columns.index(name)] >= value
    return fired / len(rules)


def reference_fold_scores(
    folds: Sequence[FoldData],
    *,
    rules: dict[str, float],
    feature_columns: list[str],
    imbalance: str,
) -> dict[str, dict[str, float]]:
    """Return each reference model's validation average precision per fold."""
    models: dict[str, Callable[[FoldData], np.ndarray]] = {
        "rule_baseline": lambda fold: rule_scores(
            fold.validation_matrix, rules=rules, feature_columns=feature_columns
        ),
        "logistic_regression": lambda fold: fit_logistic(
            fold.train_matrix, fold.train_labels, imbalance=imbalance
        ).predict(fold.validation_matrix),
    }
    return {
        name: {
            str(fold.index): validation_score(fold.validation_labels, predict(fold))
            for fold in folds
        }
        for name, predict in models.items()
    }
