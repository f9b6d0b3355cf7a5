"""Lineage checks: each way the lineage file can disagree is reported by name."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from cardfraud.feast_definitions import (
    CARD_STATE_VIEW,
    MERCHANT_STATE_VIEW,
    TRANSACTION_VIEW,
    build_definitions,
    feature_lineage,
)
from cardfraud.feature_store import DEFAULT_STORE_YAML, STORE_YAML
from cardfraud.features import describe_features, feature_columns
from cardfraud.lineage import (
    LineageError,
    check_lineage,
    expected_window_parameters,
    raise_for_lineage,
    registry_feature_views,
)
from cardfraud.params import FeaturesParams

PARAMS = FeaturesParams(
    windows_hours=[1, 24, 168, 720],
    label_delay_days=30,
    distinct_windows_hours=[24, 168],
    merchant_windows_hours=[1, 24, 168],
    merchant_fraud_windows_days=[7, 30],
)
SOURCE = "data/features/features.parquet"


@pytest.fixture(scope="module")
def feature_views(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """Views of a temporary Feast repository with the definitions applied (SQLite)."""
    from feast import FeatureStore

    repo = tmp_path_factory.mktemp("feature_repo")
    (repo / STORE_YAML).write_text(DEFAULT_STORE_YAML, encoding="utf-8")
    store = FeatureStore(repo_path=str(repo))
    definitions = build_definitions(
        repo / "features" / "features.parquet", feature_columns(PARAMS)
    )
    store.apply(definitions.objects())
    # A fresh store object reads the views back from the registry file.
    return registry_feature_views(FeatureStore(repo_path=str(repo)))


def built_lineage(params: FeaturesParams = PARAMS) -> dict[str, dict[str, Any]]:
    """Lineage as the stage writes it, through JSON so that no entry shares a dict."""
    lineage = feature_lineage(describe_features(params), source_path=SOURCE)
    return json.loads(json.dumps(lineage))


def run_check(
    lineage: dict[str, dict[str, Any]],
    feature_views: dict[str, set[str]],
    params: FeaturesParams = PARAMS,
) -> list[str]:
    return check_lineage(
        lineage,
        model_features=feature_columns(PARAMS),
        feature_views=feature_views,
        params=params,
    )


def test_registry_lists_applied_views(feature_views: dict[str, set[str]]) -> None:
    assert sorted(feature_views) == sorted(
        [TRANSACTION_VIEW, CARD_STATE_VIEW, MERCHANT_STATE_VIEW]
    )
    assert feature_views[TRANSACTION_VIEW] == set(feature_columns(PARAMS))


def test_built_lineage_passes(feature_views: dict[str, set[str]]) -> None:
    lineage = built_lineage()
    assert len(lineage) == len(feature_columns(PARAMS)) == 42
    assert run_check(lineage, feature_views) == []
    raise_for_lineage([])


def test_missing_entry_fails(feature_views: dict[str, set[str]]) -> None:
    lineage = built_lineage()
    del lineage["card_distinct_devices_168h"]
    problems = run_check(lineage, feature_views)
    assert len(problems) == 1
    assert (
        "model feature 'card_distinct_devices_168h' has no lineage entry"
        in (problems[0])
    )
    with pytest.raises(LineageError, match="card_distinct_devices_168h"):
        raise_for_lineage(problems)


def test_entry_for_unused_feature_fails(feature_views: dict[str, set[str]]) -> None:
    lineage = built_lineage()
    lineage["card_count_2h"] = copy.deepcopy(lineage["card_count_1h"])
    problems = run_check(lineage, feature_views)
    assert problems == [
        "lineage entry 'card_count_2h' is not a model feature: rebuild lineage.json "
        "with the params.yaml the model was trained with"
    ]


def test_unknown_feature_view_fails(feature_views: dict[str, set[str]]) -> None:
    lineage = built_lineage()
    lineage["merchant_count_24h"]["feature_view"] = "merchant_velocity"
    problems = run_check(lineage, feature_views)
    assert len(problems) == 1
    assert (
        "feature view 'merchant_velocity', which is not in the Feast registry"
        in (problems[0])
    )


def test_view_without_feature_fails(feature_views: dict[str, set[str]]) -> None:
    lineage = built_lineage()
    lineage["log_amount"]["feature_view"] = CARD_STATE_VIEW
    problems = run_check(lineage, feature_views)
    assert len(problems) == 1
    assert "'card_state', which has no feature 'log_amount'" in problems[0]


def test_unknown_online_source_fails(feature_views: dict[str, set[str]]) -> None:
    lineage = built_lineage()
    lineage["card_count_1h"]["online_source"] = "card_stream"
    problems = run_check(lineage, feature_views)
    assert len(problems) == 1
    assert "online source 'card_stream'" in problems[0]


def test_missing_entry_key_fails(feature_views: dict[str, set[str]]) -> None:
    lineage = built_lineage()
    del lineage["hour_of_day"]["transformation"]
    problems = run_check(lineage, feature_views)
    assert problems == [
        "lineage entry 'hour_of_day' has no ['transformation'] key(s); rebuild "
        "lineage.json"
    ]


def test_window_differing_from_params_fails(
    feature_views: dict[str, set[str]],
) -> None:
    lineage = built_lineage()
    lineage["card_amount_sum_168h"]["parameters"]["window_hours"] = 120
    problems = run_check(lineage, feature_views)
    assert len(problems) == 1
    assert "'card_amount_sum_168h' has window_hours=120" in problems[0]
    assert "gives 168" in problems[0]


def test_delay_differing_from_params_fails(
    feature_views: dict[str, set[str]],
) -> None:
    params = PARAMS.model_copy(update={"label_delay_days": 14})
    problems = run_check(built_lineage(), feature_views, params)
    assert len(problems) == 2
    assert "'merchant_fraud_rate_7d' has label_delay_days=30" in problems[0]
    assert "'merchant_fraud_rate_30d' has label_delay_days=30" in problems[1]
    assert all("gives 14" in problem for problem in problems)


def test_fraud_window_differing_from_params_fails(
    feature_views: dict[str, set[str]],
) -> None:
    lineage = built_lineage()
    lineage["merchant_fraud_rate_30d"]["parameters"]["window_days"] = 28
    problems = run_check(lineage, feature_views)
    assert len(problems) == 1
    assert "'merchant_fraud_rate_30d' has window_days=28" in problems[0]


def test_window_on_unwindowed_feature_fails(
    feature_views: dict[str, set[str]],
) -> None:
    lineage = built_lineage()
    lineage["card_prior_count"]["parameters"]["window_hours"] = 720
    problems = run_check(lineage, feature_views)
    assert len(problems) == 1
    assert "'card_prior_count' has window_hours=720" in problems[0]
    assert "gives None" in problems[0]


def test_expected_windows_follow_params() -> None:
    params = FeaturesParams(
        windows_hours=[2],
        label_delay_days=9,
        distinct_windows_hours=[6],
        new_value_windows_hours=[4],
        merchant_windows_hours=[3],
        merchant_fraud_windows_days=[5],
    )
    assert expected_window_parameters(params) == {
        "card_count_2h": {"window_hours": 2},
        "card_amount_sum_2h": {"window_hours": 2},
        "card_distinct_merchants_6h": {"window_hours": 6},
        "card_distinct_countries_6h": {"window_hours": 6},
        "card_distinct_devices_6h": {"window_hours": 6},
        "card_new_merchants_4h": {"window_hours": 4},
        "card_new_devices_4h": {"window_hours": 4},
        "card_new_countries_4h": {"window_hours": 4},
        "merchant_count_3h": {"window_hours": 3},
        "merchant_fraud_rate_5d": {"window_days": 5, "label_delay_days": 9},
    }


def test_lineage_for_other_params_passes() -> None:
    params = FeaturesParams(
        windows_hours=[2, 48],
        label_delay_days=9,
        distinct_windows_hours=[6],
        merchant_windows_hours=[3],
        merchant_fraud_windows_days=[5],
    )
    columns = feature_columns(params)
    views = {
        TRANSACTION_VIEW: set(columns),
        CARD_STATE_VIEW: set(),
        MERCHANT_STATE_VIEW: set(),
    }
    problems = check_lineage(
        built_lineage(params),
        model_features=columns,
        feature_views=views,
        params=params,
    )
    assert problems == []
    assert (
        check_lineage(
            built_lineage(params),
            model_features=columns,
            feature_views=views,
            params=PARAMS,
        )
        != []
    )
