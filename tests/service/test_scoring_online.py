"""ScoringCore in process on the smoke champion: the online path reads and updates."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from cardfraud.data import read_transactions
from cardfraud.online import CARD_STATE_VIEW
from cardfraud.params import load_params
from cardfraud.paths import Workspace, project_root
from cardfraud.serving import REDIS_SOCKET_TIMEOUT_S, ScoringCore, ServiceSettings
from tests.support.servers import free_port


@pytest.fixture(scope="module")
def core(
    smoke_workspace: Workspace, smoke_params_path: Path, tmp_path_factory
) -> Iterator[ScoringCore]:
    params = load_params(smoke_params_path)
    folder = tmp_path_factory.mktemp("core")
    settings = ServiceSettings(
        workspace=smoke_workspace,
        model_name=params.registry.model_name,
        model_alias="champion",
        tracking_uri=smoke_workspace.tracking_uri(),
        features=params.features,
        audit_db=folder / "audit.db",
        lock_file=folder / "online.lock",
    )
    scoring = ScoringCore.from_settings(settings)
    yield scoring
    scoring.close()


@pytest.fixture(scope="module")
def last_row(smoke_workspace: Workspace) -> dict:
    row = read_transactions(smoke_workspace.raw_dir).row(-1, named=True)
    labels = ("is_fraud", "label_available_at", "fraud_scenario")
    return {key: value for key, value in row.items() if key not in labels}


def test_score_appends_to_card_state(core: ScoringCore, last_row: dict) -> None:
    transaction = {
        **last_row,
        "transaction_id": "svc-1",
        "timestamp": last_row["timestamp"] + timedelta(minutes=5),
    }
    before = core.online.read_card(transaction["card_id"])
    first = core.score(transaction)
    after = core.online.read_card(transaction["card_id"])
    following = core.online.features(
        {
            **transaction,
            "transaction_id": "svc-2",
            "timestamp": transaction["timestamp"] + timedelta(minutes=1),
        }
    )
    assert before is not None
    assert after is not None
    assert first["missing_features"] == []
    assert after.count == before.count + 1
    assert after.event_ids[-1] == "svc-1"
    assert following.values["card_count_1h"] >= 1.0
    assert following.values["seconds_since_prev_card"] == 60.0
    assert 0.0 <= first["score"] <= 1.0
    assert set(first["timings_ms"]) == {"features", "score", "reasons", "total"}


def test_score_new_card_flags_missing_state(core: ScoringCore, last_row: dict) -> None:
    transaction = {
        **last_row,
        "transaction_id": "svc-new-card",
        "card_id": "card-never-seen",
        "timestamp": last_row["timestamp"] + timedelta(hours=1),
    }
    result = core.score(transaction)
    assert result["missing_features"] == [CARD_STATE_VIEW]
    assert core.online.missing_counts[CARD_STATE_VIEW] >= 1
    assert core.online.read_card("card-never-seen").count == 1


def test_settings_reject_params_without_model_features(
    smoke_workspace: Workspace, smoke_params_path: Path
) -> None:
    params = load_params(smoke_params_path)
    features = params.features.model_copy(update={"distinct_windows_hours": [12]})
    settings = ServiceSettings(
        workspace=smoke_workspace,
        model_name=params.registry.model_name,
        model_alias="champion",
        tracking_uri=smoke_workspace.tracking_uri(),
        features=features,
    )
    with pytest.raises(ValueError, match="card_distinct_merchants_24h"):
        ScoringCore.from_settings(settings)


def test_unreachable_redis_scores_degraded(
    smoke_workspace: Workspace, smoke_params_path: Path, tmp_path, last_row: dict
) -> None:
    params = load_params(smoke_params_path)
    port = free_port()
    template = project_root() / "feature_repo" / "feature_store.redis.yaml"
    store_yaml = smoke_workspace.feature_repo / "feature_store.unreachable.yaml"
    store_yaml.write_text(
        template.read_text().replace("${REDIS_CONNECTION}", f"127.0.0.1:{port}")
    )
    settings = ServiceSettings(
        workspace=smoke_workspace,
        model_name=params.registry.model_name,
        model_alias="champion",
        tracking_uri=smoke_workspace.tracking_uri(),
        features=params.features,
        feature_store_yaml=store_yaml,
        audit_db=tmp_path / "audit.db",
    )
    scoring = ScoringCore.from_settings(settings)
    store = scoring.online.store
    feast_client = store.provider.online_store._get_client(store.config.online_store)
    try:
        result = scoring.score({**last_row, "transaction_id": "svc-degraded"})
        health = scoring.store_health()
    finally:
        scoring.close()
    connection_kwargs = feast_client.connection_pool.connection_kwargs
    assert feast_client.get_retry().get_retries() == 1
    assert connection_kwargs["socket_timeout"] == REDIS_SOCKET_TIMEOUT_S
    assert connection_kwargs["socket_connect_timeout"] == REDIS_SOCKET_TIMEOUT_S
    assert result["degraded"] is True
    assert result["cold_start"] is True
    assert scoring.degraded_count == 1
    assert health["online_store"]["status"] == "unavailable"
    assert scoring.audit.written == 1
