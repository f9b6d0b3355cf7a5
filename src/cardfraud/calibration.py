"""Score calibration: map a model's raw fraud score to a fraud probability.

Class weights and the down-sampling of legitimate rows make a model's raw scores rank
well but overstate the fraud probability. A calibrator fitted on out-of-time rows that
the model never saw maps them back:

* ``sigmoid`` (Platt scaling) fits ``p = 1 / (1 + exp(-(a * margin + b)))`` on the raw
  log-odds margin. It is strictly increasing for ``a > 0``, so it keeps the ranking
  and every ranking metric.
* ``isotonic`` fits a non-decreasing step function of the raw probability
  ``sigmoid(margin)`` and interpolates linearly between its steps, as scikit-learn's
  ``IsotonicRegression`` does. Flat steps give tied scores, which can lower ranking
  metrics slightly.

Both take the margin, because the raw probability of XGBoost's ``binary:logistic`` and
LightGBM's ``binary`` objective is the sigmoid of the margin. A calibrator is stored as
plain JSON inside ``model_meta.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

METHODS = ("sigmoid", "isotonic")


class CalibrationError(ValueError):
    """The calibration rows or a stored calibrator are unusable."""


@dataclass(frozen=True)
class Calibrator:
    """A fitted mapping from raw score to probability.

    Attributes:
        method: ``sigmoid`` or ``isotonic``.
        slope: Platt ``a``, applied to the margin (sigmoid only).
        intercept: Platt ``b`` (sigmoid only).
        x: Raw-probability knots in increasing order (isotonic only).
        y: Probabilities at the knots, non-decreasing (isotonic only).
    """

    method: str
    slope: float = 1.0
    intercept: float = 0.0
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()

    def apply(self, margins: np.ndarray) -> np.ndarray:
        """Return calibrated probabilities in [0, 1], shape (rows,).

        Args:
            margins: The model's raw log-odds, shape (rows,).
        """
        margins = np.asarray(margins, dtype=np.float64)
        if self.method == "sigmoid":
            return sigmoid(self.slope * margins + self.intercept)
        return np.interp(sigmoid(margins), self.x, self.y)

    def to_json(self) -> dict[str, Any]:
        """Return the calibrator as a JSON-serialisable dict."""
        if self.method == "sigmoid":
            return {
                "method": self.method,
                "slope": self.slope,
                "intercept": self.intercept,
            }
        return {"method": self.method, "x": list(self.x), "y": list(self.y)}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Calibrator:
        """Build a calibrator from the output of :meth:`to_json`.

        Raises:
            CalibrationError: The method is unknown or a field is missing.
        """
        method = value.get("method")
        if method == "sigmoid":
            return cls(
                method, slope=float(value["slope"]), intercept=float(value["intercept"])
            )
        if method == "isotonic":
            return cls(method, x=tuple(value["x"]), y=tuple(value["y"]))
        raise CalibrationError(
            f"calibration method {method!r} in model_meta.json is not one of "
            f"{METHODS}; retrain the model"
        )


def sigmoid(values: np.ndarray) -> np.ndarray:
    """Return ``1 / (1 + exp(-values))`` elementwise."""
    return 1.0 / (1.0 + np.exp(-values))


def fit_calibrator(
    margins: np.ndarray, labels: np.ndarray, *, method: str
) -> Calibrator:
    """Fit a calibrator on out-of-time rows of the model.

    Args:
        margins: Raw log-odds, shape (rows,).
        labels: 0/1 labels of the same rows.
        method: ``sigmoid`` or ``isotonic``.

    Raises:
        CalibrationError: The rows lack a class, or the method is unknown.
    """
    frauds = int(np.sum(labels))
    if frauds == 0 or frauds == labels.size:
        raise CalibrationError(
            f"the calibration rows contain {frauds} frauds in {labels.size} rows; "
            "calibration needs both classes, so widen train.fold_days"
        )
    if method == "sigmoid":
        return fit_sigmoid(margins, labels)
    if method == "isotonic":
        return fit_isotonic(margins, labels)
    raise CalibrationError(f"calibration {method!r} is not one of {METHODS}")


def fit_sigmoid(margins: np.ndarray, labels: np.ndarray) -> Calibrator:
    """Fit Platt scaling on the margins by unpenalised logistic regression."""
    regression = LogisticRegression(C=np.inf, solver="lbfgs", max_iter=1000)
    regression.fit(np.asarray(margins, dtype=np.float64).reshape(-1, 1), labels)
    return Calibrator(
        "sigmoid",
        slope=float(regression.coef_[0, 0]),
        intercept=float(regression.intercept_[0]),
    )


def fit_isotonic(margins: np.ndarray, labels: np.ndarray) -> Calibrator:
    """Fit a non-decreasing step function that is clipped outside the fitted range."""
    regression = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    regression.fit(sigmoid(np.asarray(margins, dtype=np.float64)), labels)
    return Calibrator(
        "isotonic",
        x=tuple(float(v) for v in regression.X_thresholds_),
        y=tuple(float(v) for v in regression.y_thresholds_),
    )
