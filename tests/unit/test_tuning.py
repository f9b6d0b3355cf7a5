"""Tests of the Optuna studies, the reference models and the calibrators."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from cardfraud.calibration import (
    CalibrationError,
    Calibrator,
    fit_calibrator,
    sigmoid,
)
from cardfraud.tuning import (
    FoldData,
    TuningError,
    fit_logistic,
    positive_weight,
    reference_fold_scores,
    rule_scores,
    tune_family,
)

FEATURES = ["velocity", "risk", "noise"]


def make_fold(index: int, *, seed: int, rows: int = 1500) -> FoldData:
    """Return a fold whose fraud label depends on velocity and risk."""
    rng = np.random.default_rng(seed)

    def draw(size: int) -> tuple[np.ndarray, np.ndarray]:
        matrix = np.column_stack(
            [rng.poisson(2.0, size), rng.uniform(size=size), rng.normal(size=size)]
        ).astype(np.float64)
        logit = -6.0 + 0.9 * matrix[:, 0] + 3.0 * matrix[:, 1]
        labels = (rng.uniform(size=size) < 1 / (1 + np.exp(-logit))).astype(np.int8)
        return matrix, labels

    train_matrix, train_labels = draw(rows)
    validation_matrix, validation_labels = draw(rows // 2)
    return FoldData(
        index, train_matrix, train_labels, validation_matrix, validation_labels
    )


@pytest.fixture(scope="module")
def folds() -> list[FoldData]:
    return [make_fold(1, seed=1), make_fold(2, seed=2)]


def test_positive_weight_modes() -> None:
    labels = np.array([1] * 4 + [0] * 396)

    assert positive_weight(labels, imbalance="balanced") == 99.0
    assert positive_weight(labels, imbalance="sqrt") == pytest.approx(9.949874)
    assert positive_weight(labels, imbalance="none") == 1.0
    with pytest.raises(TuningError, match="imbalance='half'"):
        positive_weight(labels, imbalance="half")


@pytest.mark.parametrize("family", ["xgboost", "lightgbm"])
def test_study_is_seeded(folds: list[FoldData], family: str) -> None:
    first = tune_family(
        family, folds, trials=4, max_estimators=30, imbalance="sqrt", seed=3
    )
    again = tune_family(
        family, folds, trials=4, max_estimators=30, imbalance="sqrt", seed=3
    )
    other = tune_family(
        family, folds, trials=4, max_estimators=30, imbalance="sqrt", seed=4
    )

    assert [t.to_json() for t in first.trials] == [t.to_json() for t in again.trials]
    assert first.best_params == again.best_params
    assert first.best_params != other.best_params
    assert len(first.trials) == 4
    assert 0.0 < first.best_value <= 1.0
    assert first.best_params["n_estimators"] <= 30


def test_study_records_every_fold_of_complete_trials(folds: list[FoldData]) -> None:
    study = tune_family(
        "xgboost", folds, trials=6, max_estimators=30, imbalance="sqrt", seed=5
    )

    complete = [t for t in study.trials if t.state == "COMPLETE"]
    assert complete
    for trial in complete:
        assert set(trial.fold_average_precision) == {"1", "2"}
        assert trial.value == pytest.approx(
            np.mean(list(trial.fold_average_precision.values()))
        )
    for trial in study.trials:
        if trial.state == "PRUNED":
            # Folds run oldest first, so a pruned trial stops before fold 1.
            assert "1" not in trial.fold_average_precision
    assert study.best_value == max(t.value for t in complete)
    assert study.pruned == len(study.trials) - len(complete)


def test_rule_scores_count_fired_rules() -> None:
    matrix = np.array([[3.0, 0.95, 0.0], [1.0, 0.95, 0.0], [0.0, 0.1, 0.0]])

    scores = rule_scores(
        matrix, rules={"velocity": 3.0, "risk": 0.9}, feature_columns=FEATURES
    )

    assert scores.tolist() == [1.0, 0.5, 0.0]
    with pytest.raises(TuningError, match=r"\['amount'\]"):
        rule_scores(matrix, rules={"amount": 1.0}, feature_columns=FEATURES)


def test_logistic_reference_ranks_and_round_trips(folds: list[FoldData]) -> None:
    fold = folds[0]
    model = fit_logistic(fold.train_matrix, fold.train_labels, imbalance="sqrt")

    scores = model.predict(fold.validation_matrix)

    assert average_precision_score(fold.validation_labels, scores) > 0.3
    restored = type(model).from_json(model.to_json())
    assert np.array_equal(restored.predict(fold.validation_matrix), scores)
    fold_scores = reference_fold_scores(
        folds,
        rules={"velocity": 4.0},
        feature_columns=FEATURES,
        imbalance="sqrt",
    )
    assert set(fold_scores) == {"rule_baseline", "logistic_regression"}
    assert set(fold_scores["logistic_regression"]) == {"1", "2"}


def calibration_case(seed: int = 9) -> tuple[np.ndarray, np.ndarray]:
    """Return margins and labels drawn from sigmoid(0.5 * margin - 2)."""
    rng = np.random.default_rng(seed)
    margins = rng.normal(0.0, 3.0, 20_000)
    labels = (rng.uniform(size=margins.size) < sigmoid(0.5 * margins - 2.0)).astype(
        np.int8
    )
    return margins, labels


def test_sigmoid_calibration_recovers_coefficients() -> None:
    margins, labels = calibration_case()

    calibrator = fit_calibrator(margins, labels, method="sigmoid")

    assert calibrator.slope == pytest.approx(0.5, abs=0.05)
    assert calibrator.intercept == pytest.approx(-2.0, abs=0.1)
    probabilities = calibrator.apply(margins)
    assert np.all(np.diff(probabilities[np.argsort(margins)]) >= 0)


def test_isotonic_calibration_is_monotone_and_clipped() -> None:
    margins, labels = calibration_case()

    calibrator = fit_calibrator(margins, labels, method="isotonic")

    grid = np.linspace(-20, 20, 401)
    values = calibrator.apply(grid)
    assert np.all(np.diff(values) >= 0)
    assert values[0] == calibrator.y[0]
    assert values[-1] == calibrator.y[-1]
    assert 0.0 <= values.min() <= values.max() <= 1.0


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_calibrator_json_round_trip(method: str) -> None:
    margins, labels = calibration_case()
    calibrator = fit_calibrator(margins, labels, method=method)

    restored = Calibrator.from_json(calibrator.to_json())

    assert np.array_equal(restored.apply(margins), calibrator.apply(margins))


def test_calibration_rejects_single_class() -> None:
    with pytest.raises(CalibrationError, match="0 frauds in 3 rows"):
        fit_calibrator(np.zeros(3), np.zeros(3, dtype=np.int8), method="sigmoid")
    with pytest.raises(CalibrationError, match="'beta'"):
        Calibrator.from_json({"method": "beta"})
