"""The whole pipeline run in process at smoke size: what each stage leaves behind."""

from __future__ import annotations

import json
import os

import pytest

from cardfraud.params import RegisterParams
from cardfraud.paths import Workspace
from cardfraud.registry import load_champion
from cardfraud.stages import report


def read(path):
    return json.loads(path.read_text(encoding="utf-8"))


def test_pipeline_registers_champion(smoke_workspace: Workspace):
    registration = read(smoke_workspace.registration_file)
    assert registration["alias"] == "champion"
    assert registration["version"] == "1"
    champion = load_champion(
        tracking_uri=smoke_workspace.tracking_uri(), model_name="card-fraud"
    )
    assert champion.version == "1"
    assert (
        champion.feature_columns
        == read(smoke_workspace.features_dir / "feature_spec.json")["feature_columns"]
    )


def test_pipeline_summary_matches_metrics(smoke_workspace: Workspace):
    summary = read(smoke_workspace.reports_dir / "summary.json")
    evaluation = read(smoke_workspace.metrics_dir / "evaluate.json")
    manifest = read(smoke_workspace.raw_dir / "manifest.json")
    assert summary["evaluate"]["average_precision.value"] == pytest.approx(
        evaluation["average_precision"]["value"]
    )
    assert summary["data"]["rows"] == manifest["rows"]
    assert summary["registration"]["alias"] == "champion"
    assert 0.0 <= summary["evaluate"]["average_precision.value"] <= 1.0


def test_pipeline_writes_outputs_inside_workspace(smoke_workspace: Workspace):
    expected = [
        smoke_workspace.raw_dir / "manifest.json",
        smoke_workspace.validation_dir / "raw_transactions.json",
        smoke_workspace.features_dir / "features.parquet",
        smoke_workspace.validation_dir / "features.json",
        smoke_workspace.candidate_dir / "model_meta.json",
        smoke_workspace.metrics_dir / "train.json",
        smoke_workspace.plots_dir / "pr_curve.csv",
        smoke_workspace.explain_dir / "shap_sample.parquet",
        smoke_workspace.mlflow_db,
    ]
    missing = [str(path) for path in expected if not path.is_file()]
    assert missing == []


def test_report_without_earlier_stages_names_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"manifest\.json not found"):
        report.run(
            Workspace(tmp_path),
            RegisterParams(model_name="card-fraud", promotion_margin=0.0),
        )


def test_pipeline_leaves_mlflow_uri_unset(smoke_workspace: Workspace):
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert "MLFLOW_REGISTRY_URI" not in os.environ
