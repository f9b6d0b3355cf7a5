"""Reasons for a score: the features that moved it most, in plain language.

A reason is one feature's SHAP contribution in log-odds (margin) units, with the
feature's value and a sentence an analyst or a card holder can read. The base value
plus every feature's contribution equals the model's margin; a response lists the
strongest few and reports the rest as one sum.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

MAX_REASONS = 4

_WINDOW = re.compile(r"_(\d+)(h|d)$")
_FLAGS = {
    "first_time_merchant": "This is the card's first payment at this merchant",
    "first_time_device": "This is the first payment from this device on the card",
    "first_time_country": "This is the card's first payment in this country",
    "cross_border": "The merchant is in another country than the card's issuer",
    "card_present": "The card was physically present",
}


@dataclass(frozen=True)
class Reason:
    """One feature's part in a score.

    Attributes:
        feature: Model feature name.
        value: The feature's value for the transaction.
        contribution: SHAP contribution in log-odds; positive raises the score.
        sentence: The same in plain language.
    """

    feature: str
    value: float
    contribution: float
    sentence: str

    def to_json(self) -> dict[str, Any]:
        """Return the reason as a JSON-serialisable dict."""
        return asdict(self)


def top_reasons(
    feature_columns: list[str],
    values: np.ndarray,
    contributions: np.ndarray,
    *,
    limit: int = MAX_REASONS,
) -> list[Reason]:
    """Return the features with the largest absolute contributions, largest first.

    Features with a zero contribution are left out, so a model that ignored every
    feature gives no reasons. Ties are broken by feature name.

    Args:
        feature_columns: Feature names in model order.
        values: One row of feature values, shape (features,).
        contributions: That row's contributions in log-odds, shape (features,).
        limit: Largest number of reasons to return.
    """
    order = sorted(
        range(len(feature_columns)),
        key=lambda index: (-abs(float(contributions[index])), feature_columns[index]),
    )
    reasons = []
    for index in order[:limit]:
        contribution = float(contributions[index])
        if contribution == 0.0:
            break
        name = feature_columns[index]
        value = float(values[index])
        reasons.append(
            Reason(name, value, contribution, describe(name, value, contribution))
        )
    return reasons


def describe(feature: str, value: float, contribution: float) -> str:
    """Return one sentence saying what the feature's value was and how it moved the
    score.
    """
    direction = "raised" if contribution > 0 else "lowered"
    return f"{state_feature(feature, value)}, which {direction} the fraud score."


def state_feature(feature: str, value: float) -> str:
    """Return a clause that states a feature's value in plain language."""
    if feature in _FLAGS:
        clause = _FLAGS[feature]
        if value == 1:
            return clause
        if value == 0:
            return _negate(clause)
        return f"{feature.replace('_', ' ').capitalize()} is unknown"
    window = _window_text(feature)
    count = _count_text(value)
    money = _money_text(value)
    texts = {
        "card_count_": f"The card made {count} earlier payment(s) {window}",
        "card_amount_sum_": f"The card spent {money} {window}",
        "card_distinct_merchants_": f"The card paid {count} merchant(s) {window}",
        "card_distinct_countries_": f"The card paid in {count} country(ies) {window}",
        "card_distinct_devices_": f"The card used {count} device(s) {window}",
        "card_new_merchants_": f"The card paid {count} new merchant(s) {window}",
        "card_new_devices_": f"The card used {count} new device(s) {window}",
        "card_new_countries_": f"The card paid in {count} new country(ies) {window}",
        "merchant_count_": f"The merchant had {count} payment(s) {window}",
        "merchant_fraud_rate_": (
            f"{value:.1%} of the merchant's payments {window} were reported as fraud"
        ),
    }
    for prefix, text in texts.items():
        if feature.startswith(prefix):
            return text
    return _other_feature(feature, value)


def _other_feature(feature: str, value: float) -> str:
    texts: dict[str, Callable[[], str]] = {
        "card_prior_count": lambda: (
            f"The card made {_count_text(value)} payment(s) before"
        ),
        "card_amount_mean_prior": lambda: (
            f"The card's average payment is {_money_text(value)}"
        ),
        "card_amount_std_prior": lambda: (
            f"The card's payments usually vary by {_money_text(value)}"
        ),
        "amount_ratio_card_mean": lambda: (
            f"The amount is {value:.2f} times the card's average payment"
        ),
        "amount_zscore_card": lambda: (
            f"The amount is {value:.1f} standard deviations from the card's usual"
        ),
        "seconds_since_prev_card": lambda: _gap_text(value),
        "distance_from_home_km": lambda: (
            "The distance between the customer's home and the merchant is unknown"
            if value < 0
            else f"The merchant is {value:,.0f} km from the customer's home"
        ),
        "log_amount": lambda: f"The amount is {_money_text(math.expm1(value) * 100)}",
        "hour_of_day": lambda: f"The payment was made at {int(value):02d}:00 UTC",
        "day_of_week": lambda: (
            f"The payment was made on weekday {int(value)} (1 is Monday)"
        ),
        "channel_code": lambda: f"The payment channel has code {int(value)}",
        "mcc_code": lambda: f"The merchant category code is {int(value)}",
    }
    if feature in texts:
        return texts[feature]()
    return f"{feature.replace('_', ' ').capitalize()} is {value:g}"


def _window_text(feature: str) -> str:
    match = _WINDOW.search(feature)
    if match is None:
        return "before"
    amount, unit = int(match.group(1)), match.group(2)
    if unit == "h" and amount % 24 == 0 and amount > 24:
        amount, unit = amount // 24, "d"
    word = "hour" if unit == "h" else "day"
    return f"in the previous {amount} {word}{'s' if amount != 1 else ''}"


def _count_text(value: float) -> str:
    return f"{value:,.0f}"


def _money_text(minor_units: float) -> str:
    # NOTE: Assumes two decimals, as most ISO 4217 currencies have; a JPY or KWD
    # amount reads 100 times too small or 10 times too large.
    return f"{minor_units / 100:,.2f}"


def _gap_text(seconds: float) -> str:
    if seconds >= 10 * 365 * 24 * 3600:
        return "The card has no earlier payment"
    if seconds < 120:
        return f"The card's previous payment was {seconds:.0f} seconds earlier"
    if seconds < 2 * 3600:
        return f"The card's previous payment was {seconds / 60:.0f} minutes earlier"
    if seconds < 2 * 86400:
        return f"The card's previous payment was {seconds / 3600:.0f} hours earlier"
    return f"The card's previous payment was {seconds / 86400:.0f} days earlier"


def _negate(clause: str) -> str:
    negations = {
        "This is the card's first payment at this merchant": (
            "The card paid this merchant before"
        ),
        "This is the first payment from this device on the card": (
            "The card used this device before, or no device was sent"
        ),
        "This is the card's first payment in this country": (
            "The card paid in this country before, or no country was sent"
        ),
        "The merchant is in another country than the card's issuer": (
            "The merchant is in the card's country, or a country is unknown"
        ),
        "The card was physically present": "The card was not physically present",
    }
    return negations[clause]
