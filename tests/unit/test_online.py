"""Online aggregates without a store: state updates against the feature table."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from cardfraud.features import (
    NO_DISTANCE_KM,
    NO_HISTORY_SECONDS,
    build_feature_table,
    feature_columns,
)
from cardfraud.online import (
    CARD_STATE_VIEW,
    MERCHANT_STATE_VIEW,
    CardState,
    MerchantState,
    TransactionConflictError,
    add_label_to_merchant,
    add_transaction_to_card,
    add_transaction_to_merchant,
    bootstrap_states,
    check_same_event,
    compute_features,
    epoch_us,
    replay_events,
    state_field_types,
)
from cardfraud.params import FeaturesParams
from tests.unit.test_features import PARAMS, make_transactions

START = datetime(2025, 1, 1, tzinfo=UTC)


def state_from_row(state_class: type, row: dict) -> CardState | MerchantState:
    return state_class(**{name: row[name] for name in state_field_types(state_class)})


def replay_in_memory(
    frame: pl.DataFrame, params: FeaturesParams, *, start: datetime
) -> dict[str, dict[str, float]]:
    """Bootstrap at ``start``, then stream the rest through the pure functions."""
    cards_frame, merchants_frame = bootstrap_states(frame, params, cutoff=start)
    cards = {
        row["card_id"]: state_from_row(CardState, row)
        for row in cards_frame.iter_rows(named=True)
    }
    merchants = {
        row["merchant_id"]: state_from_row(MerchantState, row)
        for row in merchants_frame.iter_rows(named=True)
    }
    features = {}
    for kind, event in replay_events(frame, params, start=start):
        if kind == "label":
            merchant = merchants.get(event["merchant_id"], MerchantState())
            merchants[event["merchant_id"]] = add_label_to_merchant(
                merchant,
                transaction_id=event["transaction_id"],
                transaction_us=epoch_us(event["timestamp"]),
                label_us=epoch_us(event["label_available_at"]),
                params=params,
            )
            continue
        card = cards.get(event["card_id"])
        merchant = merchants.get(event["merchant_id"])
        result = compute_features(event, card, merchant, params)
        features[event["transaction_id"]] = result.values
        cards[event["card_id"]] = add_transaction_to_card(result.card, event, params)
        merchants[event["merchant_id"]] = add_transaction_to_merchant(
            result.merchant, event, params
        )
    return features


def assert_matches_table(
    features: dict[str, dict[str, float]], table: pl.DataFrame, params: FeaturesParams
) -> None:
    assert len(features) == table.height
    for row in table.iter_rows(named=True):
        online = features[row["transaction_id"]]
        assert list(online) == feature_columns(params)
        for name, value in online.items():
            assert value == pytest.approx(row[name], rel=1e-9, abs=0.0), (
                row["transaction_id"],
                name,
            )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_stream_from_empty_matches_table(seed: int) -> None:
    frame = make_transactions(
        400, seed=seed, cards=6, merchants=5, days=45, grid_s=1800
    )
    assert frame["timestamp"].is_duplicated().sum() > 50
    table = build_feature_table(frame, PARAMS)
    features = replay_in_memory(frame, PARAMS, start=START)
    assert_matches_table(features, table, PARAMS)


@pytest.mark.parametrize("cut_day", [10, 31, 44])
def test_stream_after_bootstrap_matches_table(cut_day: int) -> None:
    frame = make_transactions(400, seed=4, cards=6, merchants=5, days=45, grid_s=1800)
    start = START + timedelta(days=cut_day)
    table = build_feature_table(frame, PARAMS).filter(pl.col("timestamp") >= start)
    features = replay_in_memory(frame, PARAMS, start=start)
    assert table.height > 0
    assert_matches_table(features, table, PARAMS)


def test_stream_matches_table_with_short_windows() -> None:
    params = PARAMS.model_copy(
        update={
            "windows_hours": [1, 5],
            "distinct_windows_hours": [2],
            "merchant_windows_hours": [3],
            "merchant_fraud_windows_days": [1, 2],
            "label_delay_days": 1,
        }
    )
    frame = make_transactions(300, seed=8, cards=4, merchants=3, days=10, grid_s=600)
    start = START + timedelta(days=5)
    table = build_feature_table(frame, params).filter(pl.col("timestamp") >= start)
    assert_matches_table(replay_in_memory(frame, params, start=start), table, params)


def transaction(**fields: object) -> dict:
    base = {
        "transaction_id": "t1",
        "timestamp": START,
        "card_id": "c1",
        "merchant_id": "m1",
        "amount_minor": 1_000,
        "device_id": "d1",
        "merchant_country": "DE",
    }
    return {**base, **fields}


def test_missing_states_flagged_with_defaults() -> None:
    result = compute_features(transaction(), None, None, PARAMS)
    assert result.missing == [CARD_STATE_VIEW, MERCHANT_STATE_VIEW]
    assert result.values["card_count_24h"] == 0.0
    assert result.values["card_prior_count"] == 0.0
    assert result.values["amount_ratio_card_mean"] == 1.0
    assert result.values["seconds_since_prev_card"] == NO_HISTORY_SECONDS
    assert result.values["merchant_fraud_rate_30d"] == 0.0
    assert result.values["first_time_merchant"] == 1.0
    assert result.values["first_time_device"] == 1.0
    assert result.values["first_time_country"] == 1.0
    assert result.values["distance_from_home_km"] == NO_DISTANCE_KM
    assert result.values["log_amount"] == pytest.approx(math.log1p(10.0))


def test_empty_state_not_flagged_missing() -> None:
    result = compute_features(transaction(), CardState(), MerchantState(), PARAMS)
    assert result.missing == []


def test_first_time_flags_absent_values_zero() -> None:
    result = compute_features(
        transaction(device_id=None, merchant_country=None), None, None, PARAMS
    )
    assert result.values["first_time_device"] == 0.0
    assert result.values["first_time_country"] == 0.0


def test_card_update_leaves_input_unchanged() -> None:
    card = CardState()
    updated = add_transaction_to_card(card, transaction(), PARAMS)
    assert card == CardState()
    assert updated.count == 1
    assert updated.amount_shift == 1_000
    assert updated.event_ids == ["t1"]
    assert updated.devices == ["d1"]


def test_card_update_drops_events_past_longest_window() -> None:
    card = add_transaction_to_card(CardState(), transaction(), PARAMS)
    later = START + timedelta(hours=720)
    card = add_transaction_to_card(
        card, transaction(transaction_id="t2", timestamp=later), PARAMS
    )
    assert card.event_ids == ["t2"]
    assert card.count == 2
    assert card.merchants == ["m1"]


def test_card_tied_event_orders_by_id() -> None:
    card = add_transaction_to_card(CardState(), transaction(transaction_id="b"), PARAMS)
    earlier = compute_features(transaction(transaction_id="a"), card, None, PARAMS)
    later = compute_features(transaction(transaction_id="c"), card, None, PARAMS)
    assert earlier.values["card_count_1h"] == 0.0
    assert later.values["card_count_1h"] == 1.0


def test_label_counts_only_strictly_before() -> None:
    merchant = add_transaction_to_merchant(MerchantState(), transaction(), PARAMS)
    label_at = START + timedelta(days=2)
    merchant = add_label_to_merchant(
        merchant,
        transaction_id="t1",
        transaction_us=epoch_us(START),
        label_us=epoch_us(label_at),
        params=PARAMS,
    )
    at_label = compute_features(
        transaction(transaction_id="t2", card_id="c2", timestamp=label_at),
        None,
        merchant,
        PARAMS,
    )
    after_label = compute_features(
        transaction(
            transaction_id="t3",
            card_id="c3",
            timestamp=label_at + timedelta(microseconds=1),
        ),
        None,
        merchant,
        PARAMS,
    )
    assert at_label.values["merchant_fraud_rate_30d"] == 0.0
    assert after_label.values["merchant_fraud_rate_30d"] == 1.0
    assert after_label.values["merchant_fraud_rate_7d"] == 1.0


def test_label_applied_twice_counts_once() -> None:
    merchant = add_transaction_to_merchant(MerchantState(), transaction(), PARAMS)
    arguments = {
        "transaction_id": "t1",
        "transaction_us": epoch_us(START),
        "label_us": epoch_us(START + timedelta(hours=1)),
        "params": PARAMS,
    }
    once = add_label_to_merchant(merchant, **arguments)
    twice = add_label_to_merchant(once, **arguments)
    assert twice is once
    assert once.fraud_ids == ["t1"]


def test_label_outside_every_window_dropped() -> None:
    label_at = START + timedelta(days=40)
    merchant = add_label_to_merchant(
        MerchantState(),
        transaction_id="t1",
        transaction_us=epoch_us(START),
        label_us=epoch_us(label_at),
        params=PARAMS,
    )
    assert merchant.fraud_ids == []


def test_label_before_transaction_clamped() -> None:
    merchant = add_label_to_merchant(
        MerchantState(),
        transaction_id="t1",
        transaction_us=epoch_us(START),
        label_us=epoch_us(START - timedelta(days=1)),
        params=PARAMS,
    )
    assert merchant.fraud_label_us == [epoch_us(START)]


def test_features_reject_naive_timestamp() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        compute_features(
            transaction(timestamp=datetime(2025, 1, 1)), None, None, PARAMS
        )


def test_features_reject_float_amount() -> None:
    with pytest.raises(ValueError, match="amount_minor"):
        compute_features(transaction(amount_minor=10.5), None, None, PARAMS)


def test_bootstrap_rejects_naive_cutoff() -> None:
    frame = make_transactions(10, seed=1, cards=2, merchants=2, days=1, grid_s=60)
    with pytest.raises(ValueError, match="naive"):
        bootstrap_states(frame, PARAMS, cutoff=datetime(2025, 1, 2))


def test_bootstrap_keeps_stale_entities() -> None:
    frame = make_transactions(60, seed=2, cards=3, merchants=2, days=2, grid_s=60)
    cutoff = START + timedelta(days=100)
    cards, merchants = bootstrap_states(frame, PARAMS, cutoff=cutoff)
    assert cards["card_id"].to_list() == sorted(frame["card_id"].unique().to_list())
    assert cards["event_us"].list.len().sum() == 0
    assert cards["count"].sum() == 60
    assert merchants.height == frame["merchant_id"].n_unique()
    assert merchants["event_us"].list.len().sum() == 0


def test_replay_orders_labels_before_tied_transactions() -> None:
    frame = make_transactions(2, seed=3, cards=1, merchants=1, days=1, grid_s=86_400)
    frame = frame.with_columns(
        transaction_id=pl.Series(["a", "b"]),
        timestamp=pl.Series([START, START + timedelta(hours=1)]),
        is_fraud=pl.Series([True, False]),
        label_available_at=pl.Series(
            [START + timedelta(hours=1), None], dtype=pl.Datetime("us", "UTC")
        ),
    )
    kinds = [
        (kind, event["transaction_id"])
        for kind, event in replay_events(frame, PARAMS, start=START)
    ]
    assert kinds == [("transaction", "a"), ("label", "a"), ("transaction", "b")]


def test_card_first_use_flags_ignore_arrival_order() -> None:
    payments = [
        transaction(
            transaction_id=f"t{i}",
            timestamp=START + timedelta(minutes=i),
            merchant_id=f"m{i % 2}",
            device_id=None if i == 3 else f"d{i % 3}",
            merchant_country="DE" if i < 4 else "FR",
        )
        for i in range(6)
    ]
    in_order = CardState()
    for payment in payments:
        in_order = add_transaction_to_card(in_order, payment, PARAMS)
    for arrival in ([5, 4, 3, 2, 1, 0], [2, 0, 5, 1, 4, 3], [1, 3, 5, 0, 2, 4]):
        shuffled = CardState()
        for index in arrival:
            shuffled = add_transaction_to_card(shuffled, payments[index], PARAMS)
        assert shuffled == in_order, arrival
    assert in_order.event_new_merchants == [1, 1, 0, 0, 0, 0]
    assert in_order.event_new_devices == [1, 1, 1, 0, 0, 0]
    assert in_order.event_new_countries == [1, 0, 0, 0, 1, 0]


def test_card_first_use_flags_match_feature_table() -> None:
    frame = make_transactions(400, seed=11, cards=12, merchants=6, days=3, grid_s=600)
    table = build_feature_table(frame, PARAMS).sort("timestamp", "transaction_id")
    states: dict[str, CardState] = {}
    shuffled = frame.sample(fraction=1.0, shuffle=True, seed=3)
    for row in shuffled.iter_rows(named=True):
        card = states.get(row["card_id"], CardState())
        states[row["card_id"]] = add_transaction_to_card(card, row, PARAMS)
    for card_id, card in states.items():
        rows = table.filter(pl.col("card_id") == card_id)
        recent = rows.filter(pl.col("transaction_id").is_in(card.event_ids))
        assert recent["transaction_id"].to_list() == card.event_ids
        assert recent["first_time_merchant"].cast(pl.Int64).to_list() == (
            card.event_new_merchants
        )
        assert recent["first_time_device"].cast(pl.Int64).to_list() == (
            card.event_new_devices
        )
        assert recent["first_time_country"].cast(pl.Int64).to_list() == (
            card.event_new_countries
        )


def test_late_transaction_scored_at_its_time() -> None:
    later = transaction(transaction_id="t2", timestamp=START + timedelta(seconds=10))
    card = add_transaction_to_card(CardState(), later, PARAMS)
    merchant = add_transaction_to_merchant(MerchantState(), later, PARAMS)
    early = compute_features(transaction(), card, merchant, PARAMS).values
    assert early["seconds_since_prev_card"] == NO_HISTORY_SECONDS
    assert early["card_prior_count"] == 0.0
    assert early["card_count_1h"] == 0.0
    assert early["merchant_count_1h"] == 0.0
    assert early["first_time_merchant"] == 1.0
    assert early["first_time_device"] == 1.0
    assert early["first_time_country"] == 1.0


def test_retry_gets_first_scoring_features() -> None:
    first = transaction(transaction_id="t1", amount_minor=400)
    second = transaction(
        transaction_id="t2",
        timestamp=START + timedelta(minutes=5),
        amount_minor=9_000,
        merchant_id="m2",
    )
    card = add_transaction_to_card(CardState(), first, PARAMS)
    merchant = add_transaction_to_merchant(MerchantState(), second, PARAMS)
    scored = compute_features(second, card, merchant, PARAMS).values
    card = add_transaction_to_card(card, second, PARAMS)
    merchant = add_transaction_to_merchant(merchant, second, PARAMS)
    third = transaction(transaction_id="t3", timestamp=START + timedelta(minutes=9))
    card = add_transaction_to_card(card, third, PARAMS)
    retried = compute_features(second, card, merchant, PARAMS).values
    assert retried == scored
    assert retried["seconds_since_prev_card"] == 300.0
    assert retried["card_prior_count"] == 1.0
    assert retried["first_time_merchant"] == 1.0


def test_rescoring_every_event_matches_table() -> None:
    """Every transaction scored again against the final states gets its table row.

    The states take the transactions in a shuffled order, so each one is both a
    retry and, for most, a late arrival. Labels are not applied, so the merchant
    fraud rates are left out of the comparison. Times on a 1-s grid do not tie,
    because a merchant's state keeps no ids to order tied events by.
    """
    frame = make_transactions(300, seed=6, cards=6, merchants=4, days=10, grid_s=1)
    assert frame["timestamp"].n_unique() == frame.height
    table = build_feature_table(frame, PARAMS)
    cards: dict[str, CardState] = {}
    merchants: dict[str, MerchantState] = {}
    for row in frame.sample(fraction=1.0, shuffle=True, seed=2).iter_rows(named=True):
        card = cards.get(row["card_id"], CardState())
        merchant = merchants.get(row["merchant_id"], MerchantState())
        cards[row["card_id"]] = add_transaction_to_card(card, row, PARAMS)
        merchants[row["merchant_id"]] = add_transaction_to_merchant(
            merchant, row, PARAMS
        )
    compared = [
        name
        for name in feature_columns(PARAMS)
        if not name.startswith("merchant_fraud_rate")
    ]
    for row in table.iter_rows(named=True):
        event = frame.row(
            by_predicate=pl.col("transaction_id") == row["transaction_id"], named=True
        )
        values = compute_features(
            event, cards[event["card_id"]], merchants[event["merchant_id"]], PARAMS
        ).values
        for name in compared:
            assert values[name] == pytest.approx(row[name], rel=1e-9, abs=1e-9), (
                row["transaction_id"],
                name,
            )


def test_same_event_check_names_changed_fields() -> None:
    card = add_transaction_to_card(CardState(), transaction(), PARAMS)
    check_same_event(card, transaction())
    with pytest.raises(TransactionConflictError) as raised:
        check_same_event(card, transaction(amount_minor=2_000, device_id="d9"))
    assert raised.value.fields == ["amount_minor", "device_id"]
    assert "'t1'" in str(raised.value)
