"""Point-in-time features per transaction, for training tables and scoring requests.

A transaction's features use only transactions ordered strictly before it. The order
is ``(timestamp, transaction_id)``: of two transactions with the same timestamp, the
one with the smaller id comes first and counts as history of the other, never the
reverse. Both paths keep this rule: the offline table sorts by it, and the online path
(``cardfraud.online``) processes transactions in this order. A window of ``w`` hours at
time ``t`` contains the earlier-ordered transactions with a timestamp in
``(t - w, t]``. Fraud labels count only once they were available strictly before ``t``.

Every feature is numeric (Int64 or Float64) and never null: where no history exists, a
documented default is used. Money stays in integer minor units where it is summed.
Windows and the label delay come from ``FeaturesParams``.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from cardfraud.params import FeaturesParams
from cardfraud.schema import CHANNELS

logger = logging.getLogger(__name__)

KEY_COLUMNS: tuple[str, ...] = ("transaction_id", "card_id", "merchant_id", "timestamp")
ORDER_COLUMNS: tuple[str, ...] = ("timestamp", "transaction_id")
"""Global order of transactions; ties on timestamp are broken by transaction id."""
LABEL_COLUMN = "is_fraud"
LABEL_OUTPUT_COLUMNS: tuple[str, ...] = (
    "is_fraud",
    "label_available_at",
    "fraud_scenario",
)

NO_HISTORY_SECONDS = 315_360_000.0
"""Seconds since the previous transaction for a card's first one (ten years)."""
NO_DISTANCE_KM = -1.0
"""Distance from home where the customer's or the merchant's coordinates are missing."""
UNKNOWN_CODE = -1
"""Code of a missing channel, mcc or card-present flag."""
MIN_STD_MINOR = 1.0
"""Floor of the card's amount standard deviation in the z-score, in minor units."""
EARTH_RADIUS_KM = 6371.0088

DISTINCT_ATTRIBUTES: dict[str, str] = {
    "merchants": "merchant_id",
    "countries": "merchant_country",
    "devices": "device_id",
}
"""Name part of each distinct-count feature and the transaction column it counts."""
FIRST_TIME_ATTRIBUTES: dict[str, str] = {
    "first_time_merchant": "merchant_id",
    "first_time_device": "device_id",
    "first_time_country": "merchant_country",
}
"""Flag of a card's first use of a value and the transaction column it checks."""
NEW_VALUE_ATTRIBUTES: dict[str, str] = {
    "merchants": "first_time_merchant",
    "devices": "first_time_device",
    "countries": "first_time_country",
}
"""Name part of each new-value count feature and the first-use flag it sums."""
CARD_HISTORY_COLUMNS: tuple[str, ...] = (
    "card_prior_count",
    "card_amount_mean_prior",
    "card_amount_std_prior",
)
REQUEST_DERIVED_COLUMNS: tuple[str, ...] = (
    "amount_ratio_card_mean",
    "amount_zscore_card",
    "seconds_since_prev_card",
)
PAIR_COLUMNS: tuple[str, ...] = tuple(FIRST_TIME_ATTRIBUTES)
OWN_COLUMNS: tuple[str, ...] = (
    "distance_from_home_km",
    "log_amount",
    "hour_of_day",
    "day_of_week",
    "channel_code",
    "card_present",
    "cross_border",
    "mcc_code",
)
_INT_PREFIXES: tuple[str, ...] = (
    "card_count_",
    "card_amount_sum_",
    "card_distinct_",
    "card_new_",
    "merchant_count_",
    "first_time_",
)
_INT_NAMES: frozenset[str] = frozenset(
    {
        "card_prior_count",
        "hour_of_day",
        "day_of_week",
        "channel_code",
        "card_present",
        "cross_border",
        "mcc_code",
    }
)

_SEQ = "_seq"


def card_window_columns(windows_hours: list[int] | tuple[int, ...]) -> list[str]:
    """Return the card window feature names, count then amount sum for each window."""
    names = []
    for hours in windows_hours:
        names += [f"card_count_{hours}h", f"card_amount_sum_{hours}h"]
    return names


def card_distinct_columns(distinct_windows_hours: list[int]) -> list[str]:
    """Return ``card_distinct_<merchants|countries|devices>_<w>h`` for each window."""
    return [
        f"card_distinct_{name}_{hours}h"
        for hours in distinct_windows_hours
        for name in DISTINCT_ATTRIBUTES
    ]


def card_new_value_columns(new_value_windows_hours: list[int]) -> list[str]:
    """Return ``card_new_<merchants|devices|countries>_<w>h`` for each window."""
    return [
        f"card_new_{name}_{hours}h"
        for hours in new_value_windows_hours
        for name in NEW_VALUE_ATTRIBUTES
    ]


def merchant_columns(params: FeaturesParams) -> list[str]:
    """Return the merchant count features, then the merchant fraud rate features."""
    counts = [f"merchant_count_{hours}h" for hours in params.merchant_windows_hours]
    rates = [
        f"merchant_fraud_rate_{days}d" for days in params.merchant_fraud_windows_days
    ]
    return counts + rates


def card_feature_columns(params: FeaturesParams) -> list[str]:
    """Return the features computed from the card's history."""
    return (
        card_window_columns(params.windows_hours)
        + list(CARD_HISTORY_COLUMNS)
        + card_distinct_columns(params.distinct_windows_hours)
        + card_new_value_columns(params.new_value_windows_hours)
    )


def feature_columns(params: FeaturesParams) -> list[str]:
    """Return the model's feature columns, in the order of the feature table.

    Args:
        params: Feature parameters; each window adds its features, for example
            ``windows_hours`` adds ``card_count_<w>h`` and ``card_amount_sum_<w>h``.
    """
    return (
        card_feature_columns(params)
        + merchant_columns(params)
        + list(REQUEST_DERIVED_COLUMNS)
        + list(PAIR_COLUMNS)
        + list(OWN_COLUMNS)
    )


def feature_dtype(name: str) -> pl.DataType:
    """Return the polars dtype of a feature: Int64 for counts, sums, flags and codes."""
    if name in _INT_NAMES or name.startswith(_INT_PREFIXES):
        return pl.Int64()
    return pl.Float64()


def card_state_window_hours(params: FeaturesParams) -> int:
    """Return the longest card window, which bounds the card's recent events."""
    return max(
        [
            *params.windows_hours,
            *params.distinct_windows_hours,
            *params.new_value_windows_hours,
        ]
    )


def merchant_state_window_hours(params: FeaturesParams) -> int:
    """Return the longest merchant window, which bounds the merchant's recent events."""
    fraud_hours = [24 * days for days in params.merchant_fraud_windows_days]
    return max([*params.merchant_windows_hours, *fraud_hours])


def check_params(params: FeaturesParams) -> None:
    """Check that every window list contains distinct positive lengths.

    Raises:
        ValueError: A list repeats a window or has a length <= 0; the message names
            the ``features`` key.
    """
    lists = {
        "windows_hours": params.windows_hours,
        "distinct_windows_hours": params.distinct_windows_hours,
        "new_value_windows_hours": params.new_value_windows_hours,
        "merchant_windows_hours": params.merchant_windows_hours,
        "merchant_fraud_windows_days": params.merchant_fraud_windows_days,
    }
    for key, windows in lists.items():
        if len(set(windows)) != len(windows):
            raise ValueError(
                f"features.{key} {windows} repeats a window; list each window "
                "length once"
            )
        if any(length <= 0 for length in windows):
            raise ValueError(
                f"features.{key} {windows} contains a length <= 0; use positive lengths"
            )


def describe_features(params: FeaturesParams) -> dict[str, dict[str, Any]]:
    """Describe how each feature is computed, for the lineage file.

    Returns:
        Feature name to ``{"transformation": str, "parameters": dict}``, covering
        every name of ``feature_columns(params)``.
    """
    descriptions: dict[str, dict[str, Any]] = {}
    for hours in params.windows_hours:
        window = {"window_hours": hours, "group": "card_id"}
        descriptions[f"card_count_{hours}h"] = _describe(
            "count of the card's earlier transactions in the window", window
        )
        descriptions[f"card_amount_sum_{hours}h"] = _describe(
            "sum of amount_minor of the card's earlier transactions in the window",
            window,
        )
    for hours in params.distinct_windows_hours:
        for name, column in DISTINCT_ATTRIBUTES.items():
            descriptions[f"card_distinct_{name}_{hours}h"] = _describe(
                f"distinct non-null {column} among the card's earlier transactions "
                "in the window",
                {"window_hours": hours, "group": "card_id", "column": column},
            )
    for hours in params.new_value_windows_hours:
        for name, flag in NEW_VALUE_ATTRIBUTES.items():
            descriptions[f"card_new_{name}_{hours}h"] = _describe(
                f"count of the card's earlier transactions in the window whose "
                f"{flag} is 1",
                {"window_hours": hours, "group": "card_id", "flag": flag},
            )
    for hours in params.merchant_windows_hours:
        descriptions[f"merchant_count_{hours}h"] = _describe(
            "count of the merchant's earlier transactions in the window",
            {"window_hours": hours, "group": "merchant_id"},
        )
    for days in params.merchant_fraud_windows_days:
        descriptions[f"merchant_fraud_rate_{days}d"] = _describe(
            "frauds with a label available before the transaction divided by the "
            "merchant's earlier transactions in the window, 0 without history",
            {
                "window_days": days,
                "group": "merchant_id",
                "label_time": "label_available_at, else timestamp + label_delay_days",
                "label_delay_days": params.label_delay_days,
            },
        )
    descriptions.update(
        card_prior_count=_describe("count of all the card's earlier transactions"),
        card_amount_mean_prior=_describe(
            "mean amount_minor of the card's earlier transactions, 0 without history"
        ),
        card_amount_std_prior=_describe(
            "population standard deviation of the card's earlier amount_minor, "
            "0 without history; computed from integer sums of the amounts minus "
            "the card's first amount",
        ),
        amount_ratio_card_mean=_describe(
            "amount_minor / card_amount_mean_prior, 1 without history"
        ),
        amount_zscore_card=_describe(
            "(amount_minor - card_amount_mean_prior) / max(card_amount_std_prior, "
            "min_std_minor), 0 without history",
            {"min_std_minor": MIN_STD_MINOR},
        ),
        seconds_since_prev_card=_describe(
            "seconds since the card's previous transaction",
            {"no_history_seconds": NO_HISTORY_SECONDS},
        ),
        first_time_merchant=_describe("1 if the card never paid this merchant before"),
        first_time_device=_describe(
            "1 if device_id is set and the card never used it before"
        ),
        first_time_country=_describe(
            "1 if merchant_country is set and the card never paid in it before"
        ),
        distance_from_home_km=_describe(
            "haversine distance between customer and merchant coordinates",
            {"earth_radius_km": EARTH_RADIUS_KM, "missing_value": NO_DISTANCE_KM},
        ),
        log_amount=_describe("ln(1 + amount_minor / 100)"),
        hour_of_day=_describe("UTC hour of timestamp, 0-23"),
        day_of_week=_describe("ISO weekday of timestamp in UTC, Monday 1 to Sunday 7"),
        channel_code=_describe(
            "index of channel in the schema's channel list",
            {"channels": list(CHANNELS), "missing_value": UNKNOWN_CODE},
        ),
        card_present=_describe(
            "card_present as 0 or 1", {"missing_value": UNKNOWN_CODE}
        ),
        cross_border=_describe(
            "1 if merchant_country differs from card_country, 0 if equal or missing"
        ),
        mcc_code=_describe("mcc as an integer", {"missing_value": UNKNOWN_CODE}),
    )
    return {name: descriptions[name] for name in feature_columns(params)}


def _describe(transformation: str, parameters: dict[str, Any] | None = None) -> dict:
    return {"transformation": transformation, "parameters": parameters or {}}


def build_feature_table(
    transactions: pl.DataFrame, params: FeaturesParams
) -> pl.DataFrame:
    """Compute the point-in-time features of every transaction.

    Args:
        transactions: Canonical transactions with ``is_fraud``; ``label_available_at``
            is optional (without it a fraud label counts ``params.label_delay_days``
            after the transaction). Transaction ids must be unique.
        params: Window lengths and the fallback label delay in days.

    Returns:
        One row per transaction, sorted by ``(timestamp, transaction_id)``: the key
        columns, the features of ``feature_columns(params)`` and the label columns
        that are present.

    Raises:
        ValueError: ``is_fraud`` is missing or a window list repeats a value or
            holds a length <= 0.
    """
    _check_inputs(transactions, params)
    frame = prepare_transactions(transactions, label_delay_days=params.label_delay_days)
    frame = _add_card_features(frame, params)
    frame = _add_merchant_features(frame, params)
    frame = _add_own_features(frame)
    labels = [name for name in LABEL_OUTPUT_COLUMNS if name in transactions.columns]
    columns = [*KEY_COLUMNS, *feature_columns(params), *labels]
    result = frame.sort(_SEQ).select(columns)
    logger.info("built %d feature rows with %d columns", result.height, len(columns))
    return result


def _check_inputs(transactions: pl.DataFrame, params: FeaturesParams) -> None:
    if LABEL_COLUMN not in transactions.columns:
        raise ValueError(
            "column 'is_fraud' is missing: the merchant fraud rate needs labels; "
            "load transactions with labels (read_transactions) before building features"
        )
    check_params(params)


def label_time_expr(transactions: pl.DataFrame, *, label_delay_days: int) -> pl.Expr:
    """Return the time each label became available, never before its transaction.

    ``label_available_at`` where set, else ``timestamp + label_delay_days``.
    """
    fallback = pl.col("timestamp") + timedelta(days=label_delay_days)
    if "label_available_at" in transactions.columns:
        label_time = pl.coalesce(pl.col("label_available_at"), fallback)
    else:
        label_time = fallback
    # A label cannot be known before its transaction happened; clamping keeps a bad
    # label time from leaking into transactions ordered before it.
    return pl.max_horizontal(label_time, pl.col("timestamp"))


def prepare_transactions(
    transactions: pl.DataFrame, *, label_delay_days: int
) -> pl.DataFrame:
    """Sort by the global order, number the rows ``_seq`` and add ``_label_time``."""
    label_time = label_time_expr(transactions, label_delay_days=label_delay_days)
    frame = transactions
    for column in ("device_id", "merchant_country"):
        if column not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(column))
    return (
        frame.sort(*ORDER_COLUMNS)
        .with_row_index(_SEQ)
        .with_columns(_label_time=label_time)
    )


def _window_bounds(
    frame: pl.DataFrame, *, group: str, hours: int, with_sum: bool
) -> pl.DataFrame:
    """Count (and sum amounts of) each row's group rows with timestamp <= t - hours.

    ``frame`` must be sorted by ``(group, _seq)`` and carry ``_pos`` (0-based position
    in the group) and, with ``with_sum``, ``_cum_amount`` (inclusive running sum).

    Returns:
        Columns ``_seq``, ``_before`` (Int64) and, with ``with_sum``, ``_before_sum``.
    """
    values = [pl.col("_pos").last().alias("_before") + 1]
    if with_sum:
        values.append(pl.col("_cum_amount").last().alias("_before_sum"))
    # The last row of a (group, timestamp) run carries the inclusive totals of the run.
    right = (
        frame.group_by(group, "timestamp", maintain_order=True)
        .agg(values)
        .sort("timestamp")
    )
    left = frame.select(
        _SEQ, group, _bound=pl.col("timestamp") - timedelta(hours=hours)
    ).sort("_bound")
    # Both sides are sorted by their join key; polars cannot verify sortedness when
    # "by" groups are given, so the check is off.
    joined = left.join_asof(
        right,
        left_on="_bound",
        right_on="timestamp",
        by=group,
        strategy="backward",
        check_sortedness=False,
    )
    outputs = [_SEQ, pl.col("_before").fill_null(0).cast(pl.Int64)]
    if with_sum:
        outputs.append(pl.col("_before_sum").fill_null(0).cast(pl.Int64))
    return joined.select(outputs)


def _add_card_features(frame: pl.DataFrame, params: FeaturesParams) -> pl.DataFrame:
    """Add the card window, history, distinct-count and first-use features."""
    amount = pl.col("amount_minor")
    shifted = amount - amount.first().over("card_id")
    card = frame.sort("card_id", _SEQ).with_columns(
        _pos=pl.int_range(pl.len(), dtype=pl.Int64).over("card_id"),
        _cum_amount=amount.cum_sum().over("card_id"),
        _shifted=shifted,
        _prev_ts=pl.col("timestamp").shift(1).over("card_id"),
    )
    card = card.with_columns(
        _sum_prior=pl.col("_cum_amount") - amount,
        _shifted_sum_prior=pl.col("_shifted").cum_sum().over("card_id")
        - pl.col("_shifted"),
        _shifted_square_prior=(pl.col("_shifted") ** 2).cum_sum().over("card_id")
        - pl.col("_shifted") ** 2,
    )
    for hours in params.windows_hours:
        bounds = _window_bounds(card, group="card_id", hours=hours, with_sum=True)
        card = card.join(bounds, on=_SEQ, how="left").with_columns(
            (pl.col("_pos") - pl.col("_before")).alias(f"card_count_{hours}h"),
            (pl.col("_sum_prior") - pl.col("_before_sum")).alias(
                f"card_amount_sum_{hours}h"
            ),
        )
        card = card.drop("_before", "_before_sum")
    for hours in params.distinct_windows_hours:
        card = card.join(_distinct_counts(card, hours=hours), on=_SEQ, how="left")
    card = _add_card_history(card)
    card = _add_first_time_flags(card)
    return _add_new_value_counts(card, params)


def _distinct_counts(card: pl.DataFrame, *, hours: int) -> pl.DataFrame:
    """Count distinct merchants, countries and devices in each row's card window.

    Each row's window is the position range ``[_before, _pos)`` in its card. The
    ranges are exploded and joined back to the card's rows, so the cost grows with
    the sum of all window sizes. Nulls are not counted.
    """
    bounds = _window_bounds(card, group="card_id", hours=hours, with_sum=False)
    ranges = card.select(_SEQ, "card_id", "_pos").join(bounds, on=_SEQ, how="left")
    members = (
        ranges.select(_SEQ, "card_id", _pos=pl.int_ranges("_before", "_pos"))
        .explode("_pos")
        .drop_nulls("_pos")
    )
    columns = list(DISTINCT_ATTRIBUTES.values())
    values = card.select("card_id", "_pos", *columns)
    names = {
        column: f"card_distinct_{name}_{hours}h"
        for name, column in DISTINCT_ATTRIBUTES.items()
    }
    counts = (
        members.join(values, on=["card_id", "_pos"], how="inner")
        .group_by(_SEQ)
        .agg(
            pl.col(column).drop_nulls().n_unique().alias(name)
            for column, name in names.items()
        )
    )
    return (
        card.select(_SEQ)
        .join(counts, on=_SEQ, how="left")
        .select(
            _SEQ, *(pl.col(name).fill_null(0).cast(pl.Int64) for name in names.values())
        )
    )


def _add_card_history(card: pl.DataFrame) -> pl.DataFrame:
    """Add prior count, mean, standard deviation, ratio, z-score and time gap.

    The variance comes from integer sums of ``amount - first amount of the card``:
    ``(S2 - S1 * S1 / n) / n``. The sums are exact, so the online path reproduces the
    same float operations bit for bit, and the shift keeps the subtraction from
    cancelling when the amounts are large against their spread.
    """
    count = pl.col("_pos")
    amount = pl.col("amount_minor").cast(pl.Float64)
    mean = pl.col("_sum_prior").cast(pl.Float64) / count
    shifted_sum = pl.col("_shifted_sum_prior").cast(pl.Float64)
    variance = (
        pl.col("_shifted_square_prior").cast(pl.Float64)
        - shifted_sum * shifted_sum / count
    ) / count
    std = pl.when(variance > 0).then(variance.sqrt()).otherwise(0.0)
    card = card.with_columns(
        card_prior_count=count,
        card_amount_mean_prior=pl.when(count > 0).then(mean).otherwise(0.0),
        card_amount_std_prior=pl.when(count > 0).then(std).otherwise(0.0),
    )
    gap = (pl.col("timestamp") - pl.col("_prev_ts")).dt.total_microseconds() / 1e6
    return card.with_columns(
        amount_ratio_card_mean=pl.when(count > 0)
        .then(amount / pl.col("card_amount_mean_prior"))
        .otherwise(1.0),
        amount_zscore_card=pl.when(count > 0)
        .then(
            (amount - pl.col("card_amount_mean_prior"))
            / pl.max_horizontal(pl.col("card_amount_std_prior"), MIN_STD_MINOR)
        )
        .otherwise(0.0),
        seconds_since_prev_card=gap.fill_null(NO_HISTORY_SECONDS).cast(pl.Float64),
    )


def _add_first_time_flags(card: pl.DataFrame) -> pl.DataFrame:
    """Flag a card's first transaction at a merchant, device and country (0 or 1)."""
    flags = {}
    for name, column in FIRST_TIME_ATTRIBUTES.items():
        rank = pl.int_range(pl.len()).over("card_id", column)
        flags[name] = (pl.col(column).is_not_null() & (rank == 0)).cast(pl.Int64)
    return card.with_columns(**flags)


def _add_new_value_counts(card: pl.DataFrame, params: FeaturesParams) -> pl.DataFrame:
    """Add the counts of first uses among the card's earlier transactions per window.

    ``card`` must be sorted by ``(card_id, _seq)`` and carry ``_pos`` and the
    first-use flags. A window's count is the running flag sum before the row minus
    the running sum before the window's first row (position ``_before``).
    """
    running = {
        f"_new_{name}": pl.col(flag).cum_sum().over("card_id") - pl.col(flag)
        for name, flag in NEW_VALUE_ATTRIBUTES.items()
    }
    card = card.with_columns(**running)
    outside = card.select(
        "card_id",
        _before=pl.col("_pos"),
        **{f"_out_{name}": pl.col(f"_new_{name}") for name in NEW_VALUE_ATTRIBUTES},
    )
    for hours in params.new_value_windows_hours:
        bounds = _window_bounds(card, group="card_id", hours=hours, with_sum=False)
        counts = (
            card.select(_SEQ, "card_id", *running)
            .join(bounds, on=_SEQ, how="left")
            .join(outside, on=["card_id", "_before"], how="left")
            .select(
                _SEQ,
                *(
                    (pl.col(f"_new_{name}") - pl.col(f"_out_{name}"))
                    .cast(pl.Int64)
                    .alias(f"card_new_{name}_{hours}h")
                    for name in NEW_VALUE_ATTRIBUTES
                ),
            )
        )
        card = card.join(counts, on=_SEQ, how="left")
    return card.drop(*running)


def _add_merchant_features(frame: pl.DataFrame, params: FeaturesParams) -> pl.DataFrame:
    """Add merchant counts over the windows and the known fraud rates."""
    merchant = frame.sort("merchant_id", _SEQ).with_columns(
        _pos=pl.int_range(pl.len(), dtype=pl.Int64).over("merchant_id")
    )
    fraud_hours = [24 * days for days in params.merchant_fraud_windows_days]
    helpers = []
    for hours in sorted({*params.merchant_windows_hours, *fraud_hours}):
        bounds = _window_bounds(
            merchant, group="merchant_id", hours=hours, with_sum=False
        )
        name = f"_merchant_count_{hours}h"
        merchant = merchant.join(bounds, on=_SEQ, how="left").with_columns(
            (pl.col("_pos") - pl.col("_before")).alias(name)
        )
        merchant = merchant.drop("_before")
        helpers.append(name)
    merchant = merchant.with_columns(
        pl.col(f"_merchant_count_{hours}h").alias(f"merchant_count_{hours}h")
        for hours in params.merchant_windows_hours
    )
    for days in params.merchant_fraud_windows_days:
        known = _known_fraud_counts(merchant, hours=24 * days)
        total = pl.col(f"_merchant_count_{24 * days}h")
        merchant = merchant.join(known, on=_SEQ, how="left").with_columns(
            pl.when(total > 0)
            .then(pl.col("_known_frauds") / total)
            .otherwise(0.0)
            .alias(f"merchant_fraud_rate_{days}d")
        )
        merchant = merchant.drop("_known_frauds")
    return merchant.drop("_pos", *helpers)


def _known_fraud_counts(merchant: pl.DataFrame, *, hours: int) -> pl.DataFrame:
    """Count the merchant's frauds in the window whose label was known before each row.

    A fraud j counts for row i when ``label_time_j < t_i < timestamp_j + window``, so
    the count is (labels known before t_i) minus (windows ended at or before t_i),
    taken over frauds whose label arrived before their window ended.
    """
    window = timedelta(hours=hours)
    frauds = merchant.filter(pl.col("is_fraud")).select(
        "merchant_id", _start="_label_time", _end=pl.col("timestamp") + window
    )
    frauds = frauds.filter(pl.col("_start") < pl.col("_end"))
    starts = _event_counts(merchant, frauds, event="_start", strict=True)
    ends = _event_counts(merchant, frauds, event="_end", strict=False)
    return starts.join(ends, on=_SEQ).select(
        _SEQ, _known_frauds=pl.col("_start") - pl.col("_end")
    )


def _event_counts(
    merchant: pl.DataFrame, frauds: pl.DataFrame, *, event: str, strict: bool
) -> pl.DataFrame:
    """Count a merchant's events before (``strict``) or at each row's timestamp."""
    events = (
        frauds.group_by("merchant_id", event)
        .agg(_n=pl.len())
        .sort("merchant_id", event)
        .with_columns(_n=pl.col("_n").cum_sum().over("merchant_id"))
        .sort(event)
    )
    left = merchant.select(_SEQ, "merchant_id", "timestamp").sort("timestamp")
    joined = left.join_asof(
        events,
        left_on="timestamp",
        right_on=event,
        by="merchant_id",
        strategy="backward",
        allow_exact_matches=not strict,
        check_sortedness=False,
    )
    return joined.select(_SEQ, pl.col("_n").fill_null(0).cast(pl.Int64).alias(event))


def _add_own_features(frame: pl.DataFrame) -> pl.DataFrame:
    """Add the features computed from the transaction's own columns."""
    return frame.with_columns(
        distance_from_home_km=_distance_expr(frame),
        log_amount=(pl.col("amount_minor").cast(pl.Float64) / 100.0).log1p(),
        hour_of_day=pl.col("timestamp").dt.hour().cast(pl.Int64),
        day_of_week=pl.col("timestamp").dt.weekday().cast(pl.Int64),
        channel_code=_optional(frame, "channel", _channel_code_expr(), UNKNOWN_CODE),
        card_present=_optional(
            frame, "card_present", pl.col("card_present").cast(pl.Int64), UNKNOWN_CODE
        ),
        cross_border=_optional_pair(frame, "merchant_country", "card_country"),
        mcc_code=_optional(
            frame, "mcc", pl.col("mcc").cast(pl.Int64, strict=False), UNKNOWN_CODE
        ),
    )


def _optional(frame: pl.DataFrame, column: str, expr: pl.Expr, default: int) -> pl.Expr:
    if column not in frame.columns:
        return pl.lit(default, dtype=pl.Int64)
    return expr.fill_null(default).cast(pl.Int64)


def _optional_pair(frame: pl.DataFrame, left: str, right: str) -> pl.Expr:
    if left not in frame.columns or right not in frame.columns:
        return pl.lit(0, dtype=pl.Int64)
    return (pl.col(left) != pl.col(right)).fill_null(False).cast(pl.Int64)


def _channel_code_expr() -> pl.Expr:
    return pl.col("channel").replace_strict(
        {name: code for code, name in enumerate(CHANNELS)},
        default=UNKNOWN_CODE,
        return_dtype=pl.Int64,
    )


def _distance_expr(frame: pl.DataFrame) -> pl.Expr:
    """Great-circle distance from the customer's home to the merchant, in km."""
    needed = ("customer_lat", "customer_lon", "merchant_lat", "merchant_lon")
    if any(name not in frame.columns for name in needed):
        return pl.lit(NO_DISTANCE_KM, dtype=pl.Float64)
    lat1, lon1, lat2, lon2 = (pl.col(name).radians() for name in needed)
    half = ((lat2 - lat1) / 2).sin() ** 2 + lat1.cos() * lat2.cos() * (
        (lon2 - lon1) / 2
    ).sin() ** 2
    distance = 2 * EARTH_RADIUS_KM * half.sqrt().arcsin()
    return distance.fill_null(NO_DISTANCE_KM).fill_nan(NO_DISTANCE_KM)


def check_transaction(transaction: dict[str, Any]) -> tuple[datetime, int]:
    """Return a scoring request's timestamp and amount after checking both.

    Raises:
        ValueError: ``timestamp`` is naive or missing, or ``amount_minor`` is not a
            positive int.
    """
    timestamp = transaction.get("timestamp")
    if not isinstance(timestamp, datetime) or timestamp.utcoffset() is None:
        raise ValueError(
            f"transaction field 'timestamp' is {timestamp!r}: expected a "
            "timezone-aware datetime; send UTC times with an offset"
        )
    amount = transaction.get("amount_minor")
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise ValueError(
            f"transaction field 'amount_minor' is {amount!r}: expected a positive int "
            "in minor units"
        )
    return timestamp, amount


def transaction_own_features(
    transaction: dict[str, Any], *, timestamp: datetime, amount: int
) -> dict[str, float]:
    """Compute the features of ``OWN_COLUMNS`` from one transaction's own fields.

    The same definitions as the feature table's, for one request: ``timestamp`` is
    UTC-aware and ``amount`` in minor units.
    """
    utc = timestamp.astimezone(UTC)
    channel = transaction.get("channel")
    present = transaction.get("card_present")
    merchant_country = transaction.get("merchant_country")
    card_country = transaction.get("card_country")
    mcc = transaction.get("mcc")
    return {
        "distance_from_home_km": _haversine_km(transaction),
        "log_amount": math.log1p(amount / 100.0),
        "hour_of_day": float(utc.hour),
        "day_of_week": float(utc.isoweekday()),
        "channel_code": float(
            CHANNELS.index(channel) if channel in CHANNELS else UNKNOWN_CODE
        ),
        "card_present": float(UNKNOWN_CODE if present is None else int(bool(present))),
        "cross_border": float(
            merchant_country is not None
            and card_country is not None
            and merchant_country != card_country
        ),
        "mcc_code": float(
            int(mcc) if isinstance(mcc, str) and mcc.isascii() and mcc.isdigit() else -1
        ),
    }


def _haversine_km(transaction: dict[str, Any]) -> float:
    names = ("customer_lat", "customer_lon", "merchant_lat", "merchant_lon")
    coordinates = [transaction.get(name) for name in names]
    if any(value is None or math.isnan(value) for value in coordinates):
        return NO_DISTANCE_KM
    lat1, lon1, lat2, lon2 = (math.radians(value) for value in coordinates)
    half = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(half))
