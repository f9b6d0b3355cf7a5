"""The lineage file of a smoke-size pipeline run covers every model feature."""

from __future__ import annotations

from pathlib import Path

from cardfraud.feast_definitions import TRANSACTION_VIEW
from cardfraud.feature_store import open_store
from cardfraud.lineage import check_lineage, read_lineage, registry_feature_views
from cardfraud.params import load_params
from cardfraud.paths import Workspace
from cardfraud.training import load_model


def test_pipeline_lineage_passes_checks(
    smoke_workspace: Workspace, smoke_params_path: Path
) -> None:
    lineage = read_lineage(smoke_workspace.features_dir / "lineage.json")
    model_features = load_model(smoke_workspace.candidate_dir).feature_columns
    views = registry_feature_views(open_store(smoke_workspace))
    params = load_params(smoke_params_path).features
    problems = check_lineage(
        lineage, model_features=model_features, feature_views=views, params=params
    )
    assert problems == []
    assert sorted(lineage) == sorted(model_features)
    assert {entry["feature_view"] for entry in lineage.values()} == {TRANSACTION_VIEW}
    assert {entry["source"] for entry in lineage.values()} == {
        "data/features/features.parquet"
    }


def test_pipeline_lineage_windows_match_params(
    smoke_workspace: Workspace, smoke_params_path: Path
) -> None:
    lineage = read_lineage(smoke_workspace.features_dir / "lineage.json")
    params = load_params(smoke_params_path).features
    card_windows = sorted(
        entry["parameters"]["window_hours"]
        for name, entry in lineage.items()
        if name.startswith("card_count_")
    )
    assert card_windows == sorted(params.windows_hours)
    delays = {
        entry["parameters"]["label_delay_days"]
        for name, entry in lineage.items()
        if name.startswith("merchant_fraud_rate_")
    }
    assert delays == {params.label_delay_days}
