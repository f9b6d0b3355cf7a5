from __future__ import annotations

from datetime import timedelta
from importlib import metadata

import numpy as np
import polars as pl
import pytest

import fraudgen
from fraudgen import writer
from fraudgen.writer import Manifest


def read_bytes(folder) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_output_matches_schema(small_frame):
    assert dict(small_frame.schema) == fraudgen.SCHEMA
    assert list(small_frame.columns) == list(fraudgen.SCHEMA)


def test_row_count_near_target(small_frame):
    assert 5000 < small_frame.height < 7000


def test_amounts_positive_and_codes_valid(small_frame):
    assert small_frame["amount_minor"].min() > 0
    assert small_frame["mcc"].str.len_chars().unique().to_list() == [4]
    assert small_frame["currency"].str.len_chars().unique().to_list() == [3]
    assert set(small_frame["channel"].unique()) <= {
        "pos",
        "ecommerce",
        "atm",
        "contactless",
    }
    assert (
        small_frame["currency"]
        .value_counts(normalize=True)
        .filter(pl.col("currency") == "EUR")["proportion"][0]
        > 0.8
    )


def test_device_null_exactly_when_card_present(small_frame):
    present = small_frame["card_present"].to_numpy()
    has_device = small_frame["device_id"].is_not_null().to_numpy()
    assert np.array_equal(present, ~has_device)
    assert np.array_equal(present, (small_frame["channel"] != "ecommerce").to_numpy())


def test_rows_sorted_with_unique_time_ordered_ids(small_frame):
    assert small_frame["transaction_id"].is_unique().all()
    assert small_frame["timestamp"].is_sorted()
    assert small_frame["transaction_id"].is_sorted()
    first = small_frame["transaction_id"][0]
    assert first == "T2025010100000000"


def test_every_scenario_present(small_frame):
    found = set(small_frame.filter(pl.col("is_fraud"))["fraud_scenario"].unique())
    assert found == set(fraudgen.SCENARIOS)


def test_labels_only_on_fraud(small_frame):
    legitimate = small_frame.filter(~pl.col("is_fraud"))
    fraud = small_frame.filter(pl.col("is_fraud"))
    assert legitimate["label_available_at"].null_count() == legitimate.height
    assert legitimate["fraud_scenario"].null_count() == legitimate.height
    assert fraud["label_available_at"].null_count() == 0
    assert fraud["fraud_scenario"].null_count() == 0


def test_labels_within_120_days(small_frame):
    fraud = small_frame.filter(pl.col("is_fraud"))
    delay = fraud["label_available_at"] - fraud["timestamp"]
    assert delay.min() >= timedelta(hours=2)
    assert delay.max() <= timedelta(days=120)


def test_timestamps_inside_span(small_frame, make_config):
    config = make_config()
    assert small_frame["timestamp"].min().date() >= config.start
    assert small_frame["timestamp"].max().date() <= config.last_day


def test_card_testing_is_small_and_online(small_frame):
    testing = small_frame.filter(pl.col("fraud_scenario") == "card_testing")
    assert testing["amount_minor"].max() <= 200
    assert testing["channel"].unique().to_list() == ["ecommerce"]


def test_prevalence_near_target_moderate_size(make_config):
    frame = fraudgen.generate_frame(make_config(rows=40_000, days=90, fraud_rate=0.005))
    prevalence = frame["is_fraud"].mean()
    assert 0.0035 < prevalence < 0.0065
    assert 36_000 < frame.height < 44_000


def test_ids_do_not_follow_label(make_config):
    frame = fraudgen.generate_frame(make_config(rows=20_000, days=30, fraud_rate=0.02))
    position = np.arange(frame.height)
    fraud = frame["is_fraud"].to_numpy()
    # Ids follow time order. So the mean relative position of frauds within their
    # day stays near 0.5, as it would for any other payment.
    day = frame["timestamp"].dt.date().to_numpy()
    frame_day = pl.DataFrame({"day": day, "pos": position, "fraud": fraud})
    ranks = frame_day.with_columns(
        share=(pl.col("pos") - pl.col("pos").min().over("day")) / pl.len().over("day")
    )
    late = ranks.filter(pl.col("fraud"))["share"].mean()
    assert 0.3 < late < 0.75


@pytest.mark.parametrize(
    "work",
    [
        {"shard_cards": 37, "batch_rows": 900, "threads": 1},
        {"shard_cards": 1, "batch_rows": 1, "threads": 3},
        {"shard_cards": 100_000, "batch_rows": 10**9, "threads": 2},
    ],
    ids=["small-shards", "one-card-one-day", "one-shard-one-batch"],
)
def test_same_bytes_whatever_the_chunk_size_and_threads(tmp_path, make_config, work):
    config = make_config()
    reference = fraudgen.generate_to_path(config, tmp_path / "default")
    other = fraudgen.generate_to_path(config, tmp_path / "other", **work)
    files_a = read_bytes(tmp_path / "default")
    files_b = read_bytes(tmp_path / "other")
    assert len(files_a) == 22  # 21 daily partitions and the manifest
    assert files_a == files_b
    assert reference == other


def test_chunked_frame_equals_partitions(tmp_path, make_config):
    config = make_config()
    fraudgen.generate_to_path(config, tmp_path / "out")
    frame = fraudgen.generate_frame(config, shard_cards=50, batch_rows=500, threads=2)
    written = pl.read_parquet(tmp_path / "out" / "dt=*" / "*.parquet")
    assert frame.height == written.height > 0
    assert frame.equals(written.select(frame.columns))


def test_rejects_non_positive_work_sizes(make_config):
    for option in ("shard_cards", "batch_rows", "threads"):
        with pytest.raises(ValueError, match=f"{option} must be at least 1"):
            fraudgen.generate_frame(make_config(), **{option: 0})


def test_same_config_same_manifest_bytes(tmp_path, make_config):
    fraudgen.generate_to_path(make_config(), tmp_path / "a")
    fraudgen.generate_to_path(make_config(), tmp_path / "b")
    assert read_bytes(tmp_path / "a") == read_bytes(tmp_path / "b")


def test_other_seed_differs(tmp_path, make_config):
    first = fraudgen.generate_to_path(make_config(seed=7), tmp_path / "a")
    second = fraudgen.generate_to_path(make_config(seed=8), tmp_path / "b")
    assert first.files[0].sha256 != second.files[0].sha256
    assert first.config_hash != second.config_hash


def test_frame_equals_partitions(tmp_path, small_frame, make_config):
    fraudgen.generate_to_path(make_config(), tmp_path / "out")
    written = pl.read_parquet(
        tmp_path / "out" / "dt=*" / "part-0.parquet", hive_partitioning=False
    )
    assert written.equals(small_frame)


def test_manifest_contents(tmp_path, small_frame, make_config):
    manifest = fraudgen.generate_to_path(make_config(write_csv=True), tmp_path / "out")
    reread = Manifest.read(tmp_path / "out")
    assert reread == manifest
    assert manifest.rows == small_frame.height
    assert manifest.frauds == int(small_frame["is_fraud"].sum())
    assert sum(s["rows"] for s in manifest.scenarios.values()) == manifest.frauds
    assert manifest.package_version == fraudgen.__version__
    assert manifest.package_version == metadata.version("fraudgen")
    assert manifest.seed == 7
    assert manifest.config_hash == make_config(write_csv=True).config_hash()
    assert len([f for f in manifest.files if f.path.startswith("csv/")]) == 21
    assert manifest.files[-1].path == "dt=2025-01-21/part-0.parquet"
    for entry in manifest.files:
        assert writer.sha256_file(tmp_path / "out" / entry.path) == entry.sha256


def test_refuses_non_empty_output(tmp_path, make_config):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        fraudgen.generate_to_path(make_config(), out)
    assert (out / "keep.txt").read_text() == "x"


def test_overwrite_replaces_output(tmp_path, make_config):
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.txt").write_text("x")
    fraudgen.generate_to_path(make_config(), out, overwrite=True)
    assert not (out / "stale.txt").exists()
    assert (out / "manifest.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_failure_leaves_no_partial_output(tmp_path, monkeypatch, make_config):
    calls = []

    def fail_on_third_day(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        return original(*args, **kwargs)

    original = writer._encode_day
    monkeypatch.setattr(writer, "_encode_day", fail_on_third_day)
    with pytest.raises(OSError, match="disk full"):
        fraudgen.generate_to_path(
            make_config(), tmp_path / "out", threads=2, batch_rows=300
        )
    assert list(tmp_path.iterdir()) == []


def test_cards_option_sets_population():
    frame = fraudgen.generate_frame(
        fraudgen.build_config({"cards": 200, "days": 10, "seed": 3})
    )
    assert frame["card_id"].n_unique() <= 200
    assert frame["card_id"].n_unique() > 150


def test_zero_fraud_rate_gives_no_fraud(make_config):
    frame = fraudgen.generate_frame(make_config(fraud_rate=0.0))
    assert frame["is_fraud"].sum() == 0
