"""Point-in-time features per transaction, for training tables and scoring requests.

A transaction's features use only transactions ordered strictly before it. The order
is ``(timestamp, transaction_id)``: of two transactions with the same timestamp, the
one with the smaller id comes first and counts as history of the other, never the
reverse. A window of ``w`` hours at time ``t`` contains the earlier-ordered
transactions with a timestamp in ``(t - w, t]``. Fraud labels count only once they
were available strictly before ``t``.

Every feature is numeric (Int64 or Float64) and never null: where no history exists, a
documented default is used. Money stays in integer minor units where it is summed.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import polars as pl

from cardfraud.params import FeaturesParams
from cardfraud.schema import CHANNELS

logger = logging.getLogger(__name__)

KEY_COLUMNS: tuple[str, ...] = ("transaction_id", "card_id", "merchant_id", "timestamp")
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

DISTINCT_MERCHANTS_WINDOW_HOURS = 24
MERCHANT_COUNT_WINDOWS_HOURS: tuple[int, ...] = (24, 168)
MERCHANT_FRAUD_WINDOW_HOURS = 720

CARD_HISTORY_COLUMNS: tuple[str, ...] = (
    "card_prior_count",
    "card_amount_mean_prior",
    "card_amount_std_prior",
    "card_distinct_merchants_24h",
)
CARD_STATE_COLUMN = "card_last_seen_epoch_s"
"""Epoch seconds of the card's latest transaction up to and including the row.

It describes the state after the row, so it is an online input and never a model
feature.
"""
MERCHANT_COLUMNS: tuple[str, ...] = (
    "merchant_count_24h",
    "merchant_count_168h",
    "merchant_fraud_rate_30d",
)
REQUEST_DERIVED_COLUMNS: tuple[str, ...] = (
    "amount_ratio_card_mean",
    "amount_zscore_card",
    "seconds_since_prev_card",
)
PAIR_COLUMNS: tuple[str, ...] = ("first_time_merchant", "first_time_device")
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
INT_FEATURES: frozenset[str] = frozenset(
    {
        "card_prior_count",
        "card_distinct_merchants_24h",
        "merchant_count_24h",
        "merchant_count_168h",
        "first_time_merchant",
        "first_time_device",
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


def card_feature_columns(params: FeaturesParams) -> list[str]:
    """Return the model features stored per card in the feature store."""
    return card_window_columns(params.windows_hours) + list(CARD_HISTORY_COLUMNS)


def feature_columns(params: FeaturesParams) -> list[str]:
    """Return the model's feature columns, in the order of the feature table.

    Args:
        params: Feature parameters; each of ``windows_hours`` adds ``card_count_<w>h``
            and ``card_amount_sum_<w>h``.
    """
    return (
        card_feature_columns(params)
        + list(MERCHANT_COLUMNS)
        + list(REQUEST_DERIVED_COLUMNS)
        + list(PAIR_COLUMNS)
        + list(OWN_COLUMNS)
    )


def feature_dtype(name: str) -> pl.DataType:
    """Return the polars dtype of a feature: Int64 for counts, sums, flags and codes."""
    if name in INT_FEATURES or name.startswith(("card_count_", "card_amount_sum_")):
        return pl.Int64()
    return pl.Float64()


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
    descriptions.update(
        card_prior_count=_describe("count of all the card's earlier transactions"),
        card_amount_mean_prior=_describe(
            "mean amount_minor of the card's earlier transactions, 0 without history"
        ),
        card_amount_std_prior=_describe(
            "population standard deviation of the card's earlier amount_minor, "
            "0 without history"
        ),
        card_distinct_merchants_24h=_describe(
            "distinct merchant_id among the card's earlier transactions in the window",
            {"window_hours": DISTINCT_MERCHANTS_WINDOW_HOURS},
        ),
        merchant_count_24h=_describe(
            "count of the merchant's earlier transactions in the window",
            {"window_hours": 24, "group": "merchant_id"},
        ),
        merchant_count_168h=_describe(
            "count of the merchant's earlier transactions in the window",
            {"window_hours": 168, "group": "merchant_id"},
        ),
        merchant_fraud_rate_30d=_describe(
            "frauds with a label available before the transaction divided by the "
            "merchant's earlier transactions in the window, 0 without history",
            {
                "window_hours": MERCHANT_FRAUD_WINDOW_HOURS,
                "label_time": "label_available_at, else timestamp + label_delay_days",
                "label_delay_days": params.label_delay_days,
            },
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
        params: Window lengths in hours and the fallback label delay in days.

    Returns:
        One row per transaction, sorted by ``(timestamp, transaction_id)``: the key
        columns, the features of ``feature_columns(params)``, the online state column
        ``card_last_seen_epoch_s`` (Float64) and the label columns that are present.

    Raises:
        ValueError: ``is_fraud`` is missing or ``windows_hours`` repeats a value.
    """
    _check_inputs(transactions, params)
    frame = _prepare(transactions, label_delay_days=params.label_delay_days)
    frame = _add_card_features(frame, windows_hours=params.windows_hours)
    frame = _add_merchant_features(frame)
    frame = _add_own_features(frame)
    labels = [name for name in LABEL_OUTPUT_COLUMNS if name in transactions.columns]
    columns = [*KEY_COLUMNS, *feature_columns(params), CARD_STATE_COLUMN, *labels]
    result = frame.sort(_SEQ).select(columns)
    logger.info("built %d feature rows with %d features", result.height, len(columns))
    return result


def _check_inputs(transactions: pl.DataFrame, params: FeaturesParams) -> None:
    if LABEL_COLUMN not in transactions.columns:
        raise ValueError(
            "column 'is_fraud' is missing: the merchant fraud rate needs labels; "
            "load transactions with labels (read_transactions) before building features"
        )
    if len(set(params.windows_hours)) != len(params.windows_hours):
        raise ValueError(
            f"features.windows_hours {params.windows_hours} repeats a window; "
            "list each window length once"
        )
    if any(hours <= 0 for hours in params.windows_hours):
        raise ValueError(
            f"features.windows_hours {params.windows_hours} contains a length <= 0; "
            "use positive hours"
        )


def _prepare(transactions: pl.DataFrame, *, label_delay_days: int) -> pl.DataFrame:
    """Add the global order index and the time each label became available."""
    fallback = pl.col("timestamp") + timedelta(days=label_delay_days)
    if "label_available_at" in transactions.columns:
        label_time = pl.coalesce(pl.col("label_available_at"), fallback)
    else:
        label_time = fallback
    # A label cannot be known before its transaction happened; clamping keeps a bad
    # label time from leaking into transactions ordered before it.
    label_time = pl.max_horizontal(label_time, pl.col("timestamp"))
    return (
        transactions.sort("timestamp", "transaction_id")
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


def _add_card_features(
    frame: pl.DataFrame, *, windows_hours: list[int]
) -> pl.DataFrame:
    """Add the card window, history, pair and state features."""
    card = frame.sort("card_id", _SEQ).with_columns(
        _pos=pl.int_range(pl.len(), dtype=pl.Int64).over("card_id"),
        _cum_amount=pl.col("amount_minor").cum_sum().over("card_id"),
        _cum_square=(pl.col("amount_minor").cast(pl.Float64) ** 2)
        .cum_sum()
        .over("card_id"),
        _prev_ts=pl.col("timestamp").shift(1).over("card_id"),
    )
    card = card.with_columns(
        _sum_prior=pl.col("_cum_amount") - pl.col("amount_minor"),
        _square_prior=pl.col("_cum_square")
        - pl.col("amount_minor").cast(pl.Float64) ** 2,
    )
    for hours in windows_hours:
        bounds = _window_bounds(card, group="card_id", hours=hours, with_sum=True)
        card = card.join(bounds, on=_SEQ, how="left").with_columns(
            (pl.col("_pos") - pl.col("_before")).alias(f"card_count_{hours}h"),
            (pl.col("_sum_prior") - pl.col("_before_sum")).alias(
                f"card_amount_sum_{hours}h"
            ),
        )
        card = card.drop("_before", "_before_sum")
    card = card.join(_distinct_merchants(card), on=_SEQ, how="left")
    card = _add_card_history(card)
    return _add_pair_flags(card)


def _distinct_merchants(card: pl.DataFrame) -> pl.DataFrame:
    """Count distinct merchants among each row's card rows in the last 24 hours.

    Each row's window is the position range ``[_before, _pos)`` in its card. The
    ranges are exploded and joined back to merchants, so the cost grows with the sum
    of all window sizes.
    """
    bounds = _window_bounds(
        card, group="card_id", hours=DISTINCT_MERCHANTS_WINDOW_HOURS, with_sum=False
    )
    ranges = card.select(_SEQ, "card_id", "_pos").join(bounds, on=_SEQ, how="left")
    members = (
        ranges.select(_SEQ, "card_id", _pos=pl.int_ranges("_before", "_pos"))
        .explode("_pos")
        .drop_nulls("_pos")
    )
    merchants = card.select("card_id", "_pos", "merchant_id")
    counts = (
        members.join(merchants, on=["card_id", "_pos"], how="inner")
        .group_by(_SEQ)
        .agg(card_distinct_merchants_24h=pl.col("merchant_id").n_unique())
    )
    return (
        card.select(_SEQ)
        .join(counts, on=_SEQ, how="left")
        .select(_SEQ, pl.col("card_distinct_merchants_24h").fill_null(0).cast(pl.Int64))
    )


def _add_card_history(card: pl.DataFrame) -> pl.DataFrame:
    """Add prior count, mean, standard deviation, ratio, z-score and time gap."""
    count = pl.col("_pos")
    amount = pl.col("amount_minor").cast(pl.Float64)
    mean = pl.col("_sum_prior").cast(pl.Float64) / count
    variance = pl.col("_square_prior") / count - mean**2
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
        card_last_seen_epoch_s=(pl.col("timestamp").dt.epoch("us") / 1e6).cast(
            pl.Float64
        ),
    )


def _add_pair_flags(card: pl.DataFrame) -> pl.DataFrame:
    """Flag a card's first transaction at a merchant and on a device (0 or 1)."""
    merchant_rank = pl.int_range(pl.len()).over("card_id", "merchant_id")
    device_rank = pl.int_range(pl.len()).over("card_id", "device_id")
    has_device = (
        pl.col("device_id").is_not_null()
        if "device_id" in card.columns
        else pl.lit(False)
    )
    if "device_id" not in card.columns:
        device_rank = pl.lit(1)
    return card.with_columns(
        first_time_merchant=(merchant_rank == 0).cast(pl.Int64),
        first_time_device=(has_device & (device_rank == 0)).cast(pl.Int64),
    )


def _add_merchant_features(frame: pl.DataFrame) -> pl.DataFrame:
    """Add merchant counts over 24 h and 7 days and the 30-day known fraud rate."""
    merchant = frame.sort("merchant_id", _SEQ).with_columns(
        _pos=pl.int_range(pl.len(), dtype=pl.Int64).over("merchant_id")
    )
    for hours in (*MERCHANT_COUNT_WINDOWS_HOURS, MERCHANT_FRAUD_WINDOW_HOURS):
        bounds = _window_bounds(
            merchant, group="merchant_id", hours=hours, with_sum=False
        )
        merchant = merchant.join(bounds, on=_SEQ, how="left").with_columns(
            (pl.col("_pos") - pl.col("_before")).alias(f"_merchant_count_{hours}h")
        )
        merchant = merchant.drop("_before")
    known = _known_fraud_counts(merchant)
    total = pl.col(f"_merchant_count_{MERCHANT_FRAUD_WINDOW_HOURS}h")
    merchant = merchant.join(known, on=_SEQ, how="left").with_columns(
        merchant_count_24h=pl.col("_merchant_count_24h"),
        merchant_count_168h=pl.col("_merchant_count_168h"),
        merchant_fraud_rate_30d=pl.when(total > 0)
        .then(pl.col("_known_frauds") / total)
        .otherwise(0.0),
    )
    helpers = [f"_merchant_count_{hours}h" for hours in MERCHANT_COUNT_WINDOWS_HOURS]
    helper_total = f"_merchant_count_{MERCHANT_FRAUD_WINDOW_HOURS}h"
    return merchant.drop("_pos", "_known_frauds", helper_total, *helpers)


def _known_fraud_counts(merchant: pl.DataFrame) -> pl.DataFrame:
    """Count the merchant's 30-day frauds whose label was known before each row.

    A fraud j counts for row i when ``label_time_j < t_i < timestamp_j + 30 days``, so
    the count is (labels known before t_i) minus (windows ended at or before t_i),
    taken over frauds whose label arrived before their window ended.
    """
    window = timedelta(hours=MERCHANT_FRAUD_WINDOW_HOURS)
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


class RequestFeatures(NamedTuple):
    """Feature vector of one scoring request; unpacks as ``values, missing``.

    Attributes:
        values: Every feature of ``feature_columns(params)`` as a float.
        missing: Online inputs that were absent, None or NaN and got their
            no-history default, in input order.
    """

    values: dict[str, float]
    missing: list[str]


def online_input_columns(params: FeaturesParams) -> list[str]:
    """Return the card and merchant values that ``request_features`` reads."""
    return [*card_feature_columns(params), CARD_STATE_COLUMN, *MERCHANT_COLUMNS]


def request_features(
    transaction: dict[str, Any],
    online: dict[str, float | None],
    params: FeaturesParams,
) -> RequestFeatures:
    """Compute the feature vector of one scoring request.

    NOTE: The online store contains each card's and merchant's aggregates as of the
    last materialisation. They are the features of the latest materialised
    transaction, so they exclude that transaction itself and anything later. Request
    features are therefore staler than the training table's until aggregates are
    updated online.

    Args:
        transaction: Canonical columns of the transaction; ``timestamp`` is a
            UTC-aware datetime and ``amount_minor`` an int in minor units.
        online: Values by name from ``online_input_columns(params)``, plus optionally
            ``first_time_merchant`` and ``first_time_device`` for the card's pair
            history. None or absent means no value.
        params: The feature parameters the model was trained with.

    Returns:
        The features and the names of online inputs that fell back to defaults.

    Raises:
        ValueError: ``timestamp`` is naive or missing, or ``amount_minor`` is not a
            positive int.
    """
    timestamp, amount = _check_request(transaction)
    missing: list[str] = []

    def read(name: str, default: float) -> float:
        value = online.get(name)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            missing.append(name)
            return default
        return float(value)

    values: dict[str, float] = {}
    for name in card_feature_columns(params) + list(MERCHANT_COLUMNS):
        values[name] = read(name, 0.0)
    values.update(_request_history(values, amount=amount))
    last_seen = read(CARD_STATE_COLUMN, -1.0)
    values["seconds_since_prev_card"] = (
        timestamp.timestamp() - last_seen if last_seen >= 0 else NO_HISTORY_SECONDS
    )
    # NOTE: Pair history (card with merchant, card with device) is not part of the
    # card or merchant aggregates. Without a supplied value the flag assumes first use.
    values["first_time_merchant"] = read("first_time_merchant", 1.0)
    has_device = transaction.get("device_id") is not None
    values["first_time_device"] = read("first_time_device", float(has_device))
    values.update(_request_own(transaction, timestamp=timestamp, amount=amount))
    ordered = {name: values[name] for name in feature_columns(params)}
    if missing:
        logger.warning(
            "transaction %s: %d online value(s) missing, defaults used: %s",
            transaction.get("transaction_id"),
            len(missing),
            ", ".join(missing),
        )
    return RequestFeatures(values=ordered, missing=missing)


def _check_request(transaction: dict[str, Any]) -> tuple[datetime, int]:
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


def _request_history(values: dict[str, float], *, amount: int) -> dict[str, float]:
    count = values["card_prior_count"]
    mean = values["card_amount_mean_prior"]
    std = values["card_amount_std_prior"]
    if count <= 0 or mean <= 0:
        return {"amount_ratio_card_mean": 1.0, "amount_zscore_card": 0.0}
    return {
        "amount_ratio_card_mean": amount / mean,
        "amount_zscore_card": (amount - mean) / max(std, MIN_STD_MINOR),
    }


def _request_own(
    transaction: dict[str, Any], *, timestamp: datetime, amount: int
) -> dict[str, float]:
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
