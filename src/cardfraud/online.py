"""Online aggregates: per-card and per-merchant state kept fresh in the Feast store.

The online store contains a compact state per card and per merchant, not finished
features. Scoring a transaction reads both states, computes the model features from
them with the feature table's definitions, appends the transaction and writes the
states back. Label events update the merchant's state through ``apply_label``. The
online path is thus a stream of transactions and label events. It gives the feature
table's values when the stream is processed in ``(timestamp, transaction_id)`` order,
the order of ``cardfraud.features``.

Times in the state are epoch microseconds (UTC), amounts integer minor units. Absent
countries and devices are stored as the empty string because Feast string arrays
cannot contain nulls.
"""

from __future__ import annotations

import bisect
import logging
import math
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import polars as pl

from cardfraud.features import (
    CARD_HISTORY_COLUMNS,
    DISTINCT_ATTRIBUTES,
    FIRST_TIME_ATTRIBUTES,
    MIN_STD_MINOR,
    NEW_VALUE_ATTRIBUTES,
    NO_HISTORY_SECONDS,
    ORDER_COLUMNS,
    card_state_window_hours,
    check_params,
    check_transaction,
    feature_columns,
    label_time_expr,
    merchant_state_window_hours,
    transaction_own_features,
)
from cardfraud.params import FeaturesParams

if TYPE_CHECKING:
    from feast import FeatureStore

logger = logging.getLogger(__name__)

CARD_STATE_VIEW = "card_state"
MERCHANT_STATE_VIEW = "merchant_state"
STATE_TIME_COLUMN = "state_time"
"""Event timestamp of a state row: the latest event the state includes."""
NO_VALUE = ""
"""Stored in place of a null country or device."""
MICROSECONDS_PER_HOUR = 3_600_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
WRITE_BATCH_ROWS = 2_000


def epoch_us(moment: datetime) -> int:
    """Return a UTC-aware datetime as integer epoch microseconds, exactly."""
    return (moment - EPOCH) // timedelta(microseconds=1)


def from_epoch_us(value: int) -> datetime:
    """Return epoch microseconds as a UTC-aware datetime."""
    return EPOCH + timedelta(microseconds=value)


@dataclass(frozen=True)
class CardState:
    """Everything the card features need about one card's earlier transactions.

    Attributes:
        event_us: Times of the recent transactions, within the longest card window
            of the latest one, sorted by ``(time, transaction id)``.
        event_ids: Their transaction ids.
        event_amounts: Their amounts in minor units.
        event_merchants: Their merchant ids.
        event_countries: Their merchant countries, ``""`` where absent.
        event_devices: Their device ids, ``""`` where absent.
        event_new_merchants: 1 where the event was the card's first payment at its
            merchant, else 0 (the ``first_time_merchant`` flag).
        event_new_devices: The events' ``first_time_device`` flags, 0 or 1.
        event_new_countries: The events' ``first_time_country`` flags, 0 or 1.
        count: Number of all the card's transactions so far.
        amount_sum: Sum of all their amounts.
        amount_shift: Amount of the card's first transaction.
        shifted_sum: Sum of ``amount - amount_shift`` over all transactions.
        shifted_square_sum: Sum of ``(amount - amount_shift) ** 2``.
        last_seen_us: Time of the card's latest transaction.
        merchants: Every merchant the card paid, sorted.
        devices: Every device the card used, sorted.
        countries: Every merchant country the card paid in, sorted.
    """

    event_us: list[int] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)
    event_amounts: list[int] = field(default_factory=list)
    event_merchants: list[str] = field(default_factory=list)
    event_countries: list[str] = field(default_factory=list)
    event_devices: list[str] = field(default_factory=list)
    event_new_merchants: list[int] = field(default_factory=list)
    event_new_devices: list[int] = field(default_factory=list)
    event_new_countries: list[int] = field(default_factory=list)
    count: int = 0
    amount_sum: int = 0
    amount_shift: int = 0
    shifted_sum: int = 0
    shifted_square_sum: int = 0
    last_seen_us: int = 0
    merchants: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
    countries: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class MerchantState:
    """Everything the merchant features need about one merchant.

    Attributes:
        event_us: Times of the merchant's recent transactions, within the longest
            merchant window of the latest event, sorted.
        fraud_ids: Transaction ids of recent frauds whose label has arrived.
        fraud_us: Times of those fraudulent transactions.
        fraud_label_us: Times their labels became available.
    """

    event_us: list[int] = field(default_factory=list)
    fraud_ids: list[str] = field(default_factory=list)
    fraud_us: list[int] = field(default_factory=list)
    fraud_label_us: list[int] = field(default_factory=list)


CARD_ARRAY_INT_FIELDS = (
    "event_us",
    "event_amounts",
    "event_new_merchants",
    "event_new_devices",
    "event_new_countries",
)
NEW_VALUE_EVENT_FIELDS: dict[str, str] = {
    "merchants": "event_new_merchants",
    "devices": "event_new_devices",
    "countries": "event_new_countries",
}
"""Card state field with each event's first-use flag, per ``NEW_VALUE_ATTRIBUTES``."""
CARD_ARRAY_STRING_FIELDS = (
    "event_ids",
    "event_merchants",
    "event_countries",
    "event_devices",
    "merchants",
    "devices",
    "countries",
)
MERCHANT_ARRAY_INT_FIELDS = ("event_us", "fraud_us", "fraud_label_us")
MERCHANT_ARRAY_STRING_FIELDS = ("fraud_ids",)


def state_field_types(state_class: type) -> dict[str, str]:
    """Map each field of a state class to ``int``, ``int_list`` or ``string_list``."""
    int_lists = {*CARD_ARRAY_INT_FIELDS, *MERCHANT_ARRAY_INT_FIELDS}
    string_lists = {*CARD_ARRAY_STRING_FIELDS, *MERCHANT_ARRAY_STRING_FIELDS}
    kinds = {}
    for item in fields(state_class):
        if item.name in int_lists:
            kinds[item.name] = "int_list"
        elif item.name in string_lists:
            kinds[item.name] = "string_list"
        else:
            kinds[item.name] = "int"
    return kinds


class ScoreTimeFeatures(NamedTuple):
    """Features of one transaction computed from the online state.

    Attributes:
        values: Every feature of ``feature_columns(params)`` as a float, in order.
        missing: State views with no row for the transaction's card or merchant,
            whose features took the no-history defaults.
        card: The card's state the values were computed from (empty when missing).
        merchant: The merchant's state the values were computed from.
    """

    values: dict[str, float]
    missing: list[str]
    card: CardState
    merchant: MerchantState


def compute_features(
    transaction: dict[str, Any],
    card: CardState | None,
    merchant: MerchantState | None,
    params: FeaturesParams,
) -> ScoreTimeFeatures:
    """Compute one transaction's features from its card's and merchant's states.

    The definitions are those of ``build_feature_table``. Card events ordered at or
    after the transaction, by ``(time, transaction id)``, are left out, so a late
    transaction and a retried one (its id already in the card's state) get the
    features of their place in event time. Events of the card that are still in
    flight in another request cannot be seen.

    Args:
        transaction: Canonical fields; ``timestamp`` is a UTC-aware datetime and
            ``amount_minor`` a positive int in minor units.
        card: The card's state, or None when the store has none.
        merchant: The merchant's state, or None when the store has none.
        params: The feature parameters the model was trained with.

    Raises:
        ValueError: ``timestamp`` is naive or missing, or ``amount_minor`` is not a
            positive int.
    """
    timestamp, amount = check_transaction(transaction)
    missing = []
    if card is None:
        missing.append(CARD_STATE_VIEW)
        card = CardState()
    if merchant is None:
        missing.append(MERCHANT_STATE_VIEW)
        merchant = MerchantState()
    now_us = epoch_us(timestamp)
    key = (now_us, str(transaction["transaction_id"]))
    retried = key[1] in card.event_ids
    later = _earlier_events(card, key)

    values: dict[str, float] = {}
    values.update(_card_window_features(card, now_us=now_us, end=later, params=params))
    values.update(
        _card_history_features(
            _history_before(card, later), amount=amount, now_us=now_us
        )
    )
    values.update(
        _merchant_features(
            merchant, now_us=now_us, params=params, own_events=int(retried)
        )
    )
    values.update(_first_time_flags(card, transaction, later=later))
    values.update(
        transaction_own_features(transaction, timestamp=timestamp, amount=amount)
    )
    ordered = {name: values[name] for name in feature_columns(params)}
    return ScoreTimeFeatures(ordered, missing, card, merchant)


def _earlier_events(card: CardState, key: tuple[int, str]) -> int:
    """Return how many recent card events are ordered before ``key``."""
    keys = list(zip(card.event_us, card.event_ids, strict=True))
    return bisect.bisect_left(keys, key)


def _card_window_features(
    card: CardState, *, now_us: int, end: int, params: FeaturesParams
) -> dict[str, float]:
    """Return the card's window features over its first ``end`` recent events."""
    times = card.event_us[:end]
    values: dict[str, float] = {}
    for hours in params.windows_hours:
        start = bisect.bisect_right(times, now_us - hours * MICROSECONDS_PER_HOUR)
        values[f"card_count_{hours}h"] = float(end - start)
        values[f"card_amount_sum_{hours}h"] = float(sum(card.event_amounts[start:end]))
    columns = {
        "merchants": card.event_merchants,
        "countries": card.event_countries,
        "devices": card.event_devices,
    }
    for hours in params.distinct_windows_hours:
        start = bisect.bisect_right(times, now_us - hours * MICROSECONDS_PER_HOUR)
        for name in DISTINCT_ATTRIBUTES:
            present = set(columns[name][start:end]) - {NO_VALUE}
            values[f"card_distinct_{name}_{hours}h"] = float(len(present))
    for hours in params.new_value_windows_hours:
        start = bisect.bisect_right(times, now_us - hours * MICROSECONDS_PER_HOUR)
        for name, state_field in NEW_VALUE_EVENT_FIELDS.items():
            flags = getattr(card, state_field)[start:end]
            values[f"card_new_{name}_{hours}h"] = float(sum(flags))
    return values


class CardHistory(NamedTuple):
    """A card's lifetime aggregates as of one moment, as ``CardState`` names them."""

    count: int
    amount_sum: int
    shifted_sum: int
    shifted_square_sum: int
    last_seen_us: int | None


def _history_before(card: CardState, later: int) -> CardHistory:
    """Return the card's aggregates without its recent events from index ``later``.

    ``later`` is the index of the first recent event ordered at or after the
    transaction. The time of the previous event is unknown when it left the recent
    events, and ``last_seen_us`` is then None.
    NOTE: The recent events reach back one longest card window from the newest
    event. A transaction older than that may find later events already dropped, and
    their amounts then stay in the sums.
    """
    if later == len(card.event_us):
        return CardHistory(
            card.count,
            card.amount_sum,
            card.shifted_sum,
            card.shifted_square_sum,
            card.last_seen_us,
        )
    amounts = card.event_amounts[later:]
    shifted = [amount - card.amount_shift for amount in amounts]
    count = card.count - len(amounts)
    previous = card.event_us[later - 1] if later > 0 else None
    return CardHistory(
        count,
        card.amount_sum - sum(amounts),
        card.shifted_sum - sum(shifted),
        card.shifted_square_sum - sum(value * value for value in shifted),
        previous if count > 0 else None,
    )


def _card_history_features(
    card: CardHistory, *, amount: int, now_us: int
) -> dict[str, float]:
    """Return count, mean, std, ratio, z-score and time gap as the table has them."""
    count = card.count
    if count <= 0:
        return dict.fromkeys(CARD_HISTORY_COLUMNS, 0.0) | {
            "amount_ratio_card_mean": 1.0,
            "amount_zscore_card": 0.0,
            "seconds_since_prev_card": NO_HISTORY_SECONDS,
        }
    # Float operations in the order of features._add_card_history, so that both
    # paths round identically.
    mean = float(card.amount_sum) / count
    shifted_sum = float(card.shifted_sum)
    variance = (float(card.shifted_square_sum) - shifted_sum * shifted_sum / count) / (
        count
    )
    std = math.sqrt(variance) if variance > 0 else 0.0
    return {
        "card_prior_count": float(count),
        "card_amount_mean_prior": mean,
        "card_amount_std_prior": std,
        "amount_ratio_card_mean": float(amount) / mean,
        "amount_zscore_card": (float(amount) - mean) / max(std, MIN_STD_MINOR),
        "seconds_since_prev_card": (
            (now_us - card.last_seen_us) / 1e6
            if card.last_seen_us is not None
            else NO_HISTORY_SECONDS
        ),
    }


def _merchant_features(
    merchant: MerchantState, *, now_us: int, params: FeaturesParams, own_events: int
) -> dict[str, float]:
    """Return the merchant's counts and fraud rates up to ``now_us``.

    ``own_events`` is 1 for a retried transaction, whose own time is already in the
    merchant's events and is not counted again.
    NOTE: The merchant's state keeps times without ids, so a late transaction
    counts the events of its exact time that arrived before it, where the feature
    table counts only those with a smaller transaction id.
    """
    times = merchant.event_us
    end = bisect.bisect_right(times, now_us) - own_events
    values: dict[str, float] = {}
    for hours in params.merchant_windows_hours:
        start = bisect.bisect_right(times, now_us - hours * MICROSECONDS_PER_HOUR)
        values[f"merchant_count_{hours}h"] = float(end - start)
    for days in params.merchant_fraud_windows_days:
        bound = now_us - 24 * days * MICROSECONDS_PER_HOUR
        total = end - bisect.bisect_right(times, bound)
        known = sum(
            1
            for fraud_us, label_us in zip(
                merchant.fraud_us, merchant.fraud_label_us, strict=True
            )
            if fraud_us > bound and label_us < now_us
        )
        values[f"merchant_fraud_rate_{days}d"] = known / total if total > 0 else 0.0
    return values


def _first_time_flags(
    card: CardState, transaction: dict[str, Any], *, later: int
) -> dict[str, float]:
    """Return the first-use flags of the transaction at its place in event time.

    A value in the card's sets is still new when its first use is a recent event
    from index ``later`` on, ordered at or after the transaction. That is the case
    for a late or a retried transaction.
    """
    seen = {
        "merchant_id": card.merchants,
        "device_id": card.devices,
        "merchant_country": card.countries,
    }
    flags = {}
    for name, column in FIRST_TIME_ATTRIBUTES.items():
        value = transaction.get(column)
        if value is None:
            flags[name] = 0.0
            continue
        value = str(value)
        first_use_later = any(
            card_value == value and first
            for card_value, first in zip(
                getattr(card, EVENT_VALUE_FIELDS[column])[later:],
                getattr(card, FIRST_USE_FIELDS[column])[later:],
                strict=True,
            )
        )
        flags[name] = float(value not in seen[column] or first_use_later)
    return flags


def add_transaction_to_card(
    card: CardState, transaction: dict[str, Any], params: FeaturesParams
) -> CardState:
    """Return the card's state with the transaction appended; ``card`` is unchanged.

    Recent events that no card window of a later transaction can reach are dropped.
    """
    timestamp, amount = check_transaction(transaction)
    now_us = epoch_us(timestamp)
    key = (now_us, str(transaction["transaction_id"]))
    horizon = now_us - card_state_window_hours(params) * MICROSECONDS_PER_HOUR
    keep = bisect.bisect_right(card.event_us, horizon)
    position = _earlier_events(card, key)
    country = transaction.get("merchant_country") or NO_VALUE
    device = transaction.get("device_id") or NO_VALUE

    def insert(values: list, item: Any) -> list:
        return [*values[keep:position], item, *values[max(keep, position) :]]

    shift = card.amount_shift if card.count > 0 else amount
    shifted = amount - shift
    first_use = _first_use_events(card, transaction, position)
    return CardState(
        event_us=insert(card.event_us, now_us),
        event_ids=insert(card.event_ids, key[1]),
        event_amounts=insert(card.event_amounts, amount),
        event_merchants=insert(card.event_merchants, str(transaction["merchant_id"])),
        event_countries=insert(card.event_countries, country),
        event_devices=insert(card.event_devices, device),
        event_new_merchants=insert(*first_use["event_new_merchants"]),
        event_new_devices=insert(*first_use["event_new_devices"]),
        event_new_countries=insert(*first_use["event_new_countries"]),
        count=card.count + 1,
        amount_sum=card.amount_sum + amount,
        amount_shift=shift,
        shifted_sum=card.shifted_sum + shifted,
        shifted_square_sum=card.shifted_square_sum + shifted * shifted,
        last_seen_us=max(card.last_seen_us, now_us) if card.count else now_us,
        merchants=_with_value(card.merchants, str(transaction["merchant_id"])),
        devices=_with_value(card.devices, device),
        countries=_with_value(card.countries, country),
    )


EVENT_VALUE_FIELDS: dict[str, str] = {
    "merchant_id": "event_merchants",
    "device_id": "event_devices",
    "merchant_country": "event_countries",
}
"""Card state field with each recent event's value of a transaction column."""
FIRST_USE_FIELDS: dict[str, str] = {
    FIRST_TIME_ATTRIBUTES[NEW_VALUE_ATTRIBUTES[name]]: state_field
    for name, state_field in NEW_VALUE_EVENT_FIELDS.items()
}
"""Card state field with each recent event's first-use flag of a transaction column."""


def _first_use_events(
    card: CardState, transaction: dict[str, Any], position: int
) -> dict[str, tuple[list[int], int]]:
    """Return each first-use flag field's events and the new event's flag.

    A card's first use of a merchant, device or country is its earliest payment
    with that value in event time, as in the feature table. When a transaction
    arrives after a later one with the same value (two workers, or a late
    delivery), it takes the flag over from that later event, so the state does not
    depend on the order of arrival within the card's window. ``position`` is the
    index where the transaction goes among the card's events.
    """
    seen = {
        "merchant_id": card.merchants,
        "device_id": card.devices,
        "merchant_country": card.countries,
    }
    result = {}
    for name, state_field in NEW_VALUE_EVENT_FIELDS.items():
        column = FIRST_TIME_ATTRIBUTES[NEW_VALUE_ATTRIBUTES[name]]
        flags = list(getattr(card, state_field))
        value = transaction.get(column)
        if value is None or str(value) == NO_VALUE:
            result[state_field] = (flags, 0)
            continue
        value = str(value)
        if value not in seen[column]:
            result[state_field] = (flags, 1)
            continue
        values = getattr(card, EVENT_VALUE_FIELDS[column])
        later_first = next(
            (
                index
                for index in range(position, len(values))
                if flags[index] and values[index] == value
            ),
            None,
        )
        if later_first is None:
            result[state_field] = (flags, 0)
            continue
        flags[later_first] = 0
        result[state_field] = (flags, 1)
    return result


class TransactionConflictError(ValueError):
    """A transaction id arrived again with fields that differ from its first use."""

    def __init__(self, transaction_id: str, fields: list[str]) -> None:
        self.transaction_id = transaction_id
        self.fields = fields
        super().__init__(
            f"transaction_id {transaction_id!r} was already scored with other "
            f"values of {', '.join(fields)}"
        )


def check_same_event(card: CardState, transaction: dict[str, Any]) -> None:
    """Raise ``TransactionConflictError`` when a known id comes with other fields.

    The comparison covers what the card's state keeps of each event: time, amount,
    merchant, device and merchant country.
    """
    timestamp, amount = check_transaction(transaction)
    index = card.event_ids.index(str(transaction["transaction_id"]))
    stored = {
        "timestamp": card.event_us[index],
        "amount_minor": card.event_amounts[index],
        "merchant_id": card.event_merchants[index],
        "device_id": card.event_devices[index],
        "merchant_country": card.event_countries[index],
    }
    sent = {
        "timestamp": epoch_us(timestamp),
        "amount_minor": amount,
        "merchant_id": str(transaction["merchant_id"]),
        "device_id": str(transaction.get("device_id") or NO_VALUE),
        "merchant_country": str(transaction.get("merchant_country") or NO_VALUE),
    }
    differing = [name for name in stored if stored[name] != sent[name]]
    if differing:
        raise TransactionConflictError(str(transaction["transaction_id"]), differing)


def _with_value(values: list[str], value: str) -> list[str]:
    if value == NO_VALUE or value in values:
        return values
    return sorted([*values, value])


def add_transaction_to_merchant(
    merchant: MerchantState, transaction: dict[str, Any], params: FeaturesParams
) -> MerchantState:
    """Return the merchant's state with the transaction's time appended.

    Times and frauds that no merchant window of a later transaction can reach are
    dropped.
    """
    timestamp, _ = check_transaction(transaction)
    now_us = epoch_us(timestamp)
    horizon = now_us - merchant_state_window_hours(params) * MICROSECONDS_PER_HOUR
    times = merchant.event_us[bisect.bisect_right(merchant.event_us, horizon) :]
    bisect.insort_right(times, now_us)
    return _prune_frauds(
        replace(merchant, event_us=times), now_us=now_us, params=params
    )


def add_label_to_merchant(
    merchant: MerchantState,
    *,
    transaction_id: str,
    transaction_us: int,
    label_us: int,
    params: FeaturesParams,
) -> MerchantState:
    """Return the merchant's state with one fraud label added.

    A label for a transaction already in the state, or for a transaction that no
    later merchant window reaches, leaves the state as it was.
    """
    label_us = max(label_us, transaction_us)
    if transaction_id in merchant.fraud_ids:
        return merchant
    added = replace(
        merchant,
        fraud_ids=[*merchant.fraud_ids, transaction_id],
        fraud_us=[*merchant.fraud_us, transaction_us],
        fraud_label_us=[*merchant.fraud_label_us, label_us],
    )
    latest = max(merchant.event_us[-1] if merchant.event_us else label_us, label_us)
    return _prune_frauds(added, now_us=latest, params=params)


def _prune_frauds(
    merchant: MerchantState, *, now_us: int, params: FeaturesParams
) -> MerchantState:
    days = max(params.merchant_fraud_windows_days)
    horizon = now_us - 24 * days * MICROSECONDS_PER_HOUR
    keep = [i for i, fraud_us in enumerate(merchant.fraud_us) if fraud_us > horizon]
    if len(keep) == len(merchant.fraud_us):
        return merchant
    return replace(
        merchant,
        fraud_ids=[merchant.fraud_ids[i] for i in keep],
        fraud_us=[merchant.fraud_us[i] for i in keep],
        fraud_label_us=[merchant.fraud_label_us[i] for i in keep],
    )


class OnlineFeatures:
    """The online path: card and merchant states in the Feast online store.

    Args:
        store: A Feast store whose registry has the ``card_state`` and
            ``merchant_state`` views (``apply_definitions`` registers them).
        params: The feature parameters the model was trained with.

    Raises:
        ValueError: The store is Redis without ``skip_dedup: true``. Feast's Redis
            store otherwise skips a write whose event time is not later than the
            stored one, which loses the second of two transactions in the same
            microsecond.
    """

    def __init__(self, store: FeatureStore, params: FeaturesParams) -> None:
        check_params(params)
        online_config = store.config.online_store
        if getattr(online_config, "type", "") == "redis" and not getattr(
            online_config, "skip_dedup", False
        ):
            raise ValueError(
                "online_store.skip_dedup is false in the Redis feature_store.yaml: "
                "state writes with equal event times would be skipped; set "
                "skip_dedup: true"
            )
        self.store = store
        self.params = params
        if getattr(online_config, "type", "") == "sqlite":
            _use_wal(store)
        self._card_view = store.get_feature_view(CARD_STATE_VIEW)
        self._merchant_view = store.get_feature_view(MERCHANT_STATE_VIEW)
        self._card_names = [item.name for item in fields(CardState)]
        self._merchant_names = [item.name for item in fields(MerchantState)]
        self._lock = threading.Lock()
        self.missing_counts: Counter[str] = Counter()
        """Reads that found no state, by view name, since this object was made."""

    @classmethod
    def from_repo(
        cls,
        repo_path: Path,
        params: FeaturesParams,
        *,
        store_yaml: Path | None = None,
    ) -> OnlineFeatures:
        """Open the Feast repository at ``repo_path`` (``store_yaml`` picks a file)."""
        from feast import FeatureStore

        store = FeatureStore(
            repo_path=str(repo_path),
            fs_yaml_file=store_yaml,
        )
        return cls(store, params)

    def read(
        self, card_id: str, merchant_id: str
    ) -> tuple[CardState | None, MerchantState | None]:
        """Read one card's and one merchant's state, None where there is none."""
        return self.read_card(card_id), self.read_merchant(merchant_id)

    def read_card(self, card_id: str) -> CardState | None:
        """Read one card's state, or None where the store has none."""
        values = self._read(self._card_view, "card_id", card_id, self._card_names)
        return _decode(CardState, values, entity=card_id)

    def read_merchant(self, merchant_id: str) -> MerchantState | None:
        """Read one merchant's state, or None where the store has none."""
        values = self._read(
            self._merchant_view, "merchant_id", merchant_id, self._merchant_names
        )
        return _decode(MerchantState, values, entity=merchant_id)

    def _read(
        self, view: Any, join_key: str, entity: str, names: list[str]
    ) -> dict[str, Any] | None:
        rows = self.store.provider.online_read(
            config=self.store.config,
            table=view,
            entity_keys=[_entity_key(join_key, entity)],
            requested_features=list(names),
        )
        return rows[0][1]

    def features(self, transaction: dict[str, Any]) -> ScoreTimeFeatures:
        """Read the states and compute the transaction's features without a write."""
        card, merchant = self.read(transaction["card_id"], transaction["merchant_id"])
        result = compute_features(transaction, card, merchant, self.params)
        self._count_missing(transaction, result.missing)
        return result

    def process(self, transaction: dict[str, Any]) -> ScoreTimeFeatures:
        """Compute the transaction's features, then append it to both states.

        A transaction id already among the card's recent events is not appended
        again, so a retried request does not count twice, and it gets the features
        of its first scoring unless later events left the card's recent window.

        Raises:
            TransactionConflictError: The id is among the card's events with another
                time, amount, merchant, device or country; nothing is written.
        NOTE: The read and the write are atomic within this object only. Two
        processes that update the same card or merchant at once can lose one update.
        """
        check_transaction(transaction)
        with self._lock:
            result = self.features(transaction)
            transaction_id = str(transaction["transaction_id"])
            if transaction_id in result.card.event_ids:
                check_same_event(result.card, transaction)
                logger.warning(
                    "transaction %s is already in the state of card %s; scored "
                    "as of its own time and not appended again",
                    transaction_id,
                    transaction["card_id"],
                )
                return result
            card = add_transaction_to_card(result.card, transaction, self.params)
            merchant = add_transaction_to_merchant(
                result.merchant, transaction, self.params
            )
            self.write_card(str(transaction["card_id"]), card)
            self.write_merchant(str(transaction["merchant_id"]), merchant)
        return result

    def apply_label(
        self,
        *,
        transaction_id: str,
        merchant_id: str,
        timestamp: datetime,
        is_fraud: bool,
        label_available_at: datetime | None = None,
    ) -> bool:
        """Record that a transaction's label became available.

        Only fraud labels change a state: the merchant fraud rates count frauds
        whose label was available strictly before the scored transaction.

        Args:
            transaction_id: Id of the labelled transaction.
            merchant_id: Its merchant.
            timestamp: Its time, UTC-aware.
            is_fraud: The label.
            label_available_at: When the label reached the bank, UTC-aware; None
                means ``timestamp + label_delay_days``, as in the feature table.

        Returns:
            Whether the merchant's state changed.

        Raises:
            ValueError: A time is naive.
        """
        for name, value in (
            ("timestamp", timestamp),
            ("label_available_at", label_available_at),
        ):
            if value is not None and value.utcoffset() is None:
                raise ValueError(
                    f"label field {name!r} is {value!r}: expected a timezone-aware "
                    "datetime; send UTC times with an offset"
                )
        if not is_fraud:
            return False
        if label_available_at is None:
            label_available_at = timestamp + timedelta(
                days=self.params.label_delay_days
            )
        with self._lock:
            merchant = self.read_merchant(merchant_id)
            before = merchant if merchant is not None else MerchantState()
            after = add_label_to_merchant(
                before,
                transaction_id=transaction_id,
                transaction_us=epoch_us(timestamp),
                label_us=epoch_us(label_available_at),
                params=self.params,
            )
            if after is before:
                return False
            self.write_merchant(merchant_id, after)
        return True

    def write_card(self, card_id: str, card: CardState) -> None:
        """Write one card's state."""
        self._write(self._card_view, "card_id", [(card_id, card, card.last_seen_us)])

    def write_merchant(self, merchant_id: str, merchant: MerchantState) -> None:
        """Write one merchant's state."""
        self._write(
            self._merchant_view,
            "merchant_id",
            [(merchant_id, merchant, _merchant_time_us(merchant))],
        )

    def write_states(self, cards: pl.DataFrame, merchants: pl.DataFrame) -> None:
        """Write the rows of ``bootstrap_states`` output to the online store."""
        for frame, view, key, state_class in (
            (cards, self._card_view, "card_id", CardState),
            (merchants, self._merchant_view, "merchant_id", MerchantState),
        ):
            for batch in frame.iter_slices(WRITE_BATCH_ROWS):
                rows = [
                    (row[key], _state_from_row(state_class, row), row["_state_us"])
                    for row in batch.with_columns(
                        _state_us=pl.col(STATE_TIME_COLUMN).dt.epoch("us")
                    ).iter_rows(named=True)
                ]
                self._write(view, key, rows)
        logger.info(
            "wrote online state of %d cards and %d merchants",
            cards.height,
            merchants.height,
        )

    def _write(
        self, view: Any, join_key: str, rows: Iterable[tuple[str, Any, int]]
    ) -> None:
        now = datetime.now(UTC)
        data = [
            (_entity_key(join_key, entity), _encode(state), from_epoch_us(us), now)
            for entity, state, us in rows
        ]
        self.store.provider.online_write_batch(
            config=self.store.config, table=view, data=data, progress=None
        )

    def _count_missing(self, transaction: dict[str, Any], missing: list[str]) -> None:
        if not missing:
            return
        self.missing_counts.update(missing)
        logger.info(
            "transaction %s: no online state in %s; no-history defaults used",
            transaction.get("transaction_id"),
            ", ".join(missing),
        )


def _use_wal(store: FeatureStore) -> None:
    """Switch Feast's SQLite online store to WAL with ``synchronous=NORMAL``.

    With the default rollback journal every state write waits for several fsyncs
    (3 to 10 ms a transaction measured on this project's development machine). In
    WAL mode with NORMAL a commit waits for none. A power cut can lose the last
    commits but does not corrupt the file.
    NOTE: Feast 0.67 has no public handle on the connection. ``_get_conn`` is the
    SQLite store's own accessor and may change in another release.
    """
    connection = store.provider.online_store._get_conn(store.config)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")


def _merchant_time_us(merchant: MerchantState) -> int:
    return max([0, *merchant.event_us[-1:], *merchant.fraud_label_us])


def _entity_key(join_key: str, value: str) -> Any:
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    return EntityKey(join_keys=[join_key], entity_values=[Value(string_val=value)])


def _encode(state: CardState | MerchantState) -> dict[str, Any]:
    from feast.protos.feast.types.Value_pb2 import Int64List, StringList, Value

    encoded = {}
    for name, kind in state_field_types(type(state)).items():
        value = getattr(state, name)
        if kind == "int":
            encoded[name] = Value(int64_val=value)
        elif kind == "int_list":
            encoded[name] = Value(int64_list_val=Int64List(val=value))
        else:
            encoded[name] = Value(string_list_val=StringList(val=value))
    return encoded


def _decode[T: (CardState, MerchantState)](
    state_class: type[T], values: dict[str, Any] | None, *, entity: str
) -> T | None:
    """Build a state from stored values, or None when the row is absent or partial."""
    if not values:
        return None
    kinds = state_field_types(state_class)
    absent = [name for name in kinds if values.get(name) is None]
    absent += [
        name
        for name in kinds
        if name not in absent and values[name].WhichOneof("val") is None
    ]
    if absent:
        logger.warning(
            "%s %s: state field(s) %s missing in the online store; treated as no state",
            state_class.__name__,
            entity,
            ", ".join(absent),
        )
        return None
    decoded: dict[str, Any] = {}
    for name, kind in kinds.items():
        value = values[name]
        if kind == "int":
            decoded[name] = value.int64_val
        elif kind == "int_list":
            decoded[name] = list(value.int64_list_val.val)
        else:
            decoded[name] = list(value.string_list_val.val)
    return state_class(**decoded)


def _state_from_row[T: (CardState, MerchantState)](
    state_class: type[T], row: dict[str, Any]
) -> T:
    return state_class(**{name: row[name] for name in state_field_types(state_class)})


def bootstrap_states(
    transactions: pl.DataFrame, params: FeaturesParams, *, cutoff: datetime
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Build every card's and merchant's state as of ``cutoff`` from a table.

    The states include the transactions before ``cutoff`` and the fraud labels
    available before it, so streaming the later transactions and labels through
    ``OnlineFeatures`` continues them exactly.

    Args:
        transactions: Canonical transactions with ``is_fraud`` (and optionally
            ``label_available_at``), any order.
        params: The feature parameters.
        cutoff: UTC-aware time of the snapshot.

    Returns:
        One frame of card states (``card_id``, ``state_time`` and the fields of
        ``CardState``) and one of merchant states (``merchant_id``, ``state_time``
        and the fields of ``MerchantState``), sorted by id. Every card and merchant
        with a transaction before ``cutoff`` has a row.

    Raises:
        ValueError: ``cutoff`` is naive or a window list is invalid.
    """
    if cutoff.utcoffset() is None:
        raise ValueError(
            f"cutoff {cutoff!r} is naive: expected a timezone-aware datetime"
        )
    check_params(params)
    cutoff_us = epoch_us(cutoff)
    history = (
        transactions.with_columns(
            _us=pl.col("timestamp").dt.epoch("us"),
            _label_us=label_time_expr(
                transactions, label_delay_days=params.label_delay_days
            ).dt.epoch("us"),
        )
        .filter(pl.col("_us") < cutoff_us)
        .sort(*ORDER_COLUMNS)
    )
    for column in ("merchant_country", "device_id"):
        if column not in history.columns:
            history = history.with_columns(pl.lit(None, dtype=pl.String).alias(column))
    cards = _bootstrap_cards(history, params, cutoff_us=cutoff_us)
    merchants = _bootstrap_merchants(history, params, cutoff_us=cutoff_us)
    logger.info(
        "bootstrapped %d card and %d merchant states as of %s",
        cards.height,
        merchants.height,
        cutoff.isoformat(),
    )
    return cards, merchants


def _bootstrap_cards(
    history: pl.DataFrame, params: FeaturesParams, *, cutoff_us: int
) -> pl.DataFrame:
    amount = pl.col("amount_minor")
    shifted = amount - amount.first()
    horizon = cutoff_us - card_state_window_hours(params) * MICROSECONDS_PER_HOUR
    recent = pl.col("_us") > horizon

    def non_null_sorted(column: str) -> pl.Expr:
        return pl.col(column).drop_nulls().unique().sort().alias(column)

    # First-use flags as the feature table defines them: the card's first
    # non-null value of the column in the global order.
    history = history.with_columns(
        (
            pl.col(column).is_not_null()
            & (pl.int_range(pl.len()).over("card_id", column) == 0)
        )
        .cast(pl.Int64)
        .alias(f"_{flag}")
        for flag, column in FIRST_TIME_ATTRIBUTES.items()
    )
    new_value_events = {
        state_field: pl.col(f"_{NEW_VALUE_ATTRIBUTES[name]}").filter(recent)
        for name, state_field in NEW_VALUE_EVENT_FIELDS.items()
    }
    lifetime = history.group_by("card_id").agg(
        count=pl.len().cast(pl.Int64),
        amount_sum=amount.sum(),
        amount_shift=amount.first(),
        shifted_sum=shifted.sum(),
        shifted_square_sum=(shifted * shifted).sum(),
        last_seen_us=pl.col("_us").max(),
        merchants=non_null_sorted("merchant_id"),
        devices=non_null_sorted("device_id"),
        countries=non_null_sorted("merchant_country"),
        event_us=pl.col("_us").filter(recent),
        event_ids=pl.col("transaction_id").filter(recent),
        event_amounts=amount.filter(recent),
        event_merchants=pl.col("merchant_id").filter(recent),
        event_countries=pl.col("merchant_country").fill_null(NO_VALUE).filter(recent),
        event_devices=pl.col("device_id").fill_null(NO_VALUE).filter(recent),
        **new_value_events,
    )
    names = [item.name for item in fields(CardState)]
    return lifetime.select(
        "card_id",
        pl.from_epoch("last_seen_us", time_unit="us")
        .dt.replace_time_zone("UTC")
        .alias(STATE_TIME_COLUMN),
        *names,
    ).sort("card_id")


def _bootstrap_merchants(
    history: pl.DataFrame, params: FeaturesParams, *, cutoff_us: int
) -> pl.DataFrame:
    horizon = cutoff_us - merchant_state_window_hours(params) * MICROSECONDS_PER_HOUR
    fraud_days = max(params.merchant_fraud_windows_days)
    fraud_horizon = cutoff_us - 24 * fraud_days * MICROSECONDS_PER_HOUR
    known_fraud = (
        pl.col("is_fraud")
        & (pl.col("_label_us") < cutoff_us)
        & (pl.col("_us") > fraud_horizon)
    )
    frauds = history.sort("_label_us", *ORDER_COLUMNS)
    states = frauds.group_by("merchant_id").agg(
        event_us=pl.col("_us").filter(pl.col("_us") > horizon).sort(),
        fraud_ids=pl.col("transaction_id").filter(known_fraud),
        fraud_us=pl.col("_us").filter(known_fraud),
        fraud_label_us=pl.col("_label_us").filter(known_fraud),
        _last_us=pl.max_horizontal(
            pl.col("_us").max(), pl.col("_label_us").filter(known_fraud).max()
        ),
    )
    names = [item.name for item in fields(MerchantState)]
    return states.select(
        "merchant_id",
        pl.from_epoch("_last_us", time_unit="us")
        .dt.replace_time_zone("UTC")
        .alias(STATE_TIME_COLUMN),
        *names,
    ).sort("merchant_id")


def replay_events(
    transactions: pl.DataFrame, params: FeaturesParams, *, start: datetime
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield the transactions and fraud label events from ``start`` on, in order.

    The order is by time. At equal times label events come first, then
    transactions by id. Label events are yielded for frauds whose label becomes
    available at or after ``start``, including frauds of earlier transactions.

    Yields:
        ``("transaction", fields)`` with the canonical fields, or ``("label",
        keyword arguments of OnlineFeatures.apply_label)``.
    """
    start_us = epoch_us(start)
    frame = transactions.with_columns(
        _us=pl.col("timestamp").dt.epoch("us"),
        _label_time=label_time_expr(
            transactions, label_delay_days=params.label_delay_days
        ),
    )
    events = (
        frame.filter(pl.col("_us") >= start_us)
        .select(
            _kind=pl.lit(1),
            _at=pl.col("_us"),
            _id=pl.col("transaction_id"),
            _row=pl.struct(pl.exclude("_us", "_label_time")),
        )
        .vstack(
            frame.filter(
                pl.col("is_fraud") & (pl.col("_label_time").dt.epoch("us") >= start_us)
            ).select(
                _kind=pl.lit(0),
                _at=pl.col("_label_time").dt.epoch("us"),
                _id=pl.col("transaction_id"),
                _row=pl.struct(pl.exclude("_us", "_label_time")),
            )
        )
        .sort("_at", "_kind", "_id")
    )
    labels = frame.select("transaction_id", "_label_time")
    label_times = dict(labels.iter_rows())
    for kind, _, _, row in events.iter_rows():
        if kind == 1:
            yield "transaction", row
        else:
            yield (
                "label",
                {
                    "transaction_id": row["transaction_id"],
                    "merchant_id": row["merchant_id"],
                    "timestamp": row["timestamp"],
                    "is_fraud": True,
                    "label_available_at": label_times[row["transaction_id"]],
                },
            )
