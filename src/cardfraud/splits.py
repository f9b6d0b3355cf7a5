"""Delay-aware training labels, the test window and prequential folds.

Fraud labels arrive days or weeks after a payment (a chargeback or a customer's call),
so at a training cutoff ``C`` the recent frauds are not yet known. Every training set
here uses only what was known at its cutoff, with a maturity delay ``M``:

* a transaction counts as fraud when its fraud label was available at ``C``
  (``label_available_at <= C``);
* it counts as legitimate when it is older than ``M`` at ``C``
  (``timestamp <= C - M``) and has no fraud label by ``C``;
* it is left out otherwise: a recent transaction without a label may still turn out
  to be fraud.

A fraud whose ``label_available_at`` is null counts as labelled ``M`` after its
transaction. A mature fraud whose label arrives after ``C`` counts as legitimate, as it
would in production.

The test window ``[C, C + test_days)`` follows the cutoff and is scored on the ground
truth ``is_fraud``. Prequential folds serve tuning: fold ``k`` (1 is the newest)
validates on ``[C - M - k * fold_days, C - M - (k - 1) * fold_days)`` with the labels
known at ``C`` (every row there is older than ``M``, so none is left out), and trains
on the rows before that window, labelled as known at the window's start.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

LABEL_COLUMN = "is_fraud"
TIME_COLUMN = "timestamp"
LABEL_TIME_COLUMN = "label_available_at"
CARD_COLUMN = "card_id"
TARGET_COLUMN = "target"
"""Delay-aware 0/1 label (Int8) that training uses in place of ``is_fraud``."""


class SplitError(ValueError):
    """The data cannot be split into the configured windows."""


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
class Fold:
    """One prequential fold: training rows before ``validation.start``.

    Attributes:
        index: 1 for the newest validation window, counting back in time.
        train: Window of the fold's training rows, labelled at ``train.end``.
        validation: Window of the validation rows, labelled at the main cutoff.
    """

    index: int
    train: TimeWindow
    validation: TimeWindow


@dataclass(frozen=True)
class WindowPlan:
    """Every window of one training run, all at UTC midnight.

    Attributes:
        data: First day to the end of the last day with data.
        train: Rows that the final model may learn from, labelled at ``cutoff``.
        test: The test window, scored on ground truth.
        folds: Prequential folds, newest first.
    """

    data: TimeWindow
    train: TimeWindow
    test: TimeWindow
    folds: tuple[Fold, ...]
    maturity: timedelta

    @property
    def cutoff(self) -> datetime:
        """Instant at which training labels are read; the test window starts here."""
        return self.test.start

    def to_json(self) -> dict[str, object]:
        """Return the windows as ISO 8601 strings, folds newest first."""
        return {
            "data": self.data.to_json(),
            "train": self.train.to_json(),
            "test": self.test.to_json(),
            "cutoff": self.cutoff.isoformat(),
            "maturity_days": self.maturity.days,
            "folds": [
                {
                    "index": fold.index,
                    "train": fold.train.to_json(),
                    "validation": fold.validation.to_json(),
                }
                for fold in self.folds
            ],
        }


def day_start(moment: datetime) -> datetime:
    """Return UTC midnight of the day that contains ``moment``."""
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def plan_windows(
    frame: pl.DataFrame,
    *,
    cutoff: datetime | None,
    test_days: int,
    maturity_days: int,
    burn_in_days: int,
    folds: int,
    fold_days: int,
) -> WindowPlan:
    """Place the test window, the training period and the folds on the data's days.

    Args:
        frame: Rows with a UTC-aware ``timestamp``.
        cutoff: First test day at UTC midnight; None puts it ``test_days`` before the
            end of the last day with data.

    Raises:
        SplitError: A window falls outside the data or has no room; the message
            names the parameter to change.
    """
    if frame.height == 0:
        raise SplitError("the feature table has no rows; rerun the features stage")
    data = TimeWindow(
        day_start(frame[TIME_COLUMN].min()),
        day_start(frame[TIME_COLUMN].max()) + timedelta(days=1),
    )
    start = data.end - timedelta(days=test_days) if cutoff is None else cutoff
    test = TimeWindow(start, start + timedelta(days=test_days))
    if test.start <= data.start or test.end > data.end:
        raise SplitError(
            f"train.cutoff {test.start.date()} with train.test_days={test_days} puts "
            f"the test window at {test.start.date()} to {test.end.date()}, outside "
            f"the data ({data.start.date()} to {data.end.date()}); move the cutoff "
            "or lower test_days"
        )
    maturity = timedelta(days=maturity_days)
    train = TimeWindow(data.start + timedelta(days=burn_in_days), test.start)
    plan_folds = []
    for index in range(1, folds + 1):
        validation_end = test.start - maturity - timedelta(days=(index - 1) * fold_days)
        validation = TimeWindow(
            validation_end - timedelta(days=fold_days), validation_end
        )
        if validation.start <= train.start:
            raise SplitError(
                f"fold {index} validates from {validation.start.date()}, but training "
                f"starts on {train.start.date()}, so the fold has no training days; "
                "lower train.folds, train.fold_days, train.maturity_days or "
                "train.burn_in_days, or move train.cutoff later"
            )
        plan_folds.append(
            Fold(index, TimeWindow(train.start, validation.start), validation)
        )
    return WindowPlan(data, train, test, tuple(plan_folds), maturity)


def select_window(frame: pl.DataFrame, window: TimeWindow) -> pl.DataFrame:
    """Return the rows with ``window.start <= timestamp < window.end``, in order."""
    timestamps = pl.col(TIME_COLUMN)
    return frame.filter((timestamps >= window.start) & (timestamps < window.end))


def label_time_expr(frame: pl.DataFrame, *, maturity: timedelta) -> pl.Expr:
    """Return when each fraud label became available; null for legitimate rows.

    A fraud without ``label_available_at`` counts as labelled ``maturity`` after its
    transaction.
    """
    fallback = pl.col(TIME_COLUMN) + maturity
    if LABEL_TIME_COLUMN in frame.columns:
        known = pl.coalesce(pl.col(LABEL_TIME_COLUMN), fallback)
    else:
        known = fallback
    return pl.when(pl.col(LABEL_COLUMN)).then(known).otherwise(None)


def delay_aware_rows(
    frame: pl.DataFrame,
    window: TimeWindow,
    *,
    known_at: datetime,
    maturity: timedelta,
) -> pl.DataFrame:
    """Return the rows of ``window`` whose label is known at ``known_at``.

    Adds ``target`` (Int8): 1 for a fraud labelled by ``known_at``, 0 for a row older
    than ``maturity`` at ``known_at`` without such a label. Other rows are dropped.
    """
    label_time = label_time_expr(frame, maturity=maturity)
    known_fraud = label_time.is_not_null() & (label_time <= known_at)
    mature = pl.col(TIME_COLUMN) <= known_at - maturity
    return (
        select_window(frame, window)
        .with_columns(known_fraud.fill_null(False).alias("_known_fraud"))
        .filter(pl.col("_known_fraud") | mature)
        .with_columns(pl.col("_known_fraud").cast(pl.Int8).alias(TARGET_COLUMN))
        .drop("_known_fraud")
    )


def known_compromised_cards(
    frame: pl.DataFrame, *, known_at: datetime, maturity: timedelta
) -> pl.Series:
    """Return the sorted ids of cards with a fraud label available by ``known_at``.

    Only transactions before ``known_at`` count.
    """
    label_time = label_time_expr(frame, maturity=maturity)
    cards = frame.filter(
        (pl.col(TIME_COLUMN) < known_at)
        & label_time.is_not_null()
        & (label_time <= known_at)
    )[CARD_COLUMN]
    return cards.unique().sort()


def label_counts(rows: pl.DataFrame) -> dict[str, int]:
    """Return rows, delay-aware frauds and the frauds counted as legitimate."""
    hidden = rows.filter(pl.col(LABEL_COLUMN) & (pl.col(TARGET_COLUMN) == 0)).height
    return {
        "rows": rows.height,
        "frauds": int(rows[TARGET_COLUMN].sum()),
        "unlabelled_frauds": hidden,
    }
