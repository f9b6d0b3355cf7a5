"""Statistical checks on full-size data (1,000,000 transactions, several seeds).

These take minutes and run with ``make test-all`` only (marker ``slow``).
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest

import fraudgen
from cardfraud.features import build_feature_table, feature_columns
from cardfraud.params import load_params
from cardfraud.paths import project_root
from cardfraud.schema import validate_frame

pytestmark = pytest.mark.slow

SEEDS = (20250101, 7, 2024)
MIN_FRAUDS_PER_SCENARIO = 100


def default_generation(seed: int) -> pl.DataFrame:
    """Generate the pipeline's default data set (params.yaml) with another seed."""
    params = load_params(project_root() / "params.yaml").generate
    config = fraudgen.build_config(
        {
            "rows": params.rows,
            "days": params.days,
            "start": params.start,
            "fraud_rate": params.fraud_rate,
            "seed": seed,
        }
    )
    return fraudgen.generate_frame(config)


@pytest.fixture(scope="module", params=SEEDS, ids=lambda seed: f"seed{seed}")
def full_size(request) -> pl.DataFrame:
    return default_generation(request.param)


def test_full_size_row_count_near_target(full_size):
    assert 950_000 <= full_size.height <= 1_050_000


def test_full_size_prevalence_within_ten_percent(full_size):
    target = load_params(project_root() / "params.yaml").generate.fraud_rate
    prevalence = full_size["is_fraud"].mean()
    assert abs(prevalence - target) / target <= 0.10


def test_full_size_every_scenario_has_frauds(full_size):
    counts = dict(
        full_size.filter(pl.col("is_fraud"))
        .group_by("fraud_scenario")
        .len()
        .iter_rows()
    )
    assert set(counts) == set(fraudgen.SCENARIOS)
    for scenario, count in counts.items():
        assert count >= MIN_FRAUDS_PER_SCENARIO, scenario


def test_full_size_labels_within_chargeback_window(full_size):
    frauds = full_size.filter(pl.col("is_fraud"))
    delays = frauds["label_available_at"] - frauds["timestamp"]
    assert delays.null_count() == 0
    assert delays.min() > timedelta(0)
    assert delays.max() <= timedelta(days=120)
    assert (delays <= timedelta(days=60)).mean() > 0.5


def test_full_size_matches_schema_and_builds_features(full_size):
    validated = validate_frame(full_size, require_labels=True)
    params = load_params(project_root() / "params.yaml").features
    table = build_feature_table(validated, params)
    columns = feature_columns(params)
    assert table.height == full_size.height
    nulls = table.select(columns).null_count().row(0)
    assert max(nulls) == 0
    assert table["transaction_id"].n_unique() == table.height
