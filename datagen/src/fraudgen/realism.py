"""Aggregate figures of a generated data set, comparable with published card statistics.

Each figure is computed from the canonical columns only, so it applies to any data set
in the schema. Values are converted to euros with ``catalogue.UNITS_PER_EUR`` before
they are summed. The published counterparts and their sources are listed in the
README section "Realism".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import polars as pl

from fraudgen import catalogue

MICROS_PER_DAY = 86_400_000_000
DAYS_PER_MONTH = 30.4375
# Card testing uses amounts of at most 2 units of currency (200 minor units).
CARD_TESTING_MAX_MINOR = 200
LABEL_SHAPE_DAYS = 60.0
EARTH_RADIUS_KM = 6371.0088
# Columns of ``single_payment_columns`` that are category codes, not quantities.
CATEGORICAL_COLUMNS = (
    "channel",
    "mcc",
    "hour",
    "weekday",
    "cross_border",
    "outside_eea",
    "merchant_country",
)


@dataclass(frozen=True)
class RealismFigures:
    """Aggregate figures of one data set; shares are fractions in [0, 1].

    Attributes:
        fraud_share_count: Fraudulent payments / all payments.
        fraud_share_value: Fraudulent value / all value (EUR).
        fraud_ticket_ratio: Mean fraudulent amount / mean amount of all payments.
        cnp_value_share: Card-not-present (ecommerce) share of all value.
        cnp_fraud_value_share: Card-not-present share of fraudulent value.
        cross_border_value_share: Share of value where the merchant's country differs
            from the card's.
        cross_border_fraud_value_share: The same share of fraudulent value.
        non_eea_fraud_rate_ratio: Fraud share of value at merchants outside the EEA
            divided by the fraud share of value at merchants inside it.
        payments_per_card_month: Payments per distinct card per 30.44 days.
        fraud_rate_by_channel: Fraud share of value within each channel.
        fraud_value_split: Share of fraudulent value per channel group: ``cnp``
            (ecommerce), ``pos`` (pos and contactless) and ``atm``.
        label_delay_max_days: Maximum days from payment to label.
        label_delay_median_days: Median days from payment to label.
        label_within_60_days: Share of labels that arrive within 60 days.
        card_testing_small_cnp_share: Share of card-testing payments that are
            ecommerce with at most 2 units of currency.
    """

    fraud_share_count: float
    fraud_share_value: float
    fraud_ticket_ratio: float
    cnp_value_share: float
    cnp_fraud_value_share: float
    cross_border_value_share: float
    cross_border_fraud_value_share: float
    non_eea_fraud_rate_ratio: float
    payments_per_card_month: float
    fraud_rate_by_channel: dict[str, float]
    fraud_value_split: dict[str, float]
    label_delay_max_days: float
    label_delay_median_days: float
    label_within_60_days: float
    card_testing_small_cnp_share: float

    def to_dict(self) -> dict[str, object]:
        """Return the figures as a JSON-compatible dict."""
        return asdict(self)


def with_eur(frame: pl.DataFrame) -> pl.DataFrame:
    """Return ``frame`` with ``eur`` (Float64), the amount converted to euros."""
    rate = pl.col("currency").replace_strict(
        catalogue.UNITS_PER_EUR, return_dtype=pl.Float64
    )
    return frame.with_columns(eur=pl.col("amount_minor") / 100.0 / rate)


def measure(frame: pl.DataFrame) -> RealismFigures:
    """Compute every figure of ``frame``, a generated data set in the schema.

    Raises:
        ValueError: ``frame`` contains no fraudulent payment, so no fraud figure
            is defined.
    """
    if not frame["is_fraud"].any():
        raise ValueError(
            "the frame contains no fraudulent payment; generate with fraud_rate > 0"
        )
    frame = with_eur(frame)
    fraud = frame.filter(pl.col("is_fraud"))
    total_value = frame["eur"].sum()
    fraud_value = fraud["eur"].sum()
    cross_border = pl.col("merchant_country") != pl.col("card_country")
    days = _span_days(frame)
    return RealismFigures(
        fraud_share_count=fraud.height / frame.height,
        fraud_share_value=fraud_value / total_value,
        fraud_ticket_ratio=fraud["eur"].mean() / frame["eur"].mean(),
        cnp_value_share=_value_share(frame, ~pl.col("card_present")),
        cnp_fraud_value_share=_value_share(fraud, ~pl.col("card_present")),
        cross_border_value_share=_value_share(frame, cross_border),
        cross_border_fraud_value_share=_value_share(fraud, cross_border),
        non_eea_fraud_rate_ratio=_non_eea_ratio(frame),
        payments_per_card_month=frame.height
        / frame["card_id"].n_unique()
        / (days / DAYS_PER_MONTH),
        fraud_rate_by_channel=_fraud_rate_by_channel(frame),
        fraud_value_split=_fraud_value_split(fraud),
        **_label_delay(fraud),
        card_testing_small_cnp_share=_card_testing_share(fraud),
    )


def _span_days(frame: pl.DataFrame) -> float:
    first = frame["timestamp"].min().date()
    last = frame["timestamp"].max().date()
    return float((last - first).days + 1)


def _value_share(frame: pl.DataFrame, condition: pl.Expr) -> float:
    total = frame["eur"].sum()
    return frame.filter(condition)["eur"].sum() / total if total > 0 else 0.0


def _fraud_rate(frame: pl.DataFrame) -> float:
    total = frame["eur"].sum()
    return frame.filter(pl.col("is_fraud"))["eur"].sum() / total if total > 0 else 0.0


def _non_eea_ratio(frame: pl.DataFrame) -> float:
    outside = pl.col("merchant_country").is_in(catalogue.EEA_COUNTRIES).not_()
    inside_rate = _fraud_rate(frame.filter(~outside))
    outside_rate = _fraud_rate(frame.filter(outside))
    return outside_rate / inside_rate if inside_rate > 0 else float("inf")


def _fraud_rate_by_channel(frame: pl.DataFrame) -> dict[str, float]:
    return {
        channel: _fraud_rate(frame.filter(pl.col("channel") == channel))
        for channel in catalogue.CHANNELS
    }


def _fraud_value_split(fraud: pl.DataFrame) -> dict[str, float]:
    groups = {
        "cnp": pl.col("channel") == "ecommerce",
        "pos": pl.col("channel").is_in(["pos", "contactless"]),
        "atm": pl.col("channel") == "atm",
    }
    return {name: _value_share(fraud, condition) for name, condition in groups.items()}


def _label_delay(fraud: pl.DataFrame) -> dict[str, float]:
    delay_days = (
        (pl.col("label_available_at") - pl.col("timestamp")).dt.total_microseconds()
        / MICROS_PER_DAY
    ).alias("days")
    delays = fraud.select(delay_days)["days"]
    return {
        "label_delay_max_days": float(delays.max()),
        "label_delay_median_days": float(delays.median()),
        "label_within_60_days": float((delays <= LABEL_SHAPE_DAYS).mean()),
    }


def _card_testing_share(fraud: pl.DataFrame) -> float:
    testing = fraud.filter(pl.col("fraud_scenario") == "card_testing")
    if testing.height == 0:
        return 0.0
    small_cnp = (pl.col("channel") == "ecommerce") & (
        pl.col("amount_minor") <= CARD_TESTING_MAX_MINOR
    )
    return testing.filter(small_cnp).height / testing.height


def single_payment_columns(frame: pl.DataFrame) -> dict[str, np.ndarray]:
    """Return what one payment shows without any history, as numeric arrays.

    Columns: ``log_amount`` (log of 1 + euros), ``distance_km`` (customer home to
    merchant) and the category codes of ``CATEGORICAL_COLUMNS`` (channel, MCC, UTC
    hour, ISO weekday, cross-border flag, merchant outside the EEA, merchant
    country), each int64 or float64 of length ``frame.height``.
    """
    frame = with_eur(frame)
    return {
        "log_amount": np.log1p(frame["eur"].to_numpy()),
        "distance_km": _distance_km(frame),
        "channel": _codes(frame["channel"]),
        "mcc": frame["mcc"].cast(pl.Int64).to_numpy(),
        "hour": frame["timestamp"].dt.hour().cast(pl.Int64).to_numpy(),
        "weekday": frame["timestamp"].dt.weekday().cast(pl.Int64).to_numpy(),
        "cross_border": (frame["merchant_country"] != frame["card_country"])
        .cast(pl.Int64)
        .to_numpy(),
        "outside_eea": frame["merchant_country"]
        .is_in(catalogue.EEA_COUNTRIES)
        .not_()
        .cast(pl.Int64)
        .to_numpy(),
        "merchant_country": _codes(frame["merchant_country"]),
    }


def _codes(values: pl.Series) -> np.ndarray:
    categories = sorted(values.unique().to_list())
    return values.replace_strict(categories, list(range(len(categories)))).to_numpy()


def _distance_km(frame: pl.DataFrame) -> np.ndarray:
    lat1, lon1, lat2, lon2 = (
        np.radians(frame[name].to_numpy())
        for name in ("customer_lat", "customer_lon", "merchant_lat", "merchant_lon")
    )
    half = (
        np.sin((lat2 - lat1) / 2) ** 2
        + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(half))


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Return the area under the ROC curve of ``scores``, ties counted as half.

    Computed as the Mann-Whitney U statistic over average ranks.
    """
    labels = np.asarray(labels, dtype=bool)
    positives = int(labels.sum())
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        raise ValueError(
            f"roc_auc needs both classes; got {positives} positives and "
            f"{negatives} negatives"
        )
    ranks = pl.Series(scores).rank("average").to_numpy()
    u_statistic = ranks[labels].sum() - positives * (positives + 1) / 2
    return float(u_statistic / (positives * negatives))


def column_separation(
    values: np.ndarray, labels: np.ndarray, *, groups: np.ndarray, categorical: bool
) -> float:
    """Return how well one column alone separates the positives, as max(AUC, 1 - AUC).

    A quantity is scored by its own value. A category is scored by the share of
    positives in its category, estimated on the other half of the groups (two-fold
    cross-fitting). Folding by group (such as the card) keeps the payments of one
    incident on one side, so a few clustered incidents do not separate by chance.

    Args:
        values: The column, one value per row.
        labels: True for the positives, bool of the same length.
        groups: Integer group of each row; rows with an even group form one fold.
        categorical: Whether ``values`` are category codes.
    """
    labels = np.asarray(labels, dtype=bool)
    scores = np.asarray(values, dtype=np.float64)
    if categorical:
        scores = _cross_fitted_rates(values, labels, fold=np.asarray(groups) % 2)
    auc = roc_auc(labels, scores)
    return max(auc, 1.0 - auc)


def _cross_fitted_rates(
    values: np.ndarray, labels: np.ndarray, *, fold: np.ndarray
) -> np.ndarray:
    scores = np.zeros(len(values))
    for held_out in (0, 1):
        fit = fold != held_out
        rates = (
            pl.DataFrame({"value": values[fit], "label": labels[fit]})
            .group_by("value")
            .agg(pl.col("label").mean().alias("rate"))
        )
        lookup = dict(
            zip(rates["value"].to_list(), rates["rate"].to_list(), strict=True)
        )
        scores[~fit] = [lookup.get(value, 0.0) for value in values[~fit].tolist()]
    return scores
