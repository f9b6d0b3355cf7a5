"""Online/offline parity: a replayed day through Feast equals the training set.

The day is replayed on SQLite, on a real redis-server on 127.0.0.1, and on DynamoDB
of a moto server on 127.0.0.1 (the servers are fixtures of tests/conftest.py).
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from cardfraud.feature_store import (
    FEATURES_FILE,
    STORE_YAML,
    apply_and_load_state,
    open_store,
    read_training_set,
)
from cardfraud.features import build_feature_table, feature_columns
from cardfraud.online import (
    CARD_STATE_VIEW,
    MERCHANT_STATE_VIEW,
    OnlineFeatures,
    replay_events,
)
from cardfraud.params import FeaturesParams
from cardfraud.paths import Workspace, project_root
from cardfraud.schema import CHANNELS, polars_schema
from tests.support.aws import use_fake_aws_credentials

os.environ.setdefault("FEAST_USAGE", "False")
os.environ.setdefault("DO_NOT_TRACK", "1")

PARAMS = FeaturesParams(
    windows_hours=[1, 24, 168, 720],
    label_delay_days=30,
    distinct_windows_hours=[24, 168],
    merchant_windows_hours=[1, 24, 168],
    merchant_fraud_windows_days=[7, 30],
)
START = datetime(2025, 1, 1, tzinfo=UTC)
REPLAY_DAY = START + timedelta(days=31)


def history_rows(rng: np.random.Generator) -> list[dict]:
    """Rows of a 32-day table: 30 days of history, a quiet day, the replayed day.

    Cards c0-c9 pay throughout. Cards s0-s2 and merchant ms only paid on day 0 and
    pay again on the replayed day, past every window. Cards n0-n2 first pay on the
    replayed day. Times sit on a 5-minute grid, so many of them tie.
    """
    rows = []

    def add(card: str, merchant: str, moment: datetime) -> None:
        rows.append({"card_id": card, "merchant_id": merchant, "timestamp": moment})

    for _ in range(1_500):
        day = int(rng.integers(0, 30))
        slot = int(rng.integers(0, 288))
        moment = START + timedelta(days=day, minutes=5 * slot)
        add(f"c{rng.integers(0, 10)}", f"m{rng.integers(0, 6)}", moment)
    for card in ("s0", "s1", "s2"):
        add(card, "ms", START + timedelta(hours=int(rng.integers(0, 24))))
    for _ in range(300):
        moment = REPLAY_DAY + timedelta(minutes=5 * int(rng.integers(0, 288)))
        card = rng.choice([*[f"c{i}" for i in range(10)], "s0", "s1", "s2", "n0"])
        merchant = rng.choice([*[f"m{i}" for i in range(6)], "ms"])
        add(str(card), str(merchant), moment)
    for card in ("n1", "n2"):
        add(card, "m0", REPLAY_DAY + timedelta(hours=10))
    # One card pays three times in the same microsecond on the replayed day.
    for _ in range(3):
        add("c0", "m1", REPLAY_DAY + timedelta(hours=12))
    return rows


def make_day_table(seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    rows = history_rows(rng)
    count = len(rows)
    fraud = rng.random(count) < 0.12
    delays = rng.integers(1, 12 * 86_400, count)
    frame = pl.DataFrame(
        {
            "transaction_id": [f"t{i:05d}" for i in rng.permutation(count)],
            "timestamp": [row["timestamp"] for row in rows],
            "card_id": [row["card_id"] for row in rows],
            "customer_id": [None] * count,
            "merchant_id": [row["merchant_id"] for row in rows],
            "terminal_id": [None] * count,
            "amount_minor": rng.integers(1, 90_000, count),
            "currency": ["EUR"] * count,
            "mcc": ["5411"] * count,
            "channel": [CHANNELS[i] for i in rng.integers(0, len(CHANNELS), count)],
            "card_present": rng.random(count) < 0.5,
            "merchant_country": [
                (None, "DE", "FR", "PL")[i] for i in rng.integers(0, 4, count)
            ],
            "card_country": ["DE"] * count,
            "device_id": [
                None if i == 0 else f"d{i}" for i in rng.integers(0, 5, count)
            ],
            "customer_lat": [52.5] * count,
            "customer_lon": [13.4] * count,
            "merchant_lat": rng.uniform(45, 55, count),
            "merchant_lon": rng.uniform(5, 20, count),
            "is_fraud": fraud,
            "label_available_at": [
                row["timestamp"] + timedelta(seconds=int(delay))
                if is_fraud and i % 7
                else None
                for i, (row, delay, is_fraud) in enumerate(
                    zip(rows, delays, fraud, strict=True)
                )
            ],
            "fraud_scenario": ["stolen_card" if f else None for f in fraud],
        }
    )
    return with_label_on_transaction_time(frame.cast(polars_schema()))


def with_label_on_transaction_time(frame: pl.DataFrame) -> pl.DataFrame:
    """Make some labels arrive exactly when a replayed transaction of the merchant
    happens, so that a label and a transaction tie."""
    replayed = frame.filter(pl.col("timestamp") >= REPLAY_DAY).sort("timestamp")
    frauds = frame.filter(
        pl.col("is_fraud") & (pl.col("timestamp") < REPLAY_DAY - timedelta(days=2))
    )
    updates = {}
    for fraud in frauds.iter_rows(named=True):
        same = replayed.filter(pl.col("merchant_id") == fraud["merchant_id"])
        if same.height > 5 and len(updates) < 8:
            updates[fraud["transaction_id"]] = same["timestamp"][len(updates) + 1]
    assert len(updates) == 8
    label_times = pl.DataFrame(
        {"transaction_id": list(updates), "_tie": list(updates.values())},
        schema={"transaction_id": pl.String, "_tie": pl.Datetime("us", "UTC")},
    )
    return (
        frame.join(label_times, on="transaction_id", how="left")
        .with_columns(label_available_at=pl.coalesce("_tie", "label_available_at"))
        .drop("_tie")
    )


@pytest.fixture(scope="module")
def day_table() -> pl.DataFrame:
    frame = make_day_table(seed=31)
    replayed = frame.filter(pl.col("timestamp") >= REPLAY_DAY)
    assert replayed["timestamp"].is_duplicated().sum() > 50
    return frame


@pytest.fixture(scope="module")
def offline_folder(
    tmp_path_factory: pytest.TempPathFactory, day_table: pl.DataFrame
) -> Path:
    folder = tmp_path_factory.mktemp("features")
    build_feature_table(day_table, PARAMS).write_parquet(folder / FEATURES_FILE)
    return folder


def make_workspace(root: Path, offline_folder: Path) -> Workspace:
    ws = Workspace(root)
    ws.features_dir.mkdir(parents=True)
    shutil.copy(offline_folder / FEATURES_FILE, ws.features_dir / FEATURES_FILE)
    return ws


def redis_store_yaml(ws: Workspace, connection: str) -> Path:
    """Copy the project's Redis store file into the workspace's repository."""
    import redis

    redis.Redis.from_url(f"redis://{connection}").flushall()
    ws.feature_repo.mkdir(parents=True, exist_ok=True)
    template = project_root() / "feature_repo" / "feature_store.redis.yaml"
    text = template.read_text(encoding="utf-8")
    path = ws.feature_repo / STORE_YAML
    path.write_text(text.replace("${REDIS_CONNECTION}", connection), encoding="utf-8")
    return path


def replay_day(ws: Workspace, day_table: pl.DataFrame) -> tuple[dict, OnlineFeatures]:
    """Load the state as of the replayed day, then stream the day through Feast."""
    columns = feature_columns(PARAMS)
    apply_and_load_state(ws, day_table, PARAMS, columns, cutoff=REPLAY_DAY)
    online = OnlineFeatures(open_store(ws), PARAMS)
    results = {}
    for kind, event in replay_events(day_table, PARAMS, start=REPLAY_DAY):
        if kind == "label":
            online.apply_label(**event)
        else:
            results[event["transaction_id"]] = online.process(event)
    return results, online


def assert_parity(results: dict, ws: Workspace) -> None:
    training = read_training_set(ws, feature_columns(PARAMS)).filter(
        pl.col("timestamp") >= REPLAY_DAY
    )
    assert training.height == len(results)
    columns = feature_columns(PARAMS)
    for row in training.iter_rows(named=True):
        values = results[row["transaction_id"]].values
        assert list(values) == columns
        for name in columns:
            assert values[name] == pytest.approx(row[name], rel=1e-9, abs=0.0), (
                row["transaction_id"],
                name,
            )


def assert_day_covers_hard_cases(results: dict, day_table: pl.DataFrame) -> None:
    """Check that the day really has stale, new and long-history entities."""
    by_id = {row["transaction_id"]: row for row in day_table.to_dicts()}
    missing_cards = {
        by_id[tid]["card_id"]
        for tid, result in results.items()
        if CARD_STATE_VIEW in result.missing
    }
    assert missing_cards == {"n0", "n1", "n2"}
    assert all(MERCHANT_STATE_VIEW not in r.missing for r in results.values())
    stale = [
        r for tid, r in results.items() if by_id[tid]["card_id"] in ("s0", "s1", "s2")
    ]
    assert stale
    assert stale[0].values["card_count_720h"] == 0.0
    assert stale[0].values["card_prior_count"] == 1.0
    history = [
        r.values["card_prior_count"]
        for tid, r in results.items()
        if by_id[tid]["card_id"] == "c3"
    ]
    assert min(history) > 100
    rates = [r.values["merchant_fraud_rate_30d"] for r in results.values()]
    assert max(rates) > 0


def test_parity_sqlite(
    tmp_path: Path, offline_folder: Path, day_table: pl.DataFrame
) -> None:
    ws = make_workspace(tmp_path, offline_folder)
    results, _ = replay_day(ws, day_table)
    assert_day_covers_hard_cases(results, day_table)
    assert_parity(results, ws)


def test_parity_redis(
    tmp_path: Path,
    offline_folder: Path,
    day_table: pl.DataFrame,
    redis_connection: str,
) -> None:
    ws = make_workspace(tmp_path, offline_folder)
    redis_store_yaml(ws, redis_connection)
    results, online = replay_day(ws, day_table)
    assert online.store.config.online_store.type == "redis"
    assert_day_covers_hard_cases(results, day_table)
    assert_parity(results, ws)


def test_redis_without_skip_dedup_rejected(
    tmp_path: Path, offline_folder: Path, redis_connection: str
) -> None:
    ws = make_workspace(tmp_path, offline_folder)
    path = redis_store_yaml(ws, redis_connection)
    path.write_text(path.read_text().replace("skip_dedup: true", ""))
    store = open_store(ws)
    with pytest.raises(ValueError, match="skip_dedup"):
        OnlineFeatures(store, PARAMS)


@pytest.fixture
def moto_endpoint(
    fresh_moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> str:
    """A moto server on 127.0.0.1 standing in for S3 and DynamoDB, fake credentials."""
    use_fake_aws_credentials(monkeypatch, tmp_path, region="eu-west-2")
    monkeypatch.setenv("AWS_REGION", "eu-west-2")
    monkeypatch.setenv("FEAST_S3_BUCKET", "cardfraud-feast-test")
    # Feast's S3 registry reads its endpoint from this variable.
    monkeypatch.setenv("FEAST_S3_ENDPOINT_URL", fresh_moto_url)
    return fresh_moto_url


def aws_store_yaml(ws: Workspace, endpoint: str) -> Path:
    """Copy the project's AWS store file, pointing DynamoDB at the moto server."""
    import boto3

    boto3.client("s3", endpoint_url=endpoint).create_bucket(
        Bucket="cardfraud-feast-test",
        CreateBucketConfiguration={"LocationConstraint": "eu-west-2"},
    )
    ws.feature_repo.mkdir(parents=True, exist_ok=True)
    template = project_root() / "feature_repo" / "feature_store.aws.yaml"
    text = template.read_text(encoding="utf-8")
    assert "type: dynamodb" in text
    text = text.replace(
        "  type: dynamodb\n", f"  type: dynamodb\n  endpoint_url: {endpoint}\n"
    )
    path = ws.feature_repo / STORE_YAML
    path.write_text(text, encoding="utf-8")
    return path


def test_parity_dynamodb_moto(
    tmp_path: Path,
    offline_folder: Path,
    day_table: pl.DataFrame,
    moto_endpoint: str,
) -> None:
    """The AWS store file (S3 registry, DynamoDB online) on moto, 127.0.0.1 only."""
    import boto3

    ws = make_workspace(tmp_path, offline_folder)
    aws_store_yaml(ws, moto_endpoint)
    results, online = replay_day(ws, day_table)
    assert online.store.config.online_store.type == "dynamodb"
    assert_parity(results, ws)
    tables = boto3.client("dynamodb", endpoint_url=moto_endpoint).list_tables()
    assert any("card_state" in name for name in tables["TableNames"])
    registry = boto3.client("s3", endpoint_url=moto_endpoint).list_objects_v2(
        Bucket="cardfraud-feast-test"
    )
    assert [item["Key"] for item in registry["Contents"]] == ["feast/registry.db"]
